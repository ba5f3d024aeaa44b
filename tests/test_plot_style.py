"""The book's figure rules: resolution, width, smallest text and one shared colour bar."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import mixlib  # noqa: E402
from mixlib import plot  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))


def _moons():
    return mixlib.two_moons(n=40, noise=0.1, seed=0)


def test_style_saves_at_150_dpi_or_more_with_text_of_9_pt_or_more():
    plot.use_style()  # outside a notebook it only sets the style
    rc = matplotlib.rcParams
    assert rc["savefig.dpi"] >= 150 and rc["figure.dpi"] == 100
    sizes = [rc[key] for key in ("font.size", "axes.titlesize", "axes.labelsize", "xtick.labelsize",
                                 "ytick.labelsize", "legend.fontsize", "figure.titlesize")]
    assert all(isinstance(size, (int, float)) and size >= plot.MIN_FONT_PT for size in sizes), sizes
    assert plot.INLINE_FORMAT in {"retina", "svg"}


def test_a_figure_is_never_wider_than_the_column_and_keeps_its_panels_shape():
    fig, axes = plot.figure(ncols=3, nrows=2, width=3.9, height=3.3)
    w, h = fig.get_size_inches()
    assert len(axes) == 6
    assert w == pytest.approx(plot.MAX_WIDTH)
    assert w / h == pytest.approx((3 * 3.9) / (2 * 3.3))
    small, _ = plot.figure(width=4.0, height=3.0)
    assert tuple(small.get_size_inches()) == pytest.approx((4.0, 3.0))


@pytest.mark.parametrize(("kwargs", "name"), [({"width": 0}, "width"), ({"height": -1.0}, "height"),
                                             ({"ncols": 0}, "ncols")])
def test_figure_rejects_bad_sizes(kwargs, name):
    with pytest.raises(ValueError, match=name):
        plot.figure(**kwargs)


def test_no_text_is_drawn_below_the_smallest_size():
    fig, axes = plot.figure(ncols=2)
    axes[0].plot([0, 1], [0, 1], label="a line")
    axes[0].legend(fontsize=7)
    axes[1].text(0.5, 0.5, "note", fontsize=6)
    axes[1].set_title("title", fontsize=12)
    fig.canvas.draw()
    sizes = {t.get_text(): t.get_fontsize() for t in fig.findobj(matplotlib.text.Text) if t.get_text()}
    assert sizes["a line"] == plot.MIN_FONT_PT and sizes["note"] == plot.MIN_FONT_PT
    assert sizes["title"] == 12
    assert min(sizes.values()) >= plot.MIN_FONT_PT
    assert repr(fig).startswith("<Figure size ")  # printed outputs do not name the subclass


def test_decision_boundaries_of_one_figure_share_one_colour_bar():
    data = _moons()
    fig, axes = plot.figure(ncols=3, nrows=2)
    for j, ax in enumerate(axes):
        plot.decision_boundary(ax, _net(j), data.x_train, data.y_train, resolution=15)
    assert len(fig.axes) == 6 + 1
    colorbar = fig._mixlib_probability_colorbar
    assert colorbar.ax.get_ylabel() == "P(class 1)"
    assert list(colorbar.get_ticks()) == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    fig.canvas.draw()  # the layout holds with the bar beside all six panels
    cbar_box = colorbar.ax.get_position()
    assert all(ax.get_position().x1 <= cbar_box.x0 + 1e-6 for ax in axes)


def test_a_single_panel_keeps_its_colour_bar_and_it_can_be_left_out():
    data = _moons()
    fig, axes = plot.figure()
    plot.decision_boundary(axes[0], _net(), data.x_train, data.y_train, resolution=15)
    assert len(fig.axes) == 2
    fig2, axes2 = plot.figure(ncols=2)
    plot.decision_boundary(axes2[0], _net(), data.x_train, data.y_train, resolution=15, colorbar=False)
    assert len(fig2.axes) == 2
    plot.shared_colorbar(fig2, axes2)
    assert len(fig2.axes) == 3


def test_shared_colorbar_takes_a_mappable_and_checks_its_arguments():
    fig, axes = plot.figure(ncols=2)
    image = axes[0].imshow([[0.0, 1.0], [2.0, 3.0]])
    axes[1].imshow([[3.0, 2.0], [1.0, 0.0]], norm=image.norm)
    colorbar = plot.shared_colorbar(fig, axes, image, label="value")
    assert colorbar.ax.get_ylabel() == "value"
    other, other_axes = plot.figure()
    with pytest.raises(TypeError, match="fig"):
        plot.shared_colorbar("figure", axes)
    with pytest.raises(ValueError, match="axes"):
        plot.shared_colorbar(fig, other_axes)
    with pytest.raises(ValueError, match="axes"):
        plot.shared_colorbar(fig, [])
    with pytest.raises(TypeError, match="axes"):
        plot.shared_colorbar(fig, [axes[0], "panel"])
    with pytest.raises(TypeError, match="mappable"):
        plot.shared_colorbar(fig, axes, mappable=[0, 1])


def test_every_public_function_is_exported_and_so_documented():
    import inspect

    defined = {name for name, obj in vars(plot).items()
               if not name.startswith("_") and inspect.isfunction(obj) and obj.__module__ == plot.__name__}
    assert defined <= set(plot.__all__), f"missing from mixlib.plot.__all__: {defined - set(plot.__all__)}"
