"""Checkers for chapter 7, explicit flattening."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..flatness import class_dimension
from . import Feedback, as_float, as_tensor, call, checker, form_hint, hint, passed, prefixed, staged

# ---------------------------------------------------------------------------------------------
# Exercise 1: the scale-free curvature of a trajectory
# ---------------------------------------------------------------------------------------------


def _sq(t: torch.Tensor) -> torch.Tensor:
    return t.pow(2).sum(-1)


def _curvature_cases() -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(707)
    cases = []
    for b, d in [(6, 5), (4, 9)]:
        h_before, h, h_after = (torch.randn(b, d, generator=g, dtype=torch.float64) for _ in range(3))
        cases.append((h_before, h, h_after))
    # a straight, evenly spaced row and a kinked row, to separate the usual mistakes
    a = torch.tensor([[0.0, 1.0, 2.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    step = torch.tensor([[1.0, -1.0, 0.5], [1.0, 0.0, 0.0]], dtype=torch.float64)
    kink = torch.tensor([[0.0, 0.0, 0.0], [0.0, 2.0, 0.0]], dtype=torch.float64)
    cases.append((a - step, a, a + step + kink))
    return cases


_EXTRAPOLATION = staged("the extrapolation is off: check where a straight line through h_{t-1} and h_t, with equal "
                        "steps, puts the next point.",
                        "It predicts h_{t+1} = 2 h_t - h_{t-1}, so the miss is h_after - 2 h + h_before.")


def _curvature_candidates(h_before: torch.Tensor, h: torch.Tensor,
                          h_after: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    miss = h_after - 2 * h + h_before
    steps = _sq(h_after - h) + _sq(h - h_before)
    return [
        ("you returned the squared miss alone, without dividing by the squared steps. Without the "
         "denominator, shrinking the features lowers the loss: the value must not change when every "
         "h is scaled.", _sq(miss)),
        (_EXTRAPOLATION, _sq(h_after - 2 * h_before + h) / steps),
        (_EXTRAPOLATION, _sq(h_after - h - h_before) / steps),
        ("you used plain norms where the exercise asks for SQUARED norms, in the numerator or the "
         "denominator.", miss.norm(dim=-1) / ((h_after - h).norm(dim=-1) + (h - h_before).norm(dim=-1))),
        ("you used plain norms where the exercise asks for SQUARED norms, in the numerator or the "
         "denominator.", miss.norm(dim=-1) / steps),
        ("the denominator should hold BOTH steps, ||h_after - h||^2 + ||h - h_before||^2; you used one.",
         _sq(miss) / _sq(h_after - h)),
        ("the denominator should hold BOTH steps, ||h_after - h||^2 + ||h - h_before||^2; you used one.",
         _sq(miss) / _sq(h - h_before)),
        ("you divided by the squared length of the whole chord, ||h_after - h_before||^2; the exercise "
         "divides by the sum of the squared lengths of the two steps.", _sq(miss) / _sq(h_after - h_before)),
        ("you took the ratio of the two steps' lengths (how uneven the spacing is); the numerator is "
         "the miss of the linear extrapolation, ||h_after - 2 h + h_before||^2.",
         _sq(h_after - h) / _sq(h - h_before)),
    ]


@checker("curvature(h_before, h, h_after)",
         nudge="Look at the two parts of the ratio, row by row: how far the third point lies from where a straight, "
               "evenly spaced line through the first two would put it, compared with the lengths of the two steps, "
               "all measured with squared norms.",
         shortcuts=("mixlib.routes.curvature_loss", "mixlib.routes._curvature"))
def check_curvature(curvature: Callable) -> Feedback:
    """Check ``curvature(h_before, h, h_after) -> (B,)``.

    The expected answer, per row, is ``||h_after - 2 h + h_before||^2 /
    (||h_after - h||^2 + ||h - h_before||^2)`` with squared Euclidean norms over the last
    dimension: zero on a straight, evenly spaced line and unchanged when the rows are scaled.
    """
    for h_before, h, h_after in _curvature_cases():
        expected = _sq(h_after - 2 * h + h_before) / (_sq(h_after - h) + _sq(h - h_before))
        wrong = _curvature_candidates(h_before, h, h_after)
        out, problem = call(curvature, h_before, h, h_after)
        if problem is not None:
            return problem
        if isinstance(out, torch.Tensor) and out.numel() == 1 and h.shape[0] > 1:
            return form_hint(f"return one value per row, a tensor of shape ({h.shape[0]},); you returned a single "
                             "number. Did you average or sum over the rows?")
        if isinstance(out, np.ndarray):
            return form_hint("the exercise asks for a tensor of shape (B,), and you returned a NumPy array: keep "
                             "the computation in torch (a detour through NumPy also cuts the gradient that a loss "
                             "built on the curvature needs), or convert at the end with torch.as_tensor(...).")
        got, problem = as_tensor(out, "the curvature", shape=(h.shape[0],))
        if problem is not None:
            return problem
        if torch.allclose(got, expected, rtol=1e-4, atol=1e-8):
            continue
        for message, value in wrong:
            if torch.allclose(got, value, rtol=1e-4, atol=1e-8):
                return hint(message)
        if torch.allclose(got * h.shape[1], expected, rtol=1e-4, atol=1e-8) or torch.allclose(
                got, expected * h.shape[1], rtol=1e-4, atol=1e-8):
            return hint("you averaged over the features in one place and summed in the other: use the same "
                        "reduction (a sum, the squared norm) in the numerator and the denominator.")
        return hint("your values differ from the curvature on random rows. Check the miss of the straight-line "
                    "extrapolation, the squared norms over the last dimension, and the denominator (both steps).",
                    "The miss is h_after - 2 h + h_before.")
    return passed("your curvature matches the definition on random rows, and is zero on a straight, "
                  "evenly spaced row.")


# ---------------------------------------------------------------------------------------------
# Exercise 2: the class dimension
# ---------------------------------------------------------------------------------------------


def _dimension_cases() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(717)
    cases = []
    for sizes, dim in [((12, 30, 18), 6), ((25, 10), 8)]:
        hs, ys = [], []
        for c, n in enumerate(sizes):
            scales = torch.linspace(2.0, 0.2, dim, dtype=torch.float64) ** (c + 1)
            hs.append(torch.relu(torch.randn(n, dim, generator=g, dtype=torch.float64) * scales + 2.0 + c))
            ys.append(torch.full((n,), c))
        order = torch.randperm(sum(sizes), generator=g)
        cases.append((torch.cat(hs)[order], torch.cat(ys)[order]))
    return cases


def _pr(values: torch.Tensor) -> float:
    return float(values.sum() ** 2 / values.pow(2).sum())


def _dimension_candidates(h: torch.Tensor, labels: torch.Tensor) -> list[tuple[str, float]]:
    classes = torch.unique(labels).tolist()
    groups = [h[labels == c] for c in classes]
    counts = [len(H) for H in groups]
    centred = [torch.linalg.svdvals(H - H.mean(0)) for H in groups]
    raw = [torch.linalg.svdvals(H) for H in groups]
    per = [_pr(s.pow(2)) for s in centred]
    entropy = []
    for s in centred:
        p = s.pow(2) / s.pow(2).sum()
        p = p[p > 0]
        entropy.append(float(torch.exp(-(p * p.log()).sum())))
    return [
        ("you did not subtract each class's mean: uncentred rows measure the class's distance from the "
         "origin as well as its shape. Centre each class on its own mean first.",
         sum(_pr(s.pow(2)) for s in raw) / len(raw)),
        ("you used the singular values themselves; the eigenvalues of the covariance are the SQUARED "
         "singular values of the centred rows.", sum(_pr(s) for s in centred) / len(centred)),
        ("you pooled all classes into one matrix; the measure is per class (each centred on its own "
         "mean), then averaged over classes.", _pr(torch.linalg.svdvals(h - h.mean(0)).pow(2))),
        ("your ratio is upside down: it is (sum of eigenvalues)^2 / (sum of squared eigenvalues), which "
         "is at least 1.", sum(1 / v for v in per) / len(per)),
        ("you summed over the classes; average them instead, each class with equal weight.", sum(per)),
        ("you weighted the classes by their number of examples; average with equal weight per class.",
         sum(n * v for n, v in zip(counts, per, strict=True)) / sum(counts)),
        ("that is the effective rank, exp(entropy of the normalised eigenvalues); the exercise asks for "
         "the participation ratio, (sum v)^2 / sum v^2.", sum(entropy) / len(entropy)),
        ("you took the ratio of the largest eigenvalue to the sum; the participation ratio uses all of "
         "them: (sum v)^2 / sum v^2.", sum(float(s[0] ** 2 / s.pow(2).sum()) for s in centred) / len(centred)),
    ]


@checker("class_dim(h, labels)",
         nudge="Look at what is measured for each class: the spread of its rows around its own mean, as variances "
               "along principal directions, turned into an effective number of directions, and then averaged over "
               "the classes with equal weight.",
         shortcuts=("mixlib.flatness.class_dimension",
                    ("mixlib.flatness.class_singular_values", "the singular values of each class, the heart of this "
                                                              "exercise")))
def check_class_dimension(class_dim: Callable) -> Feedback:
    """Check ``class_dim(h, labels) -> float``.

    The expected answer: for each class, the eigenvalues ``v`` of the covariance of its
    centred rows, ``(sum v)^2 / sum v^2``, averaged over classes with equal weight (what
    :func:`mixlib.flatness.class_dimension` computes).
    """
    for h, labels in _dimension_cases():
        expected = float(class_dimension(h, labels))
        wrong = _dimension_candidates(h, labels)
        out, problem = call(class_dim, h, labels)
        if problem is not None:
            return problem
        got, problem = as_float(out, "the class dimension")
        if problem is not None:
            return problem
        if abs(got - expected) <= 1e-4 * max(1.0, abs(expected)):
            continue
        for message, value in wrong:
            if abs(got - value) <= 1e-4 * max(1.0, abs(value)):
                return hint(message)
        return hint(f"you returned {got:.5g}, which is not the class dimension of this case. Check: one "
                    "class at a time, centred on its mean; squared singular values (or covariance "
                    "eigenvalues); (sum)^2 / sum of squares; the mean over classes.")
    return passed("your class dimension matches the participation ratio of the centred class "
                  "covariances, averaged over classes.")


# ---------------------------------------------------------------------------------------------
# Exercise 3: the learned interpolant with exact endpoints
# ---------------------------------------------------------------------------------------------


def _autoencoder() -> tuple[nn.Module, nn.Module]:
    """A small fixed encoder and decoder whose weights do not depend on global state."""
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(727)
        encode = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3)).double()
        decode = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 6), nn.Sigmoid()).double()
        with torch.no_grad():
            for p in list(encode.parameters()) + list(decode.parameters()):
                p.mul_(2.0)  # a clearly nonlinear path between codes
    finally:
        torch.random.set_rng_state(state)
    return encode.eval(), decode.eval()


def _interpolant_candidates(encode: nn.Module, decode: nn.Module, x: torch.Tensor, x2: torch.Tensor,
                            lam: float) -> tuple[torch.Tensor, list[tuple[str, torch.Tensor]]]:
    with torch.no_grad():
        z, z2 = encode(x), encode(x2)
        r, r2 = x - decode(z), x2 - decode(z2)
        path = decode(lam * z + (1 - lam) * z2)
        right = path + lam * r + (1 - lam) * r2
        wrong = [
            (staged("you returned the decoded mixed code alone: add back the mixed reconstruction residuals, so "
                    "that the endpoints are exact.",
                    "They are lam (x - decode(encode(x))) + (1 - lam) (x2 - decode(encode(x2)))."), path),
            ("that is pixel mixing, lam x + (1 - lam) x2. The interpolant goes through the code: decode "
             "the mixed code, then add the mixed residuals.", lam * x + (1 - lam) * x2),
            ("the weights are swapped: x gets lam and x2 gets 1 - lam, in the code and in the residuals.",
             decode((1 - lam) * z + lam * z2) + (1 - lam) * r + lam * r2),
            ("the residuals must be weighted like the codes, lam for x and 1 - lam for x2; you added them "
             "unweighted.", path + r + r2),
            (staged("you added only the residual of x; the residual of x2 belongs in the mix too.",
                    "Add lam (x - decode(encode(x))) + (1 - lam) (x2 - decode(encode(x2)))."), path + lam * r),
            ("the residual is x - decode(encode(x)) (what the autoencoder misses), not decode(encode(x)) - x: "
             "check its sign.", path - lam * r - (1 - lam) * r2),
            (staged("you decoded the mixed INPUT, decode(encode(lam x + (1 - lam) x2)); mix the codes of x and x2 "
                    "instead.", "The mixed code is lam encode(x) + (1 - lam) encode(x2)."),
             decode(encode(lam * x + (1 - lam) * x2)) + lam * r + (1 - lam) * r2),
        ]
    return right, wrong


@checker("interpolant(encode, decode, x, x2, lam)",
         nudge="Look at the two parts of the interpolant: the decoding of a mix of the two codes, plus the two "
               "reconstruction errors mixed with the same weights, so that the two ends of the path are the "
               "inputs themselves, exactly.",
         shortcuts=("mixlib.routes.Interpolator.forward", _interpolant_candidates))
def check_interpolant(interpolant: Callable) -> Feedback:
    """Check ``interpolant(encode, decode, x, x2, lam) -> (B, d)``.

    The expected answer is ``decode(lam encode(x) + (1 - lam) encode(x2)) + lam (x -
    decode(encode(x))) + (1 - lam) (x2 - decode(encode(x2)))``, which is ``x`` at ``lam = 1`` and
    ``x2`` at ``lam = 0``.
    """
    encode, decode = _autoencoder()
    g = torch.Generator().manual_seed(737)
    x = torch.rand(5, 6, generator=g, dtype=torch.float64)
    x2 = torch.rand(5, 6, generator=g, dtype=torch.float64)
    for lam in (0.3, 0.75, 1.0, 0.0):
        right, wrong = _interpolant_candidates(encode, decode, x, x2, lam)
        out, problem = call(interpolant, encode, decode, x, x2, lam)
        if problem is not None:
            return problem
        got, problem = as_tensor(out, "the interpolant", shape=tuple(x.shape))
        if problem is not None:
            return problem
        if torch.allclose(got, right, rtol=1e-5, atol=1e-7):
            continue
        for message, value in wrong:
            if torch.allclose(got, value, rtol=1e-5, atol=1e-7):
                return prefixed(f"with lam = {lam}: ", hint(message))
        if lam in (0.0, 1.0):
            end = "x" if lam == 1.0 else "x2"
            return hint(f"with lam = {lam} the interpolant must be exactly {end}; yours is not.")
        return hint(f"with lam = {lam} your interpolant differs from the definition. Check each piece: the "
                    "mixed code, its decoding, and the two residuals with weights lam and 1 - lam.")
    return passed("your interpolant decodes the mixed code, adds the mixed residuals, and hits both "
                  "endpoints exactly.")
