"""Checkers for chapter 4, the gradient expansion."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np
import torch

from ..gradients import FOUR_TERM_KEYS
from . import Feedback, as_float, as_tensor, call, checker, diagnose, form_hint, hint, passed, prefixed, staged

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


def _terms_from_gradients_reference(e: torch.Tensor, e2: torch.Tensor, g: torch.Tensor, g2: torch.Tensor,
                                    lam: float) -> dict[str, torch.Tensor]:
    """The four terms of the manifold-mixup gradient of the minimised loss, summed over the batch.

    ``e``, ``e2``: residuals of shape ``(B,)``; ``g``, ``g2``: per-example gradients
    ``dG(F(x_i))/dtheta`` of shape ``(B, P)``; ``lam``: the mixing weight.
    """
    return _terms(e, e2, g, g2, lam)


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=1e-6, atol=1e-9))


def _term_mistakes(e: torch.Tensor, e2: torch.Tensor, g: torch.Tensor, g2: torch.Tensor,
                   lam: float, batch: int) -> dict[str, dict[str, torch.Tensor]]:
    """Each typical mistake, mapped from its hint to the terms it produces."""
    ref = _terms(e, e2, g, g2, lam)
    return {
        staged("every term has the wrong sign. The book minimises 1/2 (target - prediction)^2, whose gradient "
               "is MINUS the residual times the gradient of the prediction.",
               "The gradient is -(lam e + (1-lam) e') (lam g(x) + (1-lam) g(x')).",
               ): _terms(e, e2, g, g2, lam, sign=1.0),
        staged("your cross terms use each example's own residual. In a cross term the direction g(x) is "
               "scaled by the PARTNER's residual.",
               "cross_x = -lam (1-lam) e' g(x), cross_x2 = -lam (1-lam) e g(x')."): _terms(e, e2, g, g2, lam, r_cx=e,
                                                                                        r_cx2=e2),
        "your cross_x and cross_x2 are exchanged: cross_x is the term whose DIRECTION is g(x) "
        "(scaled by e'), cross_x2 the one whose direction is g(x').": {
            **ref, "cross_x": ref["cross_x2"], "cross_x2": ref["cross_x"]},
        staged("your ordinary terms are weighted by lam and (1-lam); expanding the product of the mixed residual "
               "and the mixed gradient squares those weights.",
               "Expanding (lam e + (1-lam) e')(lam g(x) + (1-lam) g(x')) gives lam^2 e g(x) and (1-lam)^2 e' g(x')."):
            _terms(e, e2, g, g2, lam, w_x=lam, w_x2=1 - lam),
        "your ordinary terms have their weights exchanged: lam^2 goes with x (e g(x)) and (1-lam)^2 "
        "with x' (e' g(x')).": _terms(e, e2, g, g2, lam, w_x=(1 - lam) ** 2, w_x2=lam**2),
        staged("your terms are averaged over the batch; the checker asks for the SUM over the batch.",
               "Use .sum(0), not .mean(0)."): {k: v / batch for k, v in ref.items()},
        "your cross terms have the wrong sign: like the ordinary terms, they carry the minus sign of the "
        "gradient of 1/2 (target - prediction)^2.": {**ref, "cross_x": -ref["cross_x"], "cross_x2": -ref["cross_x2"]},
        "your ordinary terms have the wrong sign: like the cross terms, they carry the minus sign of the "
        "gradient of 1/2 (target - prediction)^2.": {
            **ref, "ordinary_x": -ref["ordinary_x"], "ordinary_x2": -ref["ordinary_x2"]},
        "your cross terms are doubled: each of the two cross products of the expansion appears once, with "
        "weight lam (1-lam); the 2 lam (1-lam) of a squared sum belongs to the loss, not to its gradient.": {
            **ref, "cross_x": 2 * ref["cross_x"], "cross_x2": 2 * ref["cross_x2"]},
        "your ordinary terms are weighted by lam (1-lam), the cross terms' weight; the ordinary terms get "
        "lam^2 (for x) and (1-lam)^2 (for x').": _terms(e, e2, g, g2, lam, w_x=lam * (1 - lam),
                                                         w_x2=lam * (1 - lam)),
        staged("your ordinary terms use the partner's residual; an ordinary term pairs each example's residual "
               "with its own gradient.", "ordinary_x = -lam^2 e g(x), ordinary_x2 = -(1-lam)^2 e' g(x')."): {
            **ref, "ordinary_x": -(lam**2 * e2[:, None] * g).sum(0),
            "ordinary_x2": -((1 - lam) ** 2 * e[:, None] * g2).sum(0)},
    }


@checker("terms_from_gradients(e, e2, g, g2, lam)",
         nudge="Look at the product of the mixed residual and the mixed gradient of the minimised loss: expand it "
               "into four pieces, and keep track of the sign, of which weight goes with which piece, and of whose "
               "residual multiplies whose gradient.",
         shortcuts=(_terms, _terms_from_gradients_reference))
def check_terms_from_gradients(terms_from_gradients: Callable) -> Feedback:
    """Check ``terms_from_gradients(e, e2, g, g2, lam) -> dict``.

    ``e`` and ``e2`` are residuals of shape ``(B,)``, ``g`` and ``g2`` per-example gradients of
    shape ``(B, P)``, ``lam`` a float. The expected answer is a dict with keys ``"ordinary_x"``,
    ``"ordinary_x2"``, ``"cross_x"``, ``"cross_x2"``, each of shape ``(P,)``: the terms of the
    gradient of the minimised manifold-mixup squared loss, summed over the batch.
    """
    cases = []
    for seed, lam in [(0, 0.8), (1, 0.3)]:  # references first
        e, e2, g, g2 = _term_case(seed)
        cases.append((e, e2, g, g2, lam, _terms(e, e2, g, g2, lam), _term_mistakes(e, e2, g, g2, lam, len(e))))
    for e, e2, g, g2, lam, ref, mistakes in cases:
        got, problem = call(terms_from_gradients, e, e2, g, g2, lam)
        if problem is not None:
            return problem
        if not isinstance(got, Mapping):
            return form_hint(f"return a dict with the keys {', '.join(FOUR_TERM_KEYS)}; you returned "
                             f"{type(got).__name__}.")
        missing = [k for k in FOUR_TERM_KEYS if k not in got]
        if missing:
            return form_hint(f"your dict lacks the key(s) {', '.join(missing)}; "
                             f"it needs exactly {', '.join(FOUR_TERM_KEYS)}.")
        n_params = g.shape[1]
        terms = {}
        for key in FOUR_TERM_KEYS:
            value = got[key]
            if isinstance(value, (torch.Tensor, np.ndarray)) and tuple(value.shape) == tuple(g.shape):
                return form_hint(f"{key} has shape {tuple(value.shape)}, one row per example: sum over the batch "
                                 f"to get one vector of shape ({n_params},).")
            terms[key], problem = as_tensor(value, key, (n_params,))
            if problem is not None:
                return form_hint(problem.message + (" It needs one entry per parameter."
                                                    if "shape" in problem.message else ""))
        if all(_close(terms[k], ref[k]) for k in FOUR_TERM_KEYS):
            continue
        for message, wrong_terms in mistakes.items():
            if all(_close(terms[k], wrong_terms[k]) for k in FOUR_TERM_KEYS):
                return hint(message)
        wrong = [k for k in FOUR_TERM_KEYS if not _close(terms[k], ref[k])]
        return hint(f"with lam = {lam}, the term(s) {', '.join(wrong)} do not match. Expand the product of the "
                    "mixed residual and the mixed gradient term by term, with the minus sign of the minimised "
                    "loss, each term summed over the batch.",
                    "The product is -(lam e + (1-lam) e') (lam g(x) + (1-lam) g(x')).")
    return passed("your four terms match the expansion of the manifold-mixup gradient, "
                  "sign, weights and partners included.")


# --- exercise 2: the constant c = E[lam (1 - lam)] -------------------------------------------------


def _c(alpha: float) -> float:
    return alpha / (2 * (2 * alpha + 1))


@checker("mixing_constant(alpha)",
         nudge="Write the expectation with the mean and the variance of lam, both of which you know for a Beta "
               "distribution, and remember that lam and 1 - lam are not independent.",
         shortcuts=("mixlib.gradients.mixing_constant", _c))
def check_mixing_constant(mixing_constant: Callable) -> Feedback:
    """Check ``mixing_constant(alpha) -> float``: ``c = E[lam (1 - lam)]`` for ``lam ~ Beta(alpha, alpha)``.

    The exact value is ``alpha / (2 (2 alpha + 1))``.
    """
    alphas = (2.0, 0.5, 1.0, 7.0)
    values = []
    for alpha in alphas:
        value, problem = call(mixing_constant, alpha)
        if problem is None:
            value, problem = as_float(value, f"c (alpha = {alpha})")
        if problem is not None:
            return problem
        values.append(value)

    def mistakes(alpha: float) -> dict[str, float]:
        var = 1 / (4 * (2 * alpha + 1))
        return {
            staged("you returned 1/4 = E[lam] E[1-lam]; but lam and 1-lam are not independent.",
                   "E[lam (1-lam)] = E[lam] - E[lam^2] = 1/4 - Var(lam)."): 0.25,
            staged("you returned 1/4 + Var(lam), which is E[lam^2]: subtract it instead.",
                   "E[lam (1-lam)] = E[lam] - E[lam^2] = 1/2 - (1/4 + Var(lam)) = 1/4 - Var(lam)."): 0.25 + var,
            staged("you returned Var(lam) itself.", "c = 1/4 - Var(lam)."): var,
            "you are missing a factor 1/2 (yours is twice the right value).": alpha / (2 * alpha + 1),
            staged("check the variance of Beta(alpha, alpha): you seem to have dropped the +1 of its last factor.",
                   "Beta(a, b) has variance a b / ((a + b)^2 (a + b + 1))."): 0.25 - 1 / (8 * alpha),
            "check the variance of Beta(alpha, alpha): its last factor is a + b + 1 = 2 alpha + 1, not "
            "alpha + 1.": 0.25 - 1 / (4 * (alpha + 1)),
            "your numerator is 1 where it should depend on alpha: redo 1/4 - Var(lam) over a common "
            "denominator.":
                1 / (2 * (2 * alpha + 1)),
            "the denominator has 2 alpha + 1 (that is a + b + 1 with a = b = alpha), not alpha + 1.":
                alpha / (2 * (alpha + 1)),
            staged("yours is alpha / (4 alpha + 1): the brackets are misplaced.",
                   "c = alpha / (2 (2 alpha + 1)), that is alpha / (2 * (2 * alpha + 1)) in code."):
                alpha / (4 * alpha + 1),
        }

    def same(u: float, v: float) -> bool:
        return math.isclose(u, v, rel_tol=1e-6, abs_tol=1e-12)

    # a mistake is named only when the answer matches it at EVERY alpha tried, not by coincidence at one
    per_alpha = [mistakes(alpha) for alpha in alphas]
    all_right = all(same(_c(alpha), value) for alpha, value in zip(alphas, values, strict=True))
    for message in per_alpha[0]:
        if not all_right and all(same(value, m[message]) for value, m in zip(values, per_alpha, strict=True)):
            return prefixed(f"for every alpha tried ({', '.join(f'{a:g}' for a in alphas)}): ", hint(message))
    # close everywhere (within 5 %), exact nowhere it is wrong, and no known mistake: perhaps an estimate
    close = all(math.isclose(value, _c(alpha), rel_tol=0.05) and not any(same(value, v) for v in wrong.values())
                for alpha, value, wrong in zip(alphas, values, per_alpha, strict=True)
                if not same(value, _c(alpha)))
    for alpha, value in zip(alphas, values, strict=True):
        expected = _c(alpha)
        if same(value, expected):
            continue
        if not close:
            return hint(f"for alpha = {alpha} you returned {value:.6g}; that is not E[lam (1 - lam)] for "
                        "lam ~ Beta(alpha, alpha), and no one usual mistake explains your values at every "
                        "alpha tried.", "Write c as E[lam] - E[lam^2], with E[lam] = 1/2 and E[lam^2] = Var(lam) + "
                        "1/4, and use the same formula for every alpha.")
        return hint(f"for alpha = {alpha} you returned {value:.6g}, close to but not exactly the right value. If "
                    "this is a Monte Carlo estimate or a rounded number, derive the exact value from the mean and "
                    "the variance of Beta(alpha, alpha) instead; otherwise check each step of your formula.")
    return passed("c = alpha / (2 (2 alpha + 1)), exactly.")


# --- exercise 3: the expected manifold-mixup loss --------------------------------------------------


def _expected(e: torch.Tensor, alpha: float, c: float | None = None) -> float:
    c = _c(alpha) if c is None else c
    return float((1 - 2 * c) * e.pow(2).mean() / 2 + c * e.mean() ** 2)


@checker("expected_loss(residuals, alpha)",
         nudge="Expand the square of the mixed residual and average each piece on its own: over lam, with the "
               "moments of its Beta distribution, and over the partner, who is uniform over all the examples, the "
               "example itself included.",
         shortcuts=("mixlib.gradients.expected_mmix_loss",
                    ("mixlib.gradients.mmix_loss_monte_carlo", "a Monte Carlo estimate of what this exercise asks "
                                                               "for"),
                    "mixlib.recipe.terms_loss", _expected))
def check_expected_loss(expected_loss: Callable) -> Feedback:
    """Check ``expected_loss(residuals, alpha) -> float``.

    The expected answer is ``(1 - 2c) mean(e^2) / 2 + c mean(e)^2`` with
    ``c = alpha / (2 (2 alpha + 1))``: the manifold-mixup squared loss per example of an affine
    head, in expectation over ``lam ~ Beta(alpha, alpha)`` and a uniformly random pairing.
    """
    g = torch.Generator().manual_seed(4)
    cases = [
        (0.7 + torch.randn(12, generator=g, dtype=torch.float64), 2.0),
        (torch.randn(9, generator=g, dtype=torch.float64) - 1.3, 0.4),
    ]
    refs = []
    for e, alpha in cases:  # references first
        c = _c(alpha)
        m2, m1 = float(e.pow(2).mean()), float(e.mean())
        var = float(e.var(unbiased=False))
        refs.append((e, alpha, c, m2, m1, var, _expected(e, alpha)))
    for e, alpha, c, m2, m1, var, expected in refs:
        value, problem = call(expected_loss, e, alpha)
        if problem is None:
            value, problem = as_float(value, "the expected loss")
        if problem is not None:
            return problem
        n = len(e)
        var_unbiased = var * n / (n - 1)
        mistakes = {
            staged("you used the unbiased variance (e.var(), which divides by n - 1) where the formula needs the "
                   "mean of the squares: mean(e^2) = var + mean(e)^2 only for the variance that divides by n.",
                   "Simplest is e.pow(2).mean() (or e.var(unbiased=False) + e.mean()**2)."):
                (0.5 - c) * var_unbiased + m1**2 / 2,
            staged("you left out self-pairs (a partner j != i, an n - 1 formula). The book pairs by a uniformly "
                   "random permutation, which pairs an example with itself with probability 1/n, so the partner "
                   "pi(i) is uniform over ALL n examples, i itself included.",
                   "E[e_pi(i)] = mean(e), and the cross part is c mean(e)^2."):
                (1 - 2 * c) * m2 / 2 + c * (n * n * m1**2 - n * m2) / (n * (n - 1)),
            staged("you left out the penalty on the mean residual: the cross products of the expansion do not "
                   "average to zero.", "The cross products 2 lam (1-lam) e_i e_pi(i) average to 2c mean(e)^2, so "
                   "the penalty is c mean(e)^2."): (1 - 2 * c) * m2 / 2,
            staged("your answer is the plain ERM loss mean(e^2)/2: the cross products e_i e_pi(i) do not average "
                   "to mean(e^2).", "pi(i) is uniform over all examples, so they average to mean(e)^2."): m2 / 2,
            "you forgot the factor 1/2 of the loss 1/2 (mixed residual)^2.": 2 * expected,
            staged("the factor 1/2 applies to the whole square, the ERM part included.",
                   "E[lam^2] + E[(1-lam)^2] = 1 - 2c multiplies mean(e^2)/2, and the cross part gives "
                   "c mean(e)^2."): (1 - 2 * c) * m2 + c * m1**2,
            staged("you used c = 1/4, which is E[lam] E[1-lam]; c is E[lam (1-lam)], and lam and 1-lam are not "
                   "independent.", "c = alpha / (2 (2 alpha + 1))."): _expected(e, alpha, c=0.25),
            staged("the ERM part is scaled by E[lam^2] + E[(1-lam)^2], which is not 1.",
                   "E[lam^2] + E[(1-lam)^2] = 1 - 2c, so it is (1 - 2c) mean(e^2)/2."): m2 / 2 + c * m1**2,
            "return the loss per example (a mean over the batch), not the sum.": len(e) * expected,
            "the penalty is c times the SQUARED mean residual, c mean(e)^2, not c mean(e).":
                (1 - 2 * c) * m2 / 2 + c * m1,
            "the penalty is on the squared MEAN residual, mean(e)^2 (the cross products of different "
            "examples), not on the variance of the residuals.": (1 - 2 * c) * m2 / 2 + c * var,
            "a sign: the cross products ADD c mean(e)^2 to the loss; they do not subtract it.":
                (1 - 2 * c) * m2 / 2 - c * m1**2,
            "the cross part is c mean(e)^2, not 2c mean(e)^2: the factor 2 of 2 lam (1-lam) e e' is halved "
            "by the 1/2 of the loss.": (1 - 2 * c) * m2 / 2 + 2 * c * m1**2,
        }
        problem = diagnose(value, expected, mistakes, rtol=1e-6, atol=1e-12, fallback=staged(
            "it matches none of the usual mistakes. Expand the square of the mixed residual, take the expectation "
            "of each piece over lam and over the uniform partner, then average over the examples.",
            "Expand 1/2 (lam e_i + (1-lam) e_pi(i))^2 and use E[lam^2] = E[(1-lam)^2] = 1/2 - c, "
            "E[lam (1-lam)] = c and E[e_pi(i)] = mean(e)."))
        if problem is not None:
            known = any(math.isclose(value, v, rel_tol=1e-6, abs_tol=1e-12) for v in mistakes.values())
            if not known and math.isclose(value, expected, rel_tol=0.03):
                problem = hint(f"you returned {value:.6g}, close to but not exactly the right value. If this is a "
                               "Monte Carlo estimate, give the exact expectation instead; otherwise check each "
                               "step of your formula (the mean of the squares, the partner's distribution, c).")
            return prefixed(f"with {len(e)} residuals and alpha = {alpha}: ", problem)
    return passed("your expected loss is (1 - 2c) mean(e^2)/2 + c mean(e)^2, exactly.")
