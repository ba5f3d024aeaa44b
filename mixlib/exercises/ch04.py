"""Checkers for chapter 4, the gradient expansion."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch

from . import Feedback, as_float, call, check_callable, diagnose, finish, hint, passed

TERMS = ("ordinary_x", "ordinary_x2", "cross_x", "cross_x2")


# --- exercise 1: the four terms from residuals and per-example gradients ---------------------------


def _term_case(seed: int, batch: int = 5, n_params: int = 7) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    e, e2 = torch.randn(batch, generator=g, dtype=torch.float64), torch.randn(batch, generator=g, dtype=torch.float64)
    grads = torch.randn(2, batch, n_params, generator=g, dtype=torch.float64)
    return e, e2, grads[0], grads[1]


def _terms(e: torch.Tensor, e2: torch.Tensor, g: torch.Tensor, g2: torch.Tensor, lam: float,
           *, w_x: float | None = None, w_x2: float | None = None, r_cx: torch.Tensor | None = None,
           r_cx2: torch.Tensor | None = None, sign: float = -1.0) -> dict[str, torch.Tensor]:
    """The four terms, with optional wrong weights/residuals so that typical mistakes can be named."""
    w_x = lam**2 if w_x is None else w_x
    w_x2 = (1 - lam) ** 2 if w_x2 is None else w_x2
    r_cx = e2 if r_cx is None else r_cx
    r_cx2 = e if r_cx2 is None else r_cx2
    cross = lam * (1 - lam)
    return {
        "ordinary_x": sign * (w_x * e[:, None] * g).sum(0),
        "ordinary_x2": sign * (w_x2 * e2[:, None] * g2).sum(0),
        "cross_x": sign * (cross * r_cx[:, None] * g).sum(0),
        "cross_x2": sign * (cross * r_cx2[:, None] * g2).sum(0),
    }


def four_terms_reference(e: torch.Tensor, e2: torch.Tensor, g: torch.Tensor, g2: torch.Tensor,
                         lam: float) -> dict[str, torch.Tensor]:
    """The four terms of the manifold-mixup gradient of the minimised loss, summed over the batch.

    ``e``, ``e2``: residuals of shape ``(B,)``; ``g``, ``g2``: per-example gradients
    ``dG(F(x_i))/dtheta`` of shape ``(B, P)``; ``lam``: the mixing weight.
    """
    return _terms(e, e2, g, g2, lam)


def _close(a: object, b: torch.Tensor) -> bool:
    return isinstance(a, torch.Tensor) and a.shape == b.shape and torch.allclose(a.double(), b, rtol=1e-6,
                                                                                  atol=1e-9)


def _term_mistakes(e: torch.Tensor, e2: torch.Tensor, g: torch.Tensor, g2: torch.Tensor,
                   lam: float, batch: int) -> dict[str, dict[str, torch.Tensor]]:
    """Each typical mistake, mapped from its hint to the terms it produces."""
    ref = _terms(e, e2, g, g2, lam)
    return {
        "every term has the wrong sign. The book minimises 1/2 (target - prediction)^2, whose gradient "
        "is MINUS the residual times the gradient of the prediction: -(lam e + (1-lam) e') "
        "(lam g(x) + (1-lam) g(x')).": _terms(e, e2, g, g2, lam, sign=1.0),
        "your cross terms use each example's own residual. In a cross term the direction g(x) is "
        "scaled by the PARTNER's residual: cross_x = -lam (1-lam) e' g(x), "
        "cross_x2 = -lam (1-lam) e g(x').": _terms(e, e2, g, g2, lam, r_cx=e, r_cx2=e2),
        "your cross_x and cross_x2 are exchanged: cross_x is the term whose DIRECTION is g(x) "
        "(scaled by e'), cross_x2 the one whose direction is g(x').": {
            **ref, "cross_x": ref["cross_x2"], "cross_x2": ref["cross_x"]},
        "your ordinary terms are weighted by lam and (1-lam); expanding the product "
        "(lam e + (1-lam) e')(lam g(x) + (1-lam) g(x')) gives lam^2 e g(x) and (1-lam)^2 e' g(x').":
            _terms(e, e2, g, g2, lam, w_x=lam, w_x2=1 - lam),
        "your ordinary terms have their weights exchanged: lam^2 goes with x (e g(x)) and (1-lam)^2 "
        "with x' (e' g(x')).": _terms(e, e2, g, g2, lam, w_x=(1 - lam) ** 2, w_x2=lam**2),
        "your terms are averaged over the batch; the checker asks for the SUM over the batch "
        "(use .sum(0), not .mean(0)).": {k: v / batch for k, v in ref.items()},
    }


def check_four_terms(four_terms: Callable, strict: bool = False) -> Feedback:
    """Check ``four_terms(e, e2, g, g2, lam) -> dict``.

    ``e`` and ``e2`` are residuals of shape ``(B,)``, ``g`` and ``g2`` per-example gradients of
    shape ``(B, P)``, ``lam`` a float. The expected answer is a dict with keys ``"ordinary_x"``,
    ``"ordinary_x2"``, ``"cross_x"``, ``"cross_x2"``, each of shape ``(P,)``: the terms of the
    gradient of the minimised manifold-mixup squared loss, summed over the batch.
    """
    problem = check_callable(four_terms, "four_terms")
    if problem is not None:
        return finish(problem, strict)
    for seed, lam in [(0, 0.8), (1, 0.3)]:
        e, e2, g, g2 = _term_case(seed)
        got, problem = call(four_terms, e.clone(), e2.clone(), g.clone(), g2.clone(), lam)
        if problem is not None:
            return finish(problem, strict)
        if not isinstance(got, Mapping):
            return finish(hint(f"return a dict with the keys {', '.join(TERMS)}; you returned "
                               f"{type(got).__name__}."), strict)
        missing = [k for k in TERMS if k not in got]
        if missing:
            return finish(hint(f"your dict lacks the key(s) {', '.join(missing)}; it needs exactly "
                               f"{', '.join(TERMS)}."), strict)
        n_params = g.shape[1]
        for key in TERMS:
            value = got[key]
            if not isinstance(value, torch.Tensor):
                return finish(hint(f"{key} should be a tensor, but it is {type(value).__name__}."), strict)
            if value.shape == g.shape:
                return finish(hint(f"{key} has shape {tuple(value.shape)}, one row per example: sum over "
                                   f"the batch to get one vector of shape ({n_params},)."), strict)
            if value.shape != (n_params,):
                return finish(hint(f"{key} should have shape ({n_params},), one entry per parameter; "
                                   f"yours has shape {tuple(value.shape)}."), strict)
        ref = _terms(e, e2, g, g2, lam)
        if all(_close(got[k], ref[k]) for k in TERMS):
            continue
        for message, terms in _term_mistakes(e, e2, g, g2, lam, len(e)).items():
            if all(_close(got[k], terms[k]) for k in TERMS):
                return finish(hint(message), strict)
        wrong = [k for k in TERMS if not _close(got[k], ref[k])]
        return finish(hint(f"with lam = {lam}, the term(s) {', '.join(wrong)} do not match. Expand "
                           "-(lam e + (1-lam) e') (lam g(x) + (1-lam) g(x')) term by term, each one "
                           "summed over the batch."), strict)
    return finish(passed("your four terms match the expansion of the manifold-mixup gradient, "
                         "sign, weights and partners included."), strict)


# --- exercise 2: the constant c = E[lam (1 - lam)] -------------------------------------------------


def _c(alpha: float) -> float:
    return alpha / (2 * (2 * alpha + 1))


def check_mixing_constant(mixing_constant: Callable, strict: bool = False) -> Feedback:
    """Check ``mixing_constant(alpha) -> float``: ``c = E[lam (1 - lam)]`` for ``lam ~ Beta(alpha, alpha)``.

    The exact value is ``alpha / (2 (2 alpha + 1))``.
    """
    problem = check_callable(mixing_constant, "mixing_constant")
    if problem is not None:
        return finish(problem, strict)
    for alpha in (2.0, 0.5, 1.0, 7.0):
        value, problem = call(mixing_constant, alpha)
        if problem is None:
            value, problem = as_float(value, "c")
        if problem is not None:
            return finish(problem, strict)
        var = 1 / (4 * (2 * alpha + 1))
        expected = _c(alpha)
        problem = diagnose(value, expected, {
            "you returned 1/4 = E[lam] E[1-lam]; but lam and 1-lam are not independent, so "
            "E[lam (1-lam)] = E[lam] - E[lam^2] = 1/4 - Var(lam).": 0.25,
            "you returned 1/4 + Var(lam), which is E[lam^2]. Subtract instead: E[lam (1-lam)] = "
            "E[lam] - E[lam^2] = 1/2 - (1/4 + Var(lam)) = 1/4 - Var(lam).": 0.25 + var,
            "you returned Var(lam) itself; c = 1/4 - Var(lam).": var,
            "you are missing a factor 1/2: c = alpha / (2 (2 alpha + 1)).": alpha / (2 * alpha + 1),
            "check the variance of Beta(a, b): a b / ((a + b)^2 (a + b + 1)) (you seem to have dropped "
            "the +1).": 0.25 - 1 / (8 * alpha),
        }, rtol=1e-6, atol=1e-12)
        if problem is not None:
            if math.isclose(value, expected, rel_tol=0.03):
                problem = hint(f"for alpha = {alpha} you returned {value:.6g}, close to but not exactly "
                               f"{expected:.6g}: that looks like a Monte Carlo estimate. Derive the exact "
                               "value from the mean and the variance of Beta(alpha, alpha).")
            else:
                problem = hint(f"for alpha = {alpha}: " + problem.message)
            return finish(problem, strict)
    return finish(passed("c = alpha / (2 (2 alpha + 1)), exactly."), strict)


# --- exercise 3: the expected manifold-mixup loss --------------------------------------------------


def _expected(e: torch.Tensor, alpha: float, c: float | None = None) -> float:
    c = _c(alpha) if c is None else c
    return float((1 - 2 * c) * e.pow(2).mean() / 2 + c * e.mean() ** 2)


def check_expected_loss(expected_loss: Callable, strict: bool = False) -> Feedback:
    """Check ``expected_loss(residuals, alpha) -> float``.

    The expected answer is ``(1 - 2c) mean(e^2) / 2 + c mean(e)^2`` with
    ``c = alpha / (2 (2 alpha + 1))``: the manifold-mixup squared loss per example of an affine
    head, in expectation over ``lam ~ Beta(alpha, alpha)`` and a uniformly random pairing.
    """
    problem = check_callable(expected_loss, "expected_loss")
    if problem is not None:
        return finish(problem, strict)
    g = torch.Generator().manual_seed(4)
    cases = [
        (0.7 + torch.randn(12, generator=g, dtype=torch.float64), 2.0),
        (torch.randn(9, generator=g, dtype=torch.float64) - 1.3, 0.4),
    ]
    for e, alpha in cases:
        value, problem = call(expected_loss, e.clone(), alpha)
        if problem is None:
            value, problem = as_float(value, "the expected loss")
        if problem is not None:
            return finish(problem, strict)
        c = _c(alpha)
        m2, m1 = float(e.pow(2).mean()), float(e.mean())
        expected = _expected(e, alpha)
        problem = diagnose(value, expected, {
            "you left out the penalty on the mean residual, c mean(e)^2: the cross products "
            "2 lam (1-lam) e_i e_pi(i) average to 2c mean(e)^2, not to zero.": (1 - 2 * c) * m2 / 2,
            "the cross products e_i e_pi(i) average to mean(e)^2 (pi(i) is uniform over all examples), "
            "not to mean(e^2); your answer is the plain ERM loss mean(e^2)/2.": m2 / 2,
            "you forgot the factor 1/2 of the loss 1/2 (mixed residual)^2.": 2 * expected,
            "the factor 1/2 applies to the whole square: E[lam^2] + E[(1-lam)^2] = 1 - 2c multiplies "
            "mean(e^2)/2, and the cross part gives c mean(e)^2.": (1 - 2 * c) * m2 + c * m1**2,
            "you used c = 1/4, which is E[lam] E[1-lam]; c = E[lam (1-lam)] = alpha / (2 (2 alpha + 1)).":
                _expected(e, alpha, c=0.25),
            "the ERM part is scaled: E[lam^2] + E[(1-lam)^2] = 1 - 2c, so it is (1 - 2c) mean(e^2)/2.":
                m2 / 2 + c * m1**2,
            "return the loss per example (a mean over the batch), not the sum.": len(e) * expected,
        }, rtol=1e-6, atol=1e-12)
        if problem is not None:
            if math.isclose(value, expected, rel_tol=0.03):
                problem = hint(f"you returned {value:.6g}, close to but not exactly {expected:.6g}: that looks "
                               "like a Monte Carlo estimate. Give the exact expectation.")
            return finish(problem, strict)
    return finish(passed("your expected loss is (1 - 2c) mean(e^2)/2 + c mean(e)^2, exactly."), strict)
