"""Tests for mixlib.explorer: sliders that redraw a figure."""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from mixlib import explorer as ex  # noqa: E402


def _draw_factory(calls):
    def draw(alpha, lam):
        calls.append((alpha, lam))
        fig, ax = plt.subplots()
        ax.plot([0, 1], [lam, alpha])
        return fig

    return draw


def test_sliders_redraw_with_their_values(monkeypatch):
    shown = []
    monkeypatch.setattr(ex, "display", lambda obj, **kw: shown.append((obj, kw)))
    calls = []
    alpha = widgets.SelectionSlider(options=[0.5, 1.0, 2.0], value=1.0)
    lam = widgets.FloatSlider(value=0.3, min=0, max=1)
    box = ex.explorer(_draw_factory(calls), {"alpha": alpha, "lam": lam})
    assert calls == []  # nothing drawn until a control moves: the caller drew the first figure
    bundle, kw = shown[0]
    assert kw == {"raw": True}
    assert bundle["text/plain"] == ex.NOTE
    assert "application/vnd.jupyter.widget-view+json" in bundle
    lam.value = 0.7
    alpha.value = 2.0
    assert calls == [(1.0, 0.7), (2.0, 0.7)]
    assert isinstance(box, widgets.VBox)
    assert not plt.get_fignums()  # every redrawn figure is closed after display


def test_show_displays_and_closes(monkeypatch):
    shown = []
    monkeypatch.setattr(ex, "display", shown.append)
    fig, _ = plt.subplots()
    ex.show(fig)
    assert shown == [fig] and not plt.get_fignums()


def test_explorer_errors():
    slider = widgets.FloatSlider()
    with pytest.raises(TypeError, match="draw"):
        ex.explorer(None, {"lam": slider})
    with pytest.raises(ValueError, match="controls"):
        ex.explorer(lambda: None, {})
    with pytest.raises(TypeError, match="controls"):
        ex.explorer(lambda lam: None, {"lam": 0.3})
    with pytest.raises(TypeError, match="note"):
        ex.explorer(lambda lam: None, {"lam": slider}, note=3)
    with pytest.raises(TypeError, match="fig"):
        ex.show("figure")
