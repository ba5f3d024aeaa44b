"""Measuring flatness: class-conditional singular values and linearity along chords.

Two measurements from the chapters on mixup and manifold mixup:

- **Flattening** (manifold-mixup paper, arXiv 1806.05236, §3.2): stack the hidden
  representations of one class as the rows of a matrix and take its singular values. A
  flattened class has one dominant direction: a large first singular value and small others.
  :func:`flattening_summary` reports the largest singular value and the sum of the others,
  averaged over classes, the paper's measure. Those raw singular values mix the class's
  distance from the origin with its shape; :func:`class_dimension` measures the shape alone,
  as the number of directions the *centred* class covariance spreads over.
- **Linearity between examples** (mixup's goal): walk the straight segment between two inputs
  and compare the model's output with the straight line between its outputs at the ends
  (:func:`chord_nonlinearity`); the same for a representation, relative to the chord's length
  (:func:`chord_deviation`, chapter 07's bend), split into the part the linear head reads and the
  part it cannot see (:func:`head_split_bend`).
- **Sensitivity**: how far a perturbation (a rotation, say) moves the features, relative to the
  typical distance between two examples (:func:`sensitivity_ratio`).
- **Subspaces and distances**: how many principal directions each class occupies
  (:func:`class_subspaces`, :func:`directions_for_energy`), how much of a point lies outside a
  class's subspace (:func:`share_outside`), and how far points (mixed hidden states, say) are
  from the nearest of a chosen set of reference points (:func:`nearest_distance`): whether they
  land where data lives.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import torch
from torch import nn

from mixlib._checks import (
    check_callable,
    check_choice,
    check_class_rows,
    check_flag,
    check_fraction,
    check_module,
    check_nonempty,
    check_point_sets,
    check_positive_int,
    check_reduction,
    check_same_batch,
    check_same_shape,
    check_subspace,
    check_tensor,
    model_error,
)
from mixlib.mixing import reduce_batch

__all__ = [
    "class_singular_values",
    "flattening_summary",
    "class_dimension",
    "chord_outputs",
    "chord_nonlinearity",
    "class_subspaces",
    "directions_for_energy",
    "share_outside",
    "nearest_distance",
    "chord_deviation",
    "head_split_bend",
    "sensitivity_ratio",
]


def class_singular_values(
    h: torch.Tensor, labels: torch.Tensor, center: bool = False, num_classes: int | None = None
) -> dict[int, torch.Tensor]:
    """Singular values of each class's matrix of hidden representations.

    Args:
        h: Hidden representations of shape ``(N, ...)``; each row, flattened, is one example.
        labels: Integer class labels of shape ``(N,)``.
        center: If ``False`` (default), use the raw representations, as the paper does. If
            ``True``, subtract the class mean first, so that the singular values describe the
            spread of the class around its mean (principal components) instead of also its
            distance from the origin, which otherwise dominates the first singular value.
        num_classes: If given, labels must lie in ``[0, num_classes)``.

    Returns:
        A dict from each class present in ``labels`` (sorted) to its singular values, in
        descending order, a tensor of length ``min(n_class, dim)`` in ``h``'s dtype. Half precision
        (float16, bfloat16), which torch's SVD does not take, is computed in float32 and rounded
        back, as :func:`class_subspaces` computes in float64.
    """
    rows, labels = check_class_rows(h, labels, num_classes)
    check_flag("center", center)
    dtype = rows.dtype
    if dtype in (torch.float16, torch.bfloat16):
        rows = rows.float()
    result = {}
    for c in torch.unique(labels).tolist():
        H = rows[labels == c]
        if center:
            H = H - H.mean(dim=0, keepdim=True)
        result[int(c)] = torch.linalg.svdvals(H).to(dtype)
    return result


def flattening_summary(
    h: torch.Tensor, labels: torch.Tensor, center: bool = False, num_classes: int | None = None
) -> tuple[float, float]:
    """The paper's flattening measure: largest singular value and sum of the others, averaged over classes.

    Args:
        h: Hidden representations of shape ``(N, ...)``.
        labels: Integer class labels of shape ``(N,)``.
        center: Subtract each class's mean first (see :func:`class_singular_values`).
        num_classes: If given, labels must lie in ``[0, num_classes)``.

    Returns:
        ``(mean over classes of s_1, mean over classes of s_2 + s_3 + ...)``. Flatter classes have
        a smaller second number relative to the first.
    """
    values = class_singular_values(h, labels, center, num_classes).values()
    top = [float(s[0]) for s in values]
    rest = [float(s[1:].sum()) for s in values]
    return sum(top) / len(top), sum(rest) / len(rest)


_DIMENSION_MEASURES = ("participation_ratio", "effective_rank")


def class_dimension(
    h: torch.Tensor,
    labels: torch.Tensor,
    measure: str = "participation_ratio",
    reduction: str = "mean",
) -> float | dict[int, float]:
    """How many directions each class spreads over: a scale-free measure of shape.

    For each class, take the eigenvalues ``v_1 >= v_2 >= ...`` of the covariance of its centred
    representations (the squared centred singular values divided by ``n_c - 1``; the divisor
    cancels below). Then

    - ``"participation_ratio"``: ``(sum_j v_j)^2 / sum_j v_j^2``;
    - ``"effective_rank"``: ``exp(-sum_j p_j log p_j)`` with ``p_j = v_j / sum_k v_k``
      (Roy and Vetterli's effective rank of the covariance).

    Both equal ``r`` when the class spreads equally over ``r`` orthogonal directions, both are
    1 for a class on a line, and neither changes when the representation is scaled or shifted.
    Unlike the uncentred singular values of :func:`flattening_summary`, they do not see how far
    the class sits from the origin.

    Args:
        h: Hidden representations of shape ``(N, ...)``; each row, flattened, is one example.
        labels: Integer class labels of shape ``(N,)``.
        measure: ``"participation_ratio"`` (default) or ``"effective_rank"``.
        reduction: ``"mean"`` (default) for the mean over classes with equal weight, or
            ``"none"`` for a dict from each class to its value.

    Returns:
        A float, or a dict ``{class: value}`` when ``reduction="none"``.

    Raises:
        ValueError: for an unknown ``measure`` or ``reduction``, or when a class has fewer than
            two examples or all its representations are equal (no spread to measure).
    """
    check_choice("measure", measure, _DIMENSION_MEASURES)
    check_reduction(reduction, ("mean", "none"))
    spectra = class_singular_values(h, labels, center=True)
    result: dict[int, float] = {}
    for c, s in spectra.items():
        v = s.double() ** 2
        total = float(v.sum())
        if int((labels == c).sum()) < 2 or total <= 0.0:
            raise ValueError(f"class {c} of labels needs at least two distinct representations in h")
        if measure == "participation_ratio":
            result[c] = total**2 / float((v**2).sum())
        else:
            p = v / total
            p = p[p > 0]
            result[c] = float(torch.exp(-(p * p.log()).sum()))
    if reduction == "none":
        return result
    return sum(result.values()) / len(result)


def chord_outputs(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    x2: torch.Tensor,
    n_points: int = 11,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's outputs along the straight segments between ``x[i]`` and ``x2[i]``.

    The point at ``t`` is ``t * x + (1 - t) * x2``, with ``t`` playing the role of ``lam`` in
    mixup: ``t = 0`` is ``x2`` and ``t = 1`` is ``x``. All ``n_points * B`` points go through the
    model in one batch, without gradients (call ``model.eval()`` first if it has dropout or
    batch norm).

    Args:
        model: Any module or function mapping a batch of inputs to a batch of outputs.
        x: The examples, shape ``(B, ...)``.
        x2: Their partners, shape ``(B, ...)``.
        n_points: Number of equally spaced values of ``t`` from 0 to 1, >= 2.

    Returns:
        ``(ts, outputs)``: ``ts`` of shape ``(n_points,)`` and ``outputs`` of shape
        ``(n_points, B, ...)``, where ``outputs[j, i]`` is the output at ``ts[j] * x[i] + (1 - ts[j]) * x2[i]``.
    """
    check_callable("model", model)
    x, x2 = check_tensor("x", x, min_dim=1), check_tensor("x2", x2, min_dim=1)
    batch = check_same_batch(x=x, x2=x2)
    check_same_shape("x2", x2, "x", x)
    check_nonempty("x", x, "pair")
    n_points = check_positive_int("n_points", n_points)
    if n_points < 2:
        raise ValueError(f"n_points must be >= 2 to include both ends of the chord, got {n_points}")
    ts = torch.linspace(0, 1, n_points, dtype=x.dtype, device=x.device)
    t = ts.reshape((n_points, 1) + (1,) * (x.dim() - 1))
    points = t * x + (1 - t) * x2  # (n_points, B, ...)
    flat = points.reshape((n_points * batch,) + tuple(x.shape[1:]))
    try:
        with torch.no_grad():
            outputs = model(flat)
    except torch.OutOfMemoryError:
        raise
    except (RuntimeError, ValueError) as problem:  # the model's own message would name the chord's points
        one_pair = " (for a single pair, pass x[None] and x2[None])" if x.dim() == 1 else ""
        raise model_error("x", x, problem, (
            f": x and x2 must be batches (B, ...) of the model's inputs, B = {batch} here{one_pair}; the "
            f"{n_points} points of each chord went in as one batch of shape {tuple(flat.shape)}")) from None
    return ts, outputs.reshape((n_points, batch) + tuple(outputs.shape[1:]))


def _identity(out: torch.Tensor) -> torch.Tensor:
    return out


def chord_nonlinearity(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    x2: torch.Tensor,
    n_points: int = 11,
    transform: str | Callable[[torch.Tensor], torch.Tensor] | None = "softmax",
    reduction: str = "mean",
) -> torch.Tensor:
    """How far the model is from linear between pairs of examples.

    With ``f = transform(model(.))``, the deviation of the chord at ``t`` is

        ``|| f(t x + (1 - t) x2) - (t f(x) + (1 - t) f(x2)) ||``

    (Euclidean norm over the output dimensions), averaged over ``n_points`` equally spaced ``t``
    in [0, 1], ends included (where it is zero). It is zero for a model that is linear between
    the two examples, which is what mixup asks of a model.

    Args:
        model: Any module or function mapping a batch of inputs to a batch of outputs.
        x: The examples, shape ``(B, ...)``.
        x2: Their partners, shape ``(B, ...)``.
        n_points: Number of points on each chord, >= 2.
        transform: What ``f`` is. ``"softmax"`` (default, for classifiers: mixup mixes targets that
            are probability vectors, so linearity is asked of the predicted probabilities);
            ``None`` for the raw outputs (regression, or logits); or any function applied to the
            outputs.
        reduction: ``"mean"`` over the pairs (a scalar), ``"sum"``, or ``"none"`` for one value per pair.

    Returns:
        A scalar tensor, or a tensor of shape ``(B,)`` when ``reduction="none"``.
    """
    reduction = check_reduction(reduction)
    if isinstance(transform, str) and transform == "softmax":
        f: Callable[[torch.Tensor], torch.Tensor] = partial(torch.softmax, dim=-1)
    elif transform is None:
        f = _identity
    elif callable(transform):
        f = transform
    else:
        raise ValueError(f"transform must be 'softmax', None or a callable, got {transform!r}")
    ts, outputs = chord_outputs(model, x, x2, n_points)
    fs = f(outputs)
    t = ts.to(fs.dtype).reshape((-1,) + (1,) * (fs.dim() - 1))
    straight = t * fs[-1] + (1 - t) * fs[0]  # fs[-1] is f(x) (t = 1), fs[0] is f(x2) (t = 0)
    deviation = (fs - straight).reshape(fs.shape[0], fs.shape[1], -1).norm(dim=-1)  # (n_points, B)
    return reduce_batch(deviation.mean(dim=0), reduction)


def directions_for_energy(
    h: torch.Tensor, labels: torch.Tensor, energy: float = 0.9, num_classes: int | None = None
) -> dict[int, int]:
    """For each class, how many principal directions carry ``energy`` of its centred variance.

    The class's hidden states are centred on the class mean; with singular values ``s_1 >= s_2 >= ...``
    the answer is the smallest ``k`` with ``(s_1^2 + ... + s_k^2) / sum_j s_j^2 >= energy``.

    Args:
        h: Hidden representations, shape ``(N, ...)`` (each row flattened).
        labels: Integer class labels, shape ``(N,)``.
        energy: Fraction of the variance to capture, in (0, 1).
        num_classes: If given, labels must lie in ``[0, num_classes)``.

    Returns:
        A dict from each class present to its number of directions (0 for a class whose points coincide).
    """
    subspaces = class_subspaces(h, labels, energy, num_classes)
    return {c: int(basis.shape[1]) for c, (_, basis) in subspaces.items()}


def class_subspaces(
    h: torch.Tensor, labels: torch.Tensor, energy: float = 0.99, num_classes: int | None = None
) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Each class's mean and the principal directions that carry ``energy`` of its centred variance.

    Args:
        h: Hidden representations, shape ``(N, ...)`` (each row flattened to length ``d``).
        labels: Integer class labels, shape ``(N,)``.
        energy: Fraction of the class's variance the directions must capture, in (0, 1).
        num_classes: If given, labels must lie in ``[0, num_classes)``.

    Returns:
        A dict from each class present to ``(mean, basis)``: ``mean`` of shape ``(d,)`` and ``basis``
        of shape ``(d, k)`` with orthonormal columns, the top ``k`` principal directions.
    """
    rows, labels = check_class_rows(h, labels, num_classes)
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
    check_subspace(points, mean, basis)
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
    check_point_sets(points, reference, allowed)
    dist = torch.cdist(points.double(), reference.double())
    if allowed is not None:
        dist = dist.masked_fill(~allowed.to(dist.device), math.inf)
    return dist.min(dim=1).values.to(points.dtype)


def _chord_bends(
    features: nn.Module | Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, x2: torch.Tensor, n_points: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The bend vectors ``f(x_t) - (t f(x) + (1 - t) f(x2))`` ``(n_points, B, D)`` and the chord lengths ``(B,)``.

    ``f = features``, each output flattened to length ``D``; the chord length is ``||f(x) - f(x2)||``.
    """
    check_callable("features", features)
    ts, f = chord_outputs(features, x, x2, n_points)
    f = f.reshape(f.shape[0], f.shape[1], -1)
    t = ts.to(f.dtype).reshape(-1, 1, 1)
    straight = t * f[-1] + (1 - t) * f[0]  # f[-1] is f(x) (t = 1), f[0] is f(x2) (t = 0)
    return f - straight, (f[-1] - f[0]).norm(dim=-1)


def chord_deviation(
    features: nn.Module | Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, x2: torch.Tensor, n_points: int = 11
) -> torch.Tensor:
    """How far the features bend away from a straight line along input chords, relative to the chord.

    For each pair, with ``x_t = t x + (1 - t) x2`` and ``f = features``, the mean over ``n_points``
    equally spaced ``t`` in [0, 1] of ``||f(x_t) - (t f(x) + (1 - t) f(x2))|| / ||f(x) - f(x2)||``:
    zero for features affine along the chord, and scale-free. ``f`` may be any map, the whole model
    included: ``chord_deviation(model, x, x2)`` is the *logit bend*, the same measure on the outputs
    (see :func:`head_split_bend` for which part of the features' bend reaches them).

    Args:
        features: Any module or function mapping a batch of inputs to a batch of outputs (each
            flattened to a vector), for example ``model.features`` of a :class:`~mixlib.manifold.StagedNet`.
        x: The examples, shape ``(B, ...)``.
        x2: Their partners, shape ``(B, ...)``.
        n_points: Number of points on each chord, >= 2.

    Returns:
        One value per pair, shape ``(B,)``.
    """
    bend, length = _chord_bends(features, x, x2, n_points)
    return bend.norm(dim=-1).mean(0) / length.clamp_min(1e-12)


def _row_space(weight: torch.Tensor) -> torch.Tensor:
    """An orthonormal basis ``(d, r)`` of the span of the rows of ``weight`` ``(C, d)``, in float64.

    From the SVD ``W = U S V^T``: the columns of ``V`` whose singular values exceed
    ``max(C, d) * eps * s_max`` (``eps`` of the weight's dtype, as ``torch.linalg.matrix_rank``), so that a
    rank-deficient weight gets its rank ``r`` and a zero weight ``r = 0``.
    """
    w = weight.detach().double()
    _, s, vh = torch.linalg.svd(w, full_matrices=False)
    tol = max(w.shape) * torch.finfo(weight.dtype).eps * (float(s[0]) if len(s) else 0.0)
    return vh[s > tol].T


def head_split_bend(model: nn.Module, x: torch.Tensor, x2: torch.Tensor, n_points: int = 11) -> dict[str, torch.Tensor]:
    """The features' bend along chords, split into the directions the linear head reads and the rest.

    The model's features ``h = model.features(.)`` (the input to the head) bend along the chord
    ``x_t = t x + (1 - t) x2`` by ``d_t = h(x_t) - (t h(x) + (1 - t) h(x2))``. The head
    ``G(h) = W h + b`` (``W`` of shape ``(C, d)``) reads ``h`` only through the row space of ``W``, the
    span of its rows: with ``P`` the orthogonal projector onto it (from an SVD of ``W``; a rank-deficient
    ``W`` gives a smaller space), ``W d_t = W P d_t``, and the part ``(I - P) d_t`` in the complement (the
    null space of ``W``) never reaches the logits. With :func:`chord_deviation`'s normalisation,

    - ``"full"``: ``mean_t ||d_t|| / ||h(x) - h(x2)||``, exactly ``chord_deviation(model.features, x, x2)``;
    - ``"head"``: ``mean_t ||P d_t|| / ||h(x) - h(x2)||``, the bend where the head looks;
    - ``"rest"``: ``mean_t ||(I - P) d_t|| / ||h(x) - h(x2)||``, the bend the head cannot see.

    At every ``t``, ``||d_t||^2 = ||P d_t||^2 + ||(I - P) d_t||^2``; after the mean over ``t`` this leaves
    ``sqrt(head^2 + rest^2) <= full <= head + rest``, with ``full^2 = head^2 + rest^2`` when the bend keeps
    one direction along the chord (``d_t = s_t v``). The logit bend is ``chord_deviation(model, x, x2)``.

    Args:
        model: A :class:`~mixlib.manifold.StagedNet` (any module with a ``features`` method and an
            ``nn.Linear`` ``head`` applied to its output).
        x: The examples, shape ``(B, ...)``.
        x2: Their partners, shape ``(B, ...)``.
        n_points: Number of points on each chord, >= 2.

    Returns:
        ``{"full": ..., "head": ..., "rest": ...}``, each of shape ``(B,)``, one value per pair.

    Raises:
        TypeError: If ``model`` has no ``features`` method or its ``head`` is not an ``nn.Linear``.
        ValueError: On mismatched ``x`` and ``x2``, ``n_points < 2``, or features whose width is not the
            head's ``in_features``.
    """
    check_module("model", model, "a StagedNet")
    features = getattr(model, "features", None)
    if not callable(features):
        raise TypeError(f"model must have a features method and a linear head (a StagedNet), "
                        f"got {type(model).__name__}")
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Linear):
        raise TypeError(f"model.head must be an nn.Linear (the split needs the head's weight), "
                        f"got {type(head).__name__}")
    bend, length = _chord_bends(features, x, x2, n_points)
    if bend.shape[-1] != head.in_features:
        raise ValueError(f"model.features gives {bend.shape[-1]} values per example but model.head reads "
                         f"in_features={head.in_features}")
    basis = _row_space(head.weight).to(bend.device)
    inside = (bend.double() @ basis) @ basis.T
    outside = bend.double() - inside
    length = length.clamp_min(1e-12)
    return {
        "full": bend.norm(dim=-1).mean(0) / length,
        "head": (inside.norm(dim=-1).mean(0) / length.double()).to(bend.dtype),
        "rest": (outside.norm(dim=-1).mean(0) / length.double()).to(bend.dtype),
    }


def _mean_pairwise_distance(rows: torch.Tensor, chunk: int = 1024) -> float:
    """Mean Euclidean distance between two different rows of ``rows`` ``(N, D)``, N >= 2, over all pairs."""
    total = 0.0
    for start in range(0, len(rows), chunk):
        total += float(torch.cdist(rows[start:start + chunk], rows, compute_mode="donot_use_mm_for_euclid_dist").sum())
    return total / (len(rows) * (len(rows) - 1))


def sensitivity_ratio(
    features: nn.Module | Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, x_perturbed: torch.Tensor
) -> float:
    """How far a perturbation moves the features, relative to the typical distance between examples.

    With ``f = features`` (each output flattened to a vector) and ``N`` examples,

        ``mean_i ||f(x'_i) - f(x_i)||  /  mean_{i != j} ||f(x_i) - f(x_j)||``

    where ``x'_i = x_perturbed[i]`` is ``x[i]`` perturbed (rotated or shifted, say) and the denominator
    averages over all ``N (N - 1)`` ordered pairs of different examples of ``x``. Small values: the
    perturbation moves an example much less than the distance to another one. The ratio does not change
    when the features are scaled, and ``features=nn.Identity()`` gives the reference in pixel space.

    Args:
        features: Any module or function mapping a batch of inputs to a batch of outputs, for example
            ``model.features``, or ``nn.Identity()`` for the inputs themselves.
        x: The examples, shape ``(N, ...)``, ``N >= 2``.
        x_perturbed: Their perturbed versions, the shape of ``x``.

    Returns:
        The ratio, a float.

    Raises:
        ValueError: On mismatched shapes, fewer than two examples, or features that map every example of
            ``x`` to one point (no distance between examples to compare with).
    """
    check_callable("features", features)
    x = check_tensor("x", x, min_dim=1)
    x_perturbed = check_tensor("x_perturbed", x_perturbed, min_dim=1)
    n = check_same_batch(x=x, x_perturbed=x_perturbed)
    check_same_shape("x_perturbed", x_perturbed, "x", x)
    if n < 2:
        raise ValueError(f"x must hold at least two examples (the denominator compares different ones), got {n}")
    with torch.no_grad():
        f = features(torch.cat([x, x_perturbed])).reshape(2 * n, -1).double()
    spread = _mean_pairwise_distance(f[:n])
    if spread <= 0.0:
        raise ValueError("features sends every example of x to the same point; the ratio is undefined")
    return float((f[n:] - f[:n]).norm(dim=1).mean()) / spread
