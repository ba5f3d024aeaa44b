"""Figures in one consistent style.

Every figure has a white background and dark ink, so it stays readable on the site's
light and dark themes alike; colours come from a colour-blind-safe palette.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import nn

from ._checks import check_positive_int, check_tensor
from .metrics import grid, probabilities

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
    "legend.frameon": False,
    "figure.dpi": 100,
    "savefig.dpi": 100,
}


def use_style() -> None:
    """Apply the book's matplotlib style globally (call once, after the imports)."""
    mpl.rcParams.update(STYLE)


def figure(ncols: int = 1, nrows: int = 1, width: float = 4.0, height: float = 3.4) -> tuple[Figure, np.ndarray]:
    """A figure of ``nrows x ncols`` panels, each ``width x height`` inches; axes as a flat array."""
    ncols = check_positive_int("ncols", ncols)
    nrows = check_positive_int("nrows", nrows)
    # No rc_context here: the notebook's inline backend may load inside it, and leaving the
    # context would switch interactive mode off, so later figures would never be shown.
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows),
                             squeeze=False, layout="constrained", facecolor=STYLE["figure.facecolor"])
    return fig, axes.ravel()


def decision_boundary(
    ax: Axes,
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    resolution: int = 200,
    margin: float = 0.5,
    title: str | None = None,
) -> None:
    """Draw a 2-D classifier's probability contours, its decision boundary and the data.

    For two classes the filled contours show ``P(class 1 | x)`` from 0 to 1, with the 0.5
    boundary as a solid line and the 0.1 / 0.9 levels dashed; a wide band between the dashed
    lines means an unsure model, a thin one an over-confident model. For more classes the
    shading is the predicted class and its lightness the top probability.

    Args:
        ax: axes to draw on.
        model: maps ``(n, 2)`` inputs to ``(n, C)`` logits.
        x: the points to scatter, shape ``(n, 2)``.
        y: their integer labels.
        resolution: grid points per axis.
        margin: how far the grid extends beyond the data.
        title: panel title.
    """
    coords, points = grid(x, resolution, margin)
    g0, g1 = coords
    probs = probabilities(model, points)
    if probs.shape[1] == 2:
        p1 = probs[:, 1].reshape(g0.shape).numpy()
        cf = ax.contourf(g0.numpy(), g1.numpy(), p1, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.75)
        ax.contour(g0.numpy(), g1.numpy(), p1, levels=[0.1, 0.9], colors="#222222", linestyles="--",
                   linewidths=0.8)
        ax.contour(g0.numpy(), g1.numpy(), p1, levels=[0.5], colors="#000000", linewidths=1.6)
        ax.figure.colorbar(cf, ax=ax, label="P(class 1)", shrink=0.85)
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
    ax.scatter(x[:, 0].numpy(), x[:, 1].numpy(), c=colors[y.numpy()], s=12, edgecolors="white", linewidths=0.4)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_aspect("equal", adjustable="box")
    if title:
        ax.set_title(title)


def representation_scatter(ax: Axes, h: torch.Tensor, y: torch.Tensor, *, title: str | None = None) -> None:
    """Scatter 2-D hidden representations ``h`` coloured by label ``y``."""
    check_tensor("h", h, min_dim=2)
    if h.shape[1] != 2:
        raise ValueError(f"h must have 2 columns, got shape {tuple(h.shape)}")
    h = h.detach()
    for c in torch.unique(y).tolist():
        sel = y == c
        ax.scatter(h[sel, 0].numpy(), h[sel, 1].numpy(), s=10, color=PALETTE[c % len(PALETTE)],
                   label=f"class {c}", alpha=0.8)
    ax.set_xlabel("$h_1$")
    ax.set_ylabel("$h_2$")
    ax.legend(loc="best", fontsize=8)
    if title:
        ax.set_title(title)


def singular_value_spectra(
    ax: Axes, spectra: Mapping[str, Sequence[float] | torch.Tensor], *, top: int = 20, title: str | None = None
) -> None:
    """Plot singular-value spectra, one line per entry of ``spectra`` (label -> values, descending)."""
    top = check_positive_int("top", top)
    for label, values in spectra.items():
        v = torch.as_tensor(values, dtype=torch.float64)[:top]
        ax.plot(range(1, len(v) + 1), v.numpy(), marker="o", markersize=3, label=label)
    ax.set_xlabel("index of singular value")
    ax.set_ylabel("singular value")
    ax.legend()
    if title:
        ax.set_title(title)
