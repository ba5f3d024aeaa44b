"""Checkers for chapter 6, why does manifold mixup work?"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy import stats

from . import (
    Feedback,
    as_float,
    call,
    checker,
    diagnose,
    estimate_hint,
    float32_hint,
    form_hint,
    given_arguments,
    hint,
    passed,
    prefixed,
    staged,
)

# --- exercise 1: the cross terms of the last-layer squared loss ----------------------------------


def _cross_case(seed: int, batch: int = 6, classes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = torch.randn(batch, classes, generator=g, dtype=torch.float64)
    target = torch.randn(batch, classes, generator=g, dtype=torch.float64)
    return out, target


def _cross_terms_reference(out: torch.Tensor, target: torch.Tensor, lam: float, perm: torch.Tensor,
                           ) -> torch.Tensor:
    """``mean_i lam (1 - lam) e_i . e_perm[i]`` with residuals ``e = target - out``."""
    e = target - out
    return (lam * (1 - lam) * (e * e[perm]).sum(1)).mean()


def _cross_mistakes(out: torch.Tensor, target: torch.Tensor, lam: float, perm: torch.Tensor) -> dict[str, float]:
    e = target - out
    ref = float(_cross_terms_reference(out, target, lam, perm))
    batch = len(out)
    ordinary = float((0.5 * (lam**2 * (e**2).sum(1) + (1 - lam) ** 2 * (e[perm] ** 2).sum(1))).mean())
    full = float((0.5 * ((lam * e + (1 - lam) * e[perm]) ** 2).sum(1)).mean())
    return {
        "you summed over the batch; the loss is the MEAN over the examples i of the batch.": ref * batch,
        "you counted the cross term twice: expanding 1/2 ||lam e + (1-lam) e'||^2 gives lam (1-lam) e.e' once "
        "(the 1/2 cancels the 2 of the square).": 2 * ref,
        "your value lacks the factor lam (1 - lam) in front of e_i . e_perm[i].": ref / (lam * (1 - lam)),
        "you multiplied the OUTPUTS of the two examples; the cross term multiplies their RESIDUALS, "
        "e = target - out.": float((lam * (1 - lam) * (out * out[perm]).sum(1)).mean()),
        "that is the whole loss 1/2 ||lam e + (1-lam) e'||^2: keep only its cross term.": full,
        "those are the ordinary terms, 1/2 lam^2 ||e||^2 + 1/2 (1-lam)^2 ||e'||^2; the exercise asks for the "
        "cross term.": ordinary,
        "you paired each example with itself (e_i . e_i); the partner of example i is perm[i].":
            float((lam * (1 - lam) * (e * e).sum(1)).mean()),
        "your weight is lam^2 (or (1-lam)^2) instead of lam (1 - lam).": float((lam**2 * (e * e[perm]).sum(1)).mean()),
    }


@checker("cross_terms_loss(out, target, lam, perm)",
         nudge="Look at what is paired and what is kept: each example's residual (target minus output) with its "
               "partner's, only the cross term of the expanded square with its weight, averaged over the batch, "
               "and all of it in torch so that gradients reach `out`.",
         shortcuts=(_cross_terms_reference, "mixlib.recipe.terms_loss"))
def check_cross_terms_loss(cross_terms_loss: Callable) -> Feedback:
    """Check ``cross_terms_loss(out, target, lam, perm) -> scalar tensor``.

    ``out`` and ``target`` are ``(B, C)``, ``lam`` a float and ``perm`` a permutation of the batch.
    The answer is ``mean_i lam (1 - lam) (target_i - out_i) . (target_perm[i] - out_perm[i])``,
    differentiable with respect to ``out``.
    """
    cases = [(0, 0.3, torch.tensor([1, 2, 0, 4, 5, 3])), (1, 0.8, torch.tensor([0, 3, 1, 2, 5, 4])),
             (2, 0.5, torch.tensor([5, 4, 3, 2, 1, 0]))]
    prepared = []
    for seed, lam, perm in cases:  # references first
        out, target = _cross_case(seed)
        leaf = out.clone().requires_grad_(True)
        reference = _cross_terms_reference(leaf, target, lam, perm)
        (grad,) = torch.autograd.grad(reference, leaf)
        prepared.append((out, target, lam, perm, float(reference.detach()), grad,
                         _cross_mistakes(out, target, lam, perm)))
    for out, target, lam, perm, expected, grad, mistakes in prepared:
        leaf = out.clone().requires_grad_(True)
        got, problem = call(cross_terms_loss, leaf, target, lam, perm)
        if problem is not None:
            return problem
        if not isinstance(got, torch.Tensor):
            return form_hint("return a scalar TENSOR (so that it can be differentiated), computed from out with "
                             f"torch operations; you returned {type(got).__name__}.")
        value, problem = as_float(got, "the loss")
        if problem is not None:
            return problem
        problem = diagnose(value, expected, mistakes, rtol=1e-6, atol=1e-9, fallback=staged(
            "check each piece: the residuals, the partner's residuals, their dot product per example, the weight, "
            "and the mean over the batch.",
            "That is e = target - out, e[perm], (e * e[perm]).sum(1), lam * (1 - lam), then .mean()."))
        if problem is not None:
            return prefixed(f"with lam = {lam}: ", problem)
        if not got.requires_grad:
            return hint("your loss has the right value but no gradient reaches `out`: do not use .detach(), "
                        ".item(), NumPy or torch.no_grad() inside the function.")
        given = given_arguments()[0]  # the learner received a copy of `leaf`
        (mine,) = torch.autograd.grad(got, given, allow_unused=True)
        if mine is None or not torch.allclose(mine.double(), grad, rtol=1e-6, atol=1e-9):
            return hint("the value is right but the gradient with respect to `out` is not: part of the computation "
                        "is cut off from the graph (a detached residual?). Both residuals depend on out.")
    return passed("your cross term matches on three batches, in value and in gradient. It is unbounded below "
                  "(e_i . e_perm[i] can be as negative as you like), so it is never trained on alone.")


# --- exercise 2: a paired 95 % interval ----------------------------------------------------------


def _paired_interval_reference(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    """Mean of ``a - b`` and its 95 % Student-t interval (``n - 1`` degrees of freedom)."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    return float(d.mean()), float(d.mean() - half), float(d.mean() + half)


def _interval_mistakes(a: np.ndarray, b: np.ndarray) -> dict[str, tuple[float, float, float]]:
    d = a - b
    n = len(d)
    mean, s = float(d.mean()), float(d.std(ddof=1))
    t = float(stats.t.ppf(0.975, n - 1))

    def around(centre: float, half: float) -> tuple[float, float, float]:
        return centre, centre - half, centre + half

    welch = math.sqrt(a.var(ddof=1) / n + b.var(ddof=1) / n)
    return {
        "your interval treats the two methods as independent samples (its width comes from the spread of each "
        "method). They are paired by seed: take the per-seed differences a[i] - b[i] first, and build the "
        "interval from their spread.": around(mean, t * welch),
        staged("you used 1.96 (the normal quantile); with few seeds use Student's t quantile with n - 1 degrees "
               "of freedom.", "That is scipy.stats.t.ppf(0.975, n - 1)."): around(mean, 1.96 * s / math.sqrt(n)),
        "your standard deviation divides by n; the sample standard deviation divides by n - 1 (ddof=1).":
            around(mean, t * float(d.std(ddof=0)) / math.sqrt(n)),
        "your t quantile has n degrees of freedom; a mean of n differences has n - 1.":
            around(mean, float(stats.t.ppf(0.975, n)) * s / math.sqrt(n)),
        "you took the differences the other way round: the exercise asks for a - b.":
            around(-mean, t * s / math.sqrt(n)),
        "your half-width uses the standard deviation itself; the interval is for the MEAN, so divide it by "
        "sqrt(n).": around(mean, t * s),
        "you used the 0.95 quantile, which gives a 90 % two-sided interval; a 95 % interval needs the 0.975 "
        "quantile.": around(mean, float(stats.t.ppf(0.95, n - 1)) * s / math.sqrt(n)),
    }


@checker("paired_interval(a, b)",
         nudge="Look at what the interval is built from: the per-seed differences between the two methods, their "
               "mean, and how uncertain that mean is with only a few seeds.",
         shortcuts=(_paired_interval_reference, "mixlib.stats.paired_difference",
                    ("mixlib.stats.summarize", "the mean and the 95 % interval of the differences, exactly what "
                                               "this exercise asks for")))
def check_paired_interval(paired_interval: Callable) -> Feedback:
    """Check ``paired_interval(a, b) -> (mean, low, high)`` for two equally long 1-D tensors."""
    g = torch.Generator().manual_seed(6)
    cases = []
    for n in (10, 5, 12):
        base = 0.8 + 0.05 * torch.randn(n, generator=g, dtype=torch.float64)
        a = base + 0.02 + 0.01 * torch.randn(n, generator=g, dtype=torch.float64)
        cases.append((a, base))
    prepared = [(a, b, _paired_interval_reference(a.numpy(), b.numpy()), _interval_mistakes(a.numpy(), b.numpy()))
                for a, b in cases]
    for a, b, expected, mistakes in prepared:
        got, problem = call(paired_interval, a, b)
        if problem is not None:
            return problem
        if isinstance(got, torch.Tensor) and got.numel() == 3:
            got = got.detach().reshape(-1).tolist()
        if isinstance(got, np.ndarray) and got.size == 3:
            got = got.reshape(-1).tolist()
        if not isinstance(got, (tuple, list)) or len(got) != 3:
            return form_hint("return three numbers, (mean, low, high): the mean difference and the two ends of "
                             "its interval.")
        values = []
        for what, item in zip(("the mean", "the lower end", "the upper end"), got, strict=True):
            number, problem = as_float(item, what)
            if problem is not None:
                return problem
            values.append(number)
        if all(math.isclose(v, e, rel_tol=1e-6, abs_tol=1e-9) for v, e in zip(values, expected, strict=True)):
            continue
        if values[1] > values[2]:
            return form_hint("your lower end is above your upper end: return (mean, low, high) in that order.")
        for message, wrong in mistakes.items():
            if all(math.isclose(v, w, rel_tol=1e-6, abs_tol=1e-9) for v, w in zip(values, wrong, strict=True)):
                return prefixed(f"with {len(a)} seeds: ", hint(message))
        rounding = float32_hint(values, expected, "your interval")
        if rounding is not None:
            return prefixed(f"with {len(a)} seeds: ", rounding)
        if not math.isclose(values[0], expected[0], rel_tol=1e-6, abs_tol=1e-9):
            return hint(f"with {len(a)} seeds your mean ({values[0]:.6g}) is not the mean of the per-seed "
                        "differences a[i] - b[i].")
        return hint(f"with {len(a)} seeds your mean is right but the interval is not: check its half-width, which "
                    "comes from the spread of the differences and Student's t.",
                    "It is mean ± t * s / sqrt(n), with s the sample standard deviation of the differences and t the "
                    "0.975 quantile of Student's t with n - 1 degrees of freedom.")
    return passed("your paired interval matches scipy's on three sets of seeds. Every comparison in this chapter "
                  "is built this way.")


# --- exercise 3: the theory's prediction for the last layer --------------------------------------


def _expected_last_layer_reference(residuals: torch.Tensor, alpha: float) -> float:
    """``(1 - 2c)/2 mean_i ||e_i||^2 + c ||mean_i e_i||^2`` with ``c = alpha / (2 (2 alpha + 1))``."""
    e = residuals.double()
    c = alpha / (2 * (2 * alpha + 1))
    return float((1 - 2 * c) / 2 * (e**2).sum(1).mean() + c * (e.mean(0) ** 2).sum())


def _expected_mistakes(e: torch.Tensor, alpha: float) -> dict[str, float]:
    c = alpha / (2 * (2 * alpha + 1))
    sq = float((e**2).sum(1).mean())
    mean_sq = float((e.mean(0) ** 2).sum())
    n = e.shape[0]
    no_self = (n * n * mean_sq - n * sq) / (n * (n - 1))  # mean of e_i . e_j over the pairs j != i
    c_precedence = alpha / (4 * alpha + 1)  # alpha / (2 * 2 * alpha + 1), brackets misplaced
    return {
        staged("you left out self-pairs (a partner j != i, an n - 1 formula). The book pairs by a uniformly random "
               "permutation, which pairs an example with itself with probability 1/n, so the partner is uniform "
               "over ALL the examples, i itself included.", "The cross terms then average to c ||mean_i e_i||^2."):
            (1 - 2 * c) / 2 * sq + c * no_self,
        staged("your c is alpha / (4 alpha + 1): `alpha / (2 * 2 * alpha + 1)` divides by 4 alpha + 1; the "
               "brackets are misplaced.",
               "The constant is alpha / (2 (2 alpha + 1)), so write alpha / (2 * (2 * alpha + 1))."):
            (1 - 2 * c_precedence) / 2 * sq + c_precedence * mean_sq,
        staged("your constant c is alpha / (2 alpha + 1), twice too large.",
               "E[lam (1 - lam)] = alpha / (2 (2 alpha + 1))."): (1 - 4 * c) / 2 * sq + 2 * c * mean_sq,
        "you dropped the cross terms' average, c ||mean residual||^2: a random partner's residual averages to the "
        "batch's mean residual, not to zero.": (1 - 2 * c) / 2 * sq,
        "you kept the ordinary terms' weight at 1/2: E[lam^2 + (1 - lam)^2] = 1 - 2c, not 1.": sq / 2 + c * mean_sq,
        staged("your value is the plain ERM loss, 1/2 mean_i ||e_i||^2 (which is also what a penalty on the mean "
               "squared norm gives).", "The cross terms average to c ||mean_i e_i||^2, the squared norm of the MEAN "
               "residual."): (1 - 2 * c) / 2 * sq + c * sq,
        "you summed over the batch; the loss is a mean over the examples.":
            len(e) * ((1 - 2 * c) / 2 * sq + c * mean_sq),
        "the weight of the ordinary part is E[lam^2 + (1 - lam)^2] / 2 = (1 - 2c) / 2, not 1 - c.":
            (1 - c) * sq + c * mean_sq,
    }


@checker("expected_last_layer_loss(residuals, alpha)",
         nudge="Expand the squared norm of the mixed residual and average each piece over lam and over a partner "
               "drawn uniformly from all the examples, the example itself included; then average over the batch.",
         shortcuts=(_expected_last_layer_reference, "mixlib.recipe.terms_loss"))
def check_expected_last_layer_loss(expected_last_layer_loss: Callable) -> Feedback:
    """Check ``expected_last_layer_loss(residuals, alpha) -> float`` for ``(B, C)`` residuals."""
    g = torch.Generator().manual_seed(11)
    cases = [(0.3 + torch.randn(8, 3, generator=g, dtype=torch.float64), 2.0),
             (torch.randn(5, 4, generator=g, dtype=torch.float64) - 0.5, 0.5),
             (torch.randn(12, 2, generator=g, dtype=torch.float64), 1.0)]
    prepared = [(e, a, _expected_last_layer_reference(e, a), _expected_mistakes(e, a)) for e, a in cases]
    for e, alpha, expected, mistakes in prepared:
        got, problem = call(expected_last_layer_loss, e, alpha)
        if problem is None:
            got, problem = as_float(got, "the expected loss")
        if problem is not None:
            return problem
        problem = diagnose(got, expected, mistakes, rtol=1e-6, atol=1e-9, fallback=staged(
            "average half the squared norm of the mixed residual over lam ~ Beta(alpha, alpha) and over a uniformly "
            "random partner j (which may be i itself): expand the square and average each piece.",
            "In 1/2 ||lam e_i + (1-lam) e_j||^2, use E[lam (1-lam)] = c and E[e_j] = mean residual."))
        if problem is not None:
            known = any(math.isclose(got, v, rel_tol=1e-6, abs_tol=1e-9) for v in mistakes.values())
            # an estimate is named by what the function did (drew random numbers) or returned (a rounded number),
            # never by closeness to the right value, which would let a learner bisect to it
            estimate = None if known else estimate_hint(got, "Give the exact expectation instead.")
            if estimate is not None:
                problem = estimate
            return prefixed(f"for alpha = {alpha}, {e.shape[0]} examples: ", problem)
    return passed("your prediction is exact on three batches. Minimising it over the head's bias removes the "
                  "penalty term, which is why the theory expects last-layer mixing with squared loss to train like "
                  "ERM.")
