r"""Where the four-term expansion of :mod:`mixlib.gradients` stops, and what it cannot see.

- :class:`WigglyInterpolant`: a 1-D to 2-D feature map that passes exactly through given points
  and oscillates between them. With the affine head ``G(z) = z_1`` it fits the points, so its
  manifold-mixup squared loss and gradient are zero, while input mixup, which evaluates the
  feature map between the points, sees the wiggles.
- :func:`commuting_gap` and :func:`linearised_gradient_terms`: what happens to the expansion
  when the head after the mixing point is not affine, so that it no longer commutes with mixing.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mixlib._checks import (
    check_callable,
    check_finite_number,
    check_knots,
    check_lam_shape,
    check_model_input,
    check_module,
    check_one_per_example,
    check_positive,
    check_positive_int,
    check_same_batch,
    check_same_shape,
    check_tensor,
)
from mixlib.gradients import four_terms
from mixlib.mixing import Lam

__all__ = ["WigglyInterpolant", "commuting_gap", "linearised_gradient_terms"]


class WigglyInterpolant(nn.Module):
    r"""A feature map :math:`\mathbb{R} \to \mathbb{R}^2` through given points, wiggling between them.

    With knots :math:`x_0 < \dots < x_{n-1}`, values :math:`v_i`, and :math:`t \in [0, 1]` the fraction of
    the way from :math:`x_i` to :math:`x_{i+1}` for a point in that interval,

    .. math::

        F(x) = \Big( (1 - t)\, v_i + t\, v_{i+1} + a \cdot 4 t (1 - t) \sin(2 \pi k t),\;
        b \sin(\omega x) \Big).

    The first coordinate is the piecewise-linear interpolant of the points plus ``wiggles`` (:math:`k`)
    full oscillations per interval, pinned to zero at the knots by the envelope :math:`4t(1-t)`; so
    ``F(knots)[:, 0] == values`` exactly, in floating point too. The second coordinate is a direction
    the head ``G(z) = z_1`` ignores. Inputs outside ``[x_0, x_{n-1}]`` are clamped to it.

    ``values``, ``amplitude`` (:math:`a`) and ``side_amplitude`` (:math:`b`) are parameters, so
    gradients with respect to the feature map can be taken.

    Args:
        knots: Distinct 1-D positions, shape ``(n,)`` with ``n >= 2`` (sorted internally).
        values: The values to hit at the knots, shape ``(n,)``.
        amplitude: Height :math:`a` of the wiggle in the first coordinate (0 gives the plain interpolant).
        wiggles: Full oscillations :math:`k` per interval, an int >= 1.
        side_amplitude: Height :math:`b` of the second coordinate.
        side_frequency: Angular frequency :math:`\omega` of the second coordinate, > 0.
    """

    def __init__(
        self,
        knots: torch.Tensor,
        values: torch.Tensor,
        amplitude: float = 1.0,
        wiggles: int = 2,
        side_amplitude: float = 1.0,
        side_frequency: float = 8.0,
    ) -> None:
        super().__init__()
        knots, values = check_knots(knots, values)
        check_finite_number("amplitude", amplitude)
        check_finite_number("side_amplitude", side_amplitude)
        order = torch.argsort(knots)
        knots, values = knots[order], values[order]
        self.wiggles = check_positive_int("wiggles", wiggles)
        self.side_frequency = check_positive("side_frequency", side_frequency)
        self.register_buffer("knots", knots.clone())
        self.values = nn.Parameter(values.clone())
        self.amplitude = nn.Parameter(torch.tensor(float(amplitude), dtype=values.dtype))
        self.side_amplitude = nn.Parameter(torch.tensor(float(side_amplitude), dtype=values.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map inputs of shape ``(B,)`` or ``(B, 1)`` to features of shape ``(B, 2)``."""
        x = check_tensor("x", x, min_dim=1)
        x = check_one_per_example("x", x, len(x))
        knots = self.knots
        xc = x.clamp(knots[0], knots[-1])
        # interval i holds [knots[i], knots[i+1]); the last knot closes the last interval (t = 1)
        i = (torch.searchsorted(knots, xc, right=True) - 1).clamp(0, len(knots) - 2)
        left, right = knots[i], knots[i + 1]
        t = ((xc - left) / (right - left)).clamp(0, 1)
        line = torch.lerp(self.values[i], self.values[i + 1], t)  # lerp is exact at t = 0 and t = 1
        wiggle = self.amplitude * 4 * t * (1 - t) * torch.sin(2 * math.pi * self.wiggles * t)
        side = self.side_amplitude * torch.sin(self.side_frequency * x)
        return torch.stack([line + wiggle, side], dim=1)

    @staticmethod
    def head(dtype: torch.dtype = torch.float32) -> nn.Linear:
        """The affine head ``G(z) = z_1``: weight ``(1, 0)``, bias 0, as an ``nn.Linear(2, 1)``."""
        head = nn.Linear(2, 1).to(dtype)
        with torch.no_grad():
            head.weight.copy_(torch.tensor([[1.0, 0.0]]))
            head.bias.zero_()
        return head


def commuting_gap(head: nn.Module, u: torch.Tensor, v: torch.Tensor, lam: Lam) -> torch.Tensor:
    """How far ``head`` is from commuting with mixing: ``head(lam u + (1-lam) v) - (lam head(u) + (1-lam) head(v))``.

    It is zero (up to rounding) for an affine head, whatever ``u``, ``v`` and ``lam``.

    Args:
        head: Any module mapping a batch ``(B, d)`` to outputs ``(B, ...)``.
        u: Hidden states, shape ``(B, d)``.
        v: Their partners, same shape.
        lam: Mixing weight in [0, 1]: a number or a tensor of shape ``(B,)``.

    Returns:
        The gap, shaped like ``head(u)``.
    """
    check_callable("head", head)
    u, v = check_tensor("u", u, min_dim=1), check_tensor("v", v, min_dim=1)
    check_same_batch(u=u, v=v)
    check_same_shape("v", v, "u", u)
    if isinstance(head, nn.Module):  # a float16 or float64 u would fail deep in a float32 head
        check_model_input("u", u, head, "head")
        check_model_input("v", v, head, "head")
    lam = check_lam_shape(lam, len(u))

    def blend(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        w = lam.to(a.dtype).reshape((-1,) + (1,) * (a.dim() - 1)) if isinstance(lam, torch.Tensor) else lam
        return w * a + (1 - w) * b

    return head(blend(u, v)) - blend(head(u), head(v))


def linearised_gradient_terms(
    features: nn.Module,
    head: nn.Module,
    x: torch.Tensor,
    x2: torch.Tensor,
    y: torch.Tensor,
    y2: torch.Tensor,
    lam: Lam,
) -> dict[str, torch.Tensor]:
    """The four terms of the manifold-mixup gradient, computed as if ``head`` were affine, for any head.

    This applies the formula of :func:`mixlib.gradients.gradient_terms` verbatim to a head with one
    output that may be nonlinear: with the residuals of the *original* examples
    ``e = y - head(features(x))``, ``e2 = y2 - head(features(x2))`` and ``g(x)`` the gradient of
    ``head(features(x))`` with respect to the parameters of ``features``, the terms are
    ``-lam^2 e g(x)``, ``-(1-lam)^2 e2 g(x2)``, ``-lam (1-lam) e2 g(x)`` and ``-lam (1-lam) e g(x2)``
    (summed over the batch). ``"autograd"`` is the true gradient of the minimised loss
    ``1/2 (lam y + (1-lam) y2 - head(lam features(x) + (1-lam) features(x2)))^2`` summed over the batch.

    For an affine head the four terms add up to ``"autograd"`` and agree with
    :func:`~mixlib.gradients.gradient_terms`; for a nonlinear head they do not, and the difference
    measures how much of the gradient the expansion misses.

    Args:
        features: The feature extractor F, any module mapping a batch to shape ``(B, d)``; it should
            treat examples independently.
        head: Any module mapping ``(B, d)`` to ``(B, 1)`` or ``(B,)``, held fixed.
        x: The examples, shape ``(B, ...)``.
        x2: Their partners, shape ``(B, ...)``.
        y: Targets of ``x``, shape ``(B,)`` or ``(B, 1)``.
        y2: Targets of ``x2``, same shape.
        lam: Mixing weight in [0, 1]: a number or a tensor of shape ``(B,)``.

    Returns:
        A dict with keys ``"ordinary_x"``, ``"ordinary_x2"``, ``"cross_x"``, ``"cross_x2"`` and
        ``"autograd"``, each a flat vector over the parameters of ``features``.
    """
    check_module("features", features)
    check_module("head", head)
    return four_terms(features, head, x, x2, y, y2, lam)
