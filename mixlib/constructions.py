r"""Constructions that separate input mixup from manifold mixup, and measurements around them.

- :class:`WigglyInterpolant`: a 1-D to 2-D feature map that passes exactly through given points
  and oscillates between them. With the head ``G(z) = z_1`` it fits the points, so its
  manifold-mixup squared loss is zero, while its input-mixup loss is not.
- :func:`commuting_gap` and :func:`linearised_gradient_terms`: what happens to the four-term
  expansion of the manifold-mixup gradient when the head after the mixing point is not affine.
- :func:`class_subspaces`, :func:`directions_for_energy` and :func:`share_outside`: how many
  directions of a hidden space each class occupies, and how much of a point lies outside them.
- :func:`nearest_distance`: how far points (mixed hidden states, say) are from the nearest of a
  chosen set of reference points (training hidden states of chosen classes): whether they land
  where data lives.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mixlib._checks import check_fraction, check_positive, check_positive_int, check_same_batch, check_tensor
from mixlib.gradients import four_terms
from mixlib.mixing import Lam, _check_labels, _check_lam_shape

__all__ = [
    "WigglyInterpolant",
    "commuting_gap",
    "linearised_gradient_terms",
    "class_subspaces",
    "directions_for_energy",
    "share_outside",
    "nearest_distance",
]


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
        knots = check_tensor("knots", knots, min_dim=1).detach().reshape(-1)
        values = check_tensor("values", values, min_dim=1).detach().reshape(-1)
        if knots.numel() < 2:
            raise ValueError(f"knots must hold at least 2 points, got {knots.numel()}")
        if values.shape != knots.shape:
            raise ValueError(f"values must have one entry per knot, shape {tuple(knots.shape)}, "
                             f"got {tuple(values.shape)}")
        order = torch.argsort(knots)
        knots, values = knots[order], values[order]
        if bool((knots[1:] <= knots[:-1]).any()):
            raise ValueError("knots must be distinct")
        for name, v in [("amplitude", amplitude), ("side_amplitude", side_amplitude)]:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise TypeError(f"{name} must be a finite number, got {v!r}")
        self.wiggles = check_positive_int("wiggles", wiggles)
        self.side_frequency = check_positive("side_frequency", side_frequency)
        self.register_buffer("knots", knots.clone())
        self.values = nn.Parameter(values.clone())
        self.amplitude = nn.Parameter(torch.tensor(float(amplitude), dtype=values.dtype))
        self.side_amplitude = nn.Parameter(torch.tensor(float(side_amplitude), dtype=values.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map inputs of shape ``(B,)`` or ``(B, 1)`` to features of shape ``(B, 2)``."""
        x = check_tensor("x", x, min_dim=1)
        if x.dim() == 2 and x.shape[1] == 1:
            x = x[:, 0]
        if x.dim() != 1:
            raise ValueError(f"x must have shape (B,) or (B, 1), got {tuple(x.shape)}")
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
    if not callable(head):
        raise TypeError(f"head must be a callable module, got {type(head).__name__}")
    u, v = check_tensor("u", u, min_dim=1), check_tensor("v", v, min_dim=1)
    batch = check_same_batch(u=u, v=v)
    if u.shape != v.shape:
        raise ValueError(f"v must have the shape of u {tuple(u.shape)}, got {tuple(v.shape)}")
    lam = _check_lam_shape(lam, batch)

    def shaped(t: torch.Tensor) -> Lam:
        if isinstance(lam, torch.Tensor) and lam.dim() == 1:
            return lam.to(t.dtype).reshape((-1,) + (1,) * (t.dim() - 1))
        return lam

    out_u, out_v = head(u), head(v)
    return head(shaped(u) * u + (1 - shaped(u)) * v) - (shaped(out_u) * out_u + (1 - shaped(out_u)) * out_v)


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
    if not isinstance(features, nn.Module) or not isinstance(head, nn.Module):
        raise TypeError("features and head must both be nn.Module instances")
    return four_terms(features, head, x, x2, y, y2, lam)


def _rows(h: object) -> torch.Tensor:
    h = check_tensor("h", h, min_dim=2)
    if h.shape[0] == 0:
        raise ValueError("h must hold at least one representation, got an empty tensor")
    return h.detach().reshape(h.shape[0], -1)


def directions_for_energy(h: torch.Tensor, labels: torch.Tensor, energy: float = 0.9) -> dict[int, int]:
    """For each class, how many principal directions carry ``energy`` of its centred variance.

    The class's hidden states are centred on the class mean; with singular values ``s_1 >= s_2 >= ...``
    the answer is the smallest ``k`` with ``(s_1^2 + ... + s_k^2) / sum_j s_j^2 >= energy``.

    Args:
        h: Hidden representations, shape ``(N, ...)`` (each row flattened).
        labels: Integer class labels, shape ``(N,)``.
        energy: Fraction of the variance to capture, in (0, 1).

    Returns:
        A dict from each class present to its number of directions (0 for a class whose points coincide).
    """
    return {c: int(basis.shape[1]) for c, (_, basis) in class_subspaces(h, labels, energy).items()}


def class_subspaces(
    h: torch.Tensor, labels: torch.Tensor, energy: float = 0.99
) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Each class's mean and the principal directions that carry ``energy`` of its centred variance.

    Args:
        h: Hidden representations, shape ``(N, ...)`` (each row flattened to length ``d``).
        labels: Integer class labels, shape ``(N,)``.
        energy: Fraction of the class's variance the directions must capture, in (0, 1).

    Returns:
        A dict from each class present to ``(mean, basis)``: ``mean`` of shape ``(d,)`` and ``basis``
        of shape ``(d, k)`` with orthonormal columns, the top ``k`` principal directions.
    """
    rows = _rows(h)
    labels = _check_labels("labels", labels)
    check_same_batch(h=rows, labels=labels)
    energy = check_fraction("energy", energy)
    result = {}
    for c in torch.unique(labels).tolist():
        H = rows[labels == c].double()
        mean = H.mean(dim=0)
        _, s, vh = torch.linalg.svd(H - mean, full_matrices=False)
        power = s.pow(2)
        total = float(power.sum())
        if total <= 0:
            k = 0
        else:
            cumulative = torch.cumsum(power, 0) / total
            k = int((cumulative < energy - 1e-12).sum()) + 1
        result[int(c)] = (mean.to(rows.dtype), vh[:k].T.to(rows.dtype))
    return result


def share_outside(points: torch.Tensor, mean: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """The share of each point's offset from ``mean`` that lies outside the span of ``basis``.

    For ``r = p - mean`` and ``P`` the orthogonal projection onto the columns of ``basis``, this is
    ``||r - P r||^2 / ||r||^2``: 0 for a point in the affine subspace ``mean + span(basis)``, 1 for a
    point whose offset is orthogonal to it.

    Args:
        points: Shape ``(N, d)``.
        mean: Shape ``(d,)``.
        basis: Shape ``(d, k)`` with orthonormal columns (``k`` may be 0).

    Returns:
        A tensor of shape ``(N,)`` with values in [0, 1].
    """
    points = check_tensor("points", points, min_dim=2)
    mean = check_tensor("mean", mean, min_dim=1)
    basis = check_tensor("basis", basis, min_dim=2)
    if mean.shape != (points.shape[1],) or basis.shape[0] != points.shape[1]:
        raise ValueError(f"mean must have shape ({points.shape[1]},) and basis ({points.shape[1]}, k); "
                         f"got {tuple(mean.shape)} and {tuple(basis.shape)}")
    r = (points - mean).double()
    b = basis.double()
    outside = r - (r @ b) @ b.T
    norm = r.pow(2).sum(dim=1).clamp_min(torch.finfo(torch.float64).tiny)
    return (outside.pow(2).sum(dim=1) / norm).to(points.dtype)


def nearest_distance(
    points: torch.Tensor, reference: torch.Tensor, allowed: torch.Tensor | None = None
) -> torch.Tensor:
    """Euclidean distance from each point to its nearest allowed reference point.

    Args:
        points: Shape ``(Q, d)``.
        reference: Shape ``(N, d)``.
        allowed: Optional boolean mask of shape ``(Q, N)``: ``allowed[q, k]`` says whether reference
            row ``k`` may serve as the neighbour of point ``q`` (to leave out a mixed point's own two
            endpoints, or to restrict the neighbours to some classes). ``None`` allows all.

    Returns:
        A tensor of shape ``(Q,)``; ``inf`` for a point with no allowed reference row.

    Raises:
        TypeError: If a tensor is not floating point, or ``allowed`` is not boolean.
        ValueError: On mismatched shapes.
    """
    points = check_tensor("points", points, min_dim=2)
    reference = check_tensor("reference", reference, min_dim=2)
    if points.dim() != 2 or reference.dim() != 2 or points.shape[1] != reference.shape[1]:
        raise ValueError(f"points and reference must have shapes (Q, d) and (N, d), "
                         f"got {tuple(points.shape)} and {tuple(reference.shape)}")
    if len(reference) == 0:
        raise ValueError("reference must hold at least one point")
    dist = torch.cdist(points.double(), reference.double())
    if allowed is not None:
        if not isinstance(allowed, torch.Tensor) or allowed.dtype != torch.bool:
            raise TypeError("allowed must be a boolean tensor")
        if allowed.shape != dist.shape:
            raise ValueError(f"allowed must have shape {tuple(dist.shape)}, got {tuple(allowed.shape)}")
        dist = dist.masked_fill(~allowed.to(dist.device), math.inf)
    return dist.min(dim=1).values.to(points.dtype)
