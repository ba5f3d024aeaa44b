"""Figures in one consistent style.

Every figure has a white background and dark ink, so it stays readable on the site's
light and dark themes alike; colours come from a colour-blind-safe palette.

Figures made with :func:`figure` also follow the book's print rules: they are at most
:data:`MAX_WIDTH` inches wide (the text column of the site, so a figure is never shrunk to
fit it), no text in them is smaller than :data:`MIN_FONT_PT` points, and in a notebook they
are shown as PNGs of twice the screen resolution (200 dpi). Panels that share a
probability scale share one colour bar (:func:`shared_colorbar`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colorbar import Colorbar
from matplotlib.figure import Figure
from matplotlib.text import Text
from torch import nn

from ._checks import (
    check_flag,
    check_labels,
    check_module,
    check_positive,
    check_positive_int,
    check_same_batch,
    check_tensor,
)
from .metrics import grid, probabilities

__all__ = [
    "INLINE_FORMAT", "MAX_WIDTH", "MIN_FONT_PT", "PALETTE", "STYLE", "decision_boundary", "figure", "forest",
    "representation_scatter", "shared_colorbar", "singular_value_spectra", "use_style",
]
# (``__all__`` also decides what the API page documents: add every new public function here.)

#: Okabe–Ito colours, safe for the common forms of colour blindness.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")

STYLE = {
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "savefig.facecolor": "white",
    "axes.edgecolor": "#333333",
    "axes.labelcolor": "#222222",
    "text.color": "#222222",
    "xtick.color": "#333333",
    "ytick.color": "#333333",
    "axes.grid": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": mpl.cycler(color=PALETTE),
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "legend.title_fontsize": 9,
    "figure.titlesize": 11,
    "legend.frameon": False,
    # 100 px per inch on screen; saved and inline figures carry twice that many pixels
    "figure.dpi": 100,
    "savefig.dpi": 200,
}

#: The widest figure in inches, which is the site's text column (688 px at 100 px per inch)
#: less the margin that the notebook's tight crop may add.
MAX_WIDTH = 6.6

#: The smallest text in points that any figure made by figure() shows.
MIN_FONT_PT = 9.0

#: How a notebook shows figures, as PNGs with twice the pixels of their on-screen size.
INLINE_FORMAT = "retina"

# The probability shading of two-class decision boundaries (one scale for every panel).
_PROBABILITY_CMAP = "RdBu_r"
_PROBABILITY_LEVELS = np.linspace(0, 1, 11)
_PROBABILITY_LABEL = "P(class 1)"
_PROBABILITY_ALPHA = 0.75
_PROBABILITY_TICKS = np.linspace(0, 1, 6)


class BookFigure(Figure):
    """A matplotlib figure that raises any text smaller than :data:`MIN_FONT_PT` before drawing.

    The floor holds whatever size a caller asked for (``legend(fontsize=7)`` is drawn at 9 pt),
    so that every figure of the book stays legible at the size the site shows it.
    """

    def draw(self, renderer) -> None:  # noqa: D102 - matplotlib's signature
        for text in self.findobj(Text):
            if text.get_text() and text.get_fontsize() < MIN_FONT_PT:
                text.set_fontsize(MIN_FONT_PT)
        super().draw(renderer)

    def __repr__(self) -> str:
        # the same text as a plain Figure, so printed outputs do not depend on the subclass
        return super().__repr__().replace(type(self).__name__, "Figure", 1)


def _use_inline_format() -> None:
    """In a Jupyter kernel, show figures as high-resolution PNGs; elsewhere do nothing."""
    try:
        from IPython import get_ipython
        from matplotlib_inline.config import InlineBackend
    except ImportError:  # plain Python: no notebook to show figures in
        return
    shell = get_ipython()
    if shell is None or not hasattr(shell, "kernel"):
        return
    config = InlineBackend.instance(parent=shell)
    if set(config.figure_formats) != {INLINE_FORMAT}:
        # the trait's observer re-registers the display formatters once the backend is loaded;
        # before that, the backend reads this setting when it loads
        config.figure_formats = {INLINE_FORMAT}


def use_style() -> None:
    """Apply the book's matplotlib style globally (call once, after the imports).

    In a notebook this also shows figures as PNGs at twice the screen resolution.
    """
    mpl.rcParams.update(STYLE)
    _use_inline_format()


def figure(ncols: int = 1, nrows: int = 1, width: float = 4.0, height: float = 3.4) -> tuple[Figure, np.ndarray]:
    """A figure of ``nrows x ncols`` panels, each ``width x height`` inches; axes as a flat array.

    A figure wider than :data:`MAX_WIDTH` is scaled down as a whole (its panels keep their
    shape) so that the site never has to shrink it, and its text keeps its point size.
    """
    ncols = check_positive_int("ncols", ncols)
    nrows = check_positive_int("nrows", nrows)
    width = check_positive("width", width)
    height = check_positive("height", height)
    scale = min(1.0, MAX_WIDTH / (width * ncols))
    _use_inline_format()
    # No rc_context here: the notebook's inline backend may load inside it, and leaving the
    # context would switch interactive mode off, so later figures would never be shown.
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols * scale, height * nrows * scale),
                             squeeze=False, layout="constrained", facecolor=STYLE["figure.facecolor"],
                             FigureClass=BookFigure)
    return fig, axes.ravel()


def shared_colorbar(
    fig: Figure,
    axes: Axes | Sequence[Axes] | np.ndarray,
    mappable: ScalarMappable | None = None,
    *,
    label: str = _PROBABILITY_LABEL,
) -> Colorbar:
    """One colour bar for several panels that share a colour scale, drawn beside all of them.

    Args:
        fig: the figure holding the panels.
        axes: the panels the colour bar serves (one or several axes, or an array of them).
        mappable: what the colours mean, e.g. the return value of ``contourf`` or ``imshow``
            on one of the panels; by default the probability scale of :func:`decision_boundary`
            (0 to 1 in steps of 0.1).
        label: the colour bar's label.

    Returns:
        The colour bar.
    """
    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    panels = [axes] if isinstance(axes, Axes) else list(np.asarray(axes, dtype=object).ravel())
    if not panels:
        raise ValueError("axes must hold at least one Axes")
    for ax in panels:
        if not isinstance(ax, Axes):
            raise TypeError(f"axes must hold matplotlib Axes, got {type(ax).__name__}")
        if ax.figure is not fig:
            raise ValueError("axes must all belong to fig")
    options: dict = {}
    if mappable is None:
        norm = mpl.colors.BoundaryNorm(_PROBABILITY_LEVELS, plt.get_cmap(_PROBABILITY_CMAP).N)
        mappable = ScalarMappable(norm=norm, cmap=_PROBABILITY_CMAP)
        options = {"alpha": _PROBABILITY_ALPHA, "ticks": _PROBABILITY_TICKS}
    elif not isinstance(mappable, ScalarMappable):
        raise TypeError(f"mappable must be a matplotlib ScalarMappable, got {type(mappable).__name__}")
    return fig.colorbar(mappable, ax=panels, label=label, shrink=0.85 if len(panels) == 1 else 0.9, **options)


def _share_probability_colorbar(ax: Axes, contours: ScalarMappable) -> None:
    """Give every two-class probability panel of ``ax``'s figure one shared colour bar."""
    fig = ax.figure
    panels = getattr(fig, "_mixlib_probability_axes", [])
    panels = [p for p in panels if p.figure is fig and p is not ax] + [ax]
    old = getattr(fig, "_mixlib_probability_colorbar", None)
    if old is not None:
        old.remove()
    fig._mixlib_probability_axes = panels
    colorbar = shared_colorbar(fig, panels, contours)
    colorbar.set_ticks(_PROBABILITY_TICKS)
    fig._mixlib_probability_colorbar = colorbar


def _check_ax(ax: object) -> Axes:
    """The panel to draw on: a matplotlib ``Axes``."""
    if not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes (for example one of the panels from "
                        f"mixlib.plot.figure()), got {type(ax).__name__}")
    return ax


def _points(t: torch.Tensor) -> np.ndarray:
    """A checked tensor as float64 NumPy values for matplotlib, whatever its floating dtype (bfloat16 too)."""
    return t.detach().cpu().double().numpy()


def decision_boundary(
    ax: Axes,
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    resolution: int = 200,
    margin: float = 0.5,
    title: str | None = None,
    colorbar: bool = True,
) -> None:
    """Draw a 2-D classifier's probability contours, its decision boundary and the data.

    For two classes the filled contours show ``P(class 1 | x)`` from 0 to 1, with the 0.5
    boundary as a solid line and the 0.1 / 0.9 levels dashed; a wide band between the dashed
    lines means an unsure model, a thin one an over-confident model. For more classes the
    shading is the predicted class and its lightness the top probability.

    The probability scale is the same on every two-class panel, so a figure gets one colour
    bar for all of them (:func:`shared_colorbar`), drawn beside the panels.

    Args:
        ax: axes to draw on.
        model: maps ``(n, 2)`` inputs to ``(n, C)`` logits.
        x: the points to scatter, shape ``(n, 2)``.
        y: their integer labels.
        resolution: grid points per axis.
        margin: how far the grid extends beyond the data.
        title: panel title.
        colorbar: draw the probability colour bar (two classes only); ``False`` leaves it to
            the caller, e.g. a :func:`shared_colorbar` for panels drawn otherwise.

    Tensors only (a list or an array is refused, as everywhere in mixlib); ``x`` is only drawn,
    so any floating dtype will do.
    """
    _check_ax(ax)
    check_module("model", model)
    check_tensor("x", x, min_dim=2)
    y = check_labels("y", y)
    check_same_batch(x=x, y=y)
    check_flag("colorbar", colorbar)
    coords, points = grid(x, resolution, margin)
    g0, g1 = coords
    probs = probabilities(model, points).cpu()  # the model may live on a GPU; NumPy needs the CPU
    y = check_labels("y", y, probs.shape[1]).cpu()  # one colour per class of the model
    x = _points(x)
    if probs.shape[1] == 2:
        p1 = probs[:, 1].reshape(g0.shape).numpy()
        cf = ax.contourf(g0.numpy(), g1.numpy(), p1, levels=_PROBABILITY_LEVELS, cmap=_PROBABILITY_CMAP,
                         alpha=_PROBABILITY_ALPHA)
        ax.contour(g0.numpy(), g1.numpy(), p1, levels=[0.1, 0.9], colors="#222222", linestyles="--",
                   linewidths=0.8)
        ax.contour(g0.numpy(), g1.numpy(), p1, levels=[0.5], colors="#000000", linewidths=1.6)
        if colorbar:
            _share_probability_colorbar(ax, cf)
        colors = np.array(["#2166AC", "#B2182B"])
    else:
        pred = probs.argmax(1).reshape(g0.shape).numpy()
        conf = probs.max(1).values.reshape(g0.shape).numpy()
        cmap = mpl.colors.ListedColormap(PALETTE[: probs.shape[1]])
        extent = (float(g0.min()), float(g0.max()), float(g1.min()), float(g1.max()))
        ax.imshow(pred, origin="lower", extent=extent, cmap=cmap,
                  alpha=0.15 + 0.45 * conf, aspect="auto", interpolation="nearest",
                  vmin=0, vmax=probs.shape[1] - 1)
        colors = np.array(PALETTE[: probs.shape[1]])
    ax.scatter(x[:, 0], x[:, 1], c=colors[y.numpy()], s=12, edgecolors="white", linewidths=0.4)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_aspect("equal", adjustable="box")
    if title:
        ax.set_title(title)


def representation_scatter(ax: Axes, h: torch.Tensor, y: torch.Tensor, *, title: str | None = None) -> None:
    """Scatter 2-D hidden representations ``h`` ``(n, 2)`` (any floating dtype) coloured by the integer labels ``y``."""
    _check_ax(ax)
    check_tensor("h", h, min_dim=2)
    if h.dim() != 2 or h.shape[1] != 2:
        raise ValueError(f"h must have 2 columns, shape (n, 2), got shape {tuple(h.shape)}")
    y = check_labels("y", y)
    check_same_batch(h=h, y=y)
    h, y = _points(h), y.cpu()
    for c in torch.unique(y).tolist():
        sel = (y == c).numpy()
        ax.scatter(h[sel, 0], h[sel, 1], s=10, color=PALETTE[c % len(PALETTE)],
                   label=f"class {c}", alpha=0.8)
    ax.set_xlabel("$h_1$")
    ax.set_ylabel("$h_2$")
    ax.legend(loc="best")
    if title:
        ax.set_title(title)


def singular_value_spectra(
    ax: Axes, spectra: Mapping[str, Sequence[float] | torch.Tensor], *, top: int = 20, title: str | None = None
) -> None:
    """Plot singular-value spectra, one line per entry of ``spectra`` (label -> values, descending).

    ``spectra`` is a mapping such as ``{"ERM": values, "mixup": values}`` (for example from
    :func:`mixlib.flatness.class_singular_values`); each entry's values a 1-D tensor, array or list.
    """
    _check_ax(ax)
    top = check_positive_int("top", top)
    if not isinstance(spectra, Mapping):
        raise TypeError(f"spectra must be a mapping from a label to singular values, such as "
                        f"{{'ERM': values}}, got {type(spectra).__name__}")
    if not spectra:
        raise ValueError("spectra must hold at least one entry")
    lines = {}
    for label, values in spectra.items():
        name = f"spectra[{label!r}]"
        try:
            v = torch.as_tensor(values, dtype=torch.float64).detach()
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"{name} must be a 1-D tensor or a sequence of numbers, "
                            f"got {type(values).__name__}") from None
        if v.dim() != 1 or len(v) == 0:
            raise ValueError(f"{name} must be a non-empty 1-D sequence of singular values, "
                             f"got shape {tuple(v.shape)}")
        if not bool(torch.isfinite(v).all()):
            raise ValueError(f"{name} contains NaN or an infinite value; pass finite numbers")
        lines[label] = v[:top]
    for label, v in lines.items():
        ax.plot(range(1, len(v) + 1), v.numpy(), marker="o", markersize=3, label=label)
    ax.set_xlabel("index of singular value")
    ax.set_ylabel("singular value")
    ax.legend()
    if title:
        ax.set_title(title)


def forest(
    ax: Axes, effects: Mapping[str, object], *, xlabel: str = "difference", title: str | None = None,
    colors: Mapping[str, str] | None = None,
) -> None:
    """A forest plot: one row per entry, its mean as a dot and its 95 % interval as a bar.

    Args:
        ax: The axes to draw on.
        effects: ``{label: stat}`` with ``stat.mean`` and ``stat.ci95`` (a
            :class:`mixlib.stats.Stat`, for example from ``Comparison.paired``), drawn top
            to bottom in order.
        xlabel: The horizontal axis label (say what is subtracted from what).
        title: Optional panel title.
        colors: Optional ``{label: colour}``; default black.
    """
    _check_ax(ax)
    labels = list(effects)
    if not labels:
        raise ValueError("effects must hold at least one entry")
    colors = dict(colors or {})
    for row, label in enumerate(labels):
        stat = effects[label]
        mean, half = float(stat.mean), float(stat.ci95)
        y = len(labels) - 1 - row
        color = colors.get(label, "#222222")
        ax.errorbar([mean], [y], xerr=[[half], [half]], fmt="o", color=color, ecolor=color, capsize=3,
                    markersize=4)
    ax.axvline(0.0, color="#666666", linewidth=0.8, linestyle="--")
    ax.set_yticks(range(len(labels)), list(reversed(labels)))
    ax.set_xlabel(xlabel)
    ax.set_ylim(-0.7, len(labels) - 0.3)
    if title:
        ax.set_title(title)
