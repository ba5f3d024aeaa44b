"""Slider explorers: a figure that redraws when the reader moves a slider.

A chapter draws the figure for the sliders' start values as an ordinary output, so the static
website shows it, and then calls :func:`explorer` to put sliders under it. In a running notebook
moving a slider redraws the figure below the sliders; on the website, where no kernel runs, the
sliders show as nothing (or as the plain-text note), never as an error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import matplotlib.pyplot as plt
from IPython.display import display
from matplotlib.figure import Figure

__all__ = ["explorer", "show"]

#: What a frontend without widget support shows instead of the sliders.
NOTE = "(Sliders: they redraw the figure when this notebook runs in Jupyter.)"


def show(fig: Figure) -> None:
    """Display ``fig`` now (not at the end of the cell) and close it."""
    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    display(fig)
    plt.close(fig)


def explorer(draw: Callable[..., Figure], controls: Mapping[str, Any], *, note: str = NOTE) -> Any:
    """Sliders (or any ipywidgets value controls) that redraw ``draw(**values)`` on every change.

    Args:
        draw: Makes a new figure from keyword arguments named as in ``controls``.
        controls: ``{argument name: ipywidgets control}``, for example
            ``{"alpha": widgets.SelectionSlider(options=[0.5, 1, 2], value=1)}``.
        note: The plain-text stand-in shown where widgets cannot be displayed.

    Returns:
        The displayed ``ipywidgets.VBox`` (controls above an output area). The output area stays
        empty until a control changes, so the first figure is the caller's static one.
    """
    import ipywidgets as widgets  # imported here: only the chapters' explorers need it

    if not callable(draw):
        raise TypeError(f"draw must be a function that returns a Figure, got {type(draw).__name__}")
    if not isinstance(controls, Mapping) or not controls:
        raise ValueError("controls must be a non-empty mapping from an argument name to a widget")
    for name, control in controls.items():
        if not isinstance(name, str) or not isinstance(control, widgets.ValueWidget):
            raise TypeError(f"controls[{name!r}] must be an ipywidgets value control, got {type(control).__name__}")
    if not isinstance(note, str):
        raise TypeError(f"note must be a string, got {type(note).__name__}")
    out = widgets.Output()

    def redraw(change: object = None) -> None:
        with out:
            out.clear_output(wait=True)
            show(draw(**{name: control.value for name, control in controls.items()}))

    for control in controls.values():
        control.observe(redraw, names="value")
    box = widgets.VBox([widgets.HBox(list(controls.values())), out])
    box.redraw = redraw  # for tests and for readers who want a redraw without moving a slider
    bundle = box._repr_mimebundle_()
    bundle["text/plain"] = note
    display(bundle, raw=True)
    return box
