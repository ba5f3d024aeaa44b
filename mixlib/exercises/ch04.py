"""Checkers for chapter 4, the gradient expansion."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np
import torch

from ..gradients import FOUR_TERM_KEYS
from . import (
    Feedback,
    as_float,
    as_tensor,
    call,
    checker,
    diagnose,
    estimate_hint,
    form_hint,
    hint,
    passed,
    prefixed,
    staged,
)

# --- exercise 1: the four terms from residuals and per-example gradients ---------------------------


def _term_case(seed: int, batch: int = 5, n_params: int = 7) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    e = torch.randn(batch, generator=gen, dtype=torch.float64)
    e2 = torch.randn(batch, generator=gen, dtype=torch.float64)
    grads = torch.randn(2, batch, n_params, generator=gen, dtype=torch.float64)
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
        staged("your ordinary terms have their weights exchanged: the weight of the example x went to its "
               "partner, and the other way round.",
               "lam^2 goes with x (e g(x)) and (1-lam)^2 with x' (e' g(x')).",
               ): _terms(e, e2, g, g2, lam, w_x=(1 - lam) ** 2, w_x2=lam**2),
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
        staged("your ordinary terms are weighted by lam (1-lam), the cross terms' weight.",
               "The ordinary terms get lam^2 (for x) and (1-lam)^2 (for x')."): _terms(e, e2, g, g2, lam,
                                                                                      w_x=lam * (1 - lam),
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
    """Check ``mixing_constant(alpha) -> float``: ``c = E[lam (1 - lam)]`` for ``lam ~ Beta(alpha, alpha)``,
    exactly (not an estimate)."""
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
            staged("check the variance of Beta(alpha, alpha): its last factor is not alpha + 1.",
                   "The last factor is a + b + 1 = 2 alpha + 1."): 0.25 - 1 / (4 * (alpha + 1)),
            "your numerator is 1 where it should depend on alpha: redo 1/4 - Var(lam) over a common "
            "denominator.":
                1 / (2 * (2 * alpha + 1)),
            staged("your denominator has alpha + 1 where the variance of Beta(alpha, alpha) brings in its own "
                   "last factor.", "That factor is a + b + 1 = 2 alpha + 1 with a = b = alpha."):
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
    for alpha, value in zip(alphas, values, strict=True):
        expected = _c(alpha)
        if same(value, expected):
            continue
        # an estimate is named by what the function did (drew random numbers) or returned (a rounded number),
        # never by closeness to the right value, which would let a learner bisect to it
        estimate = estimate_hint(value, "Derive the exact value from the mean and the variance of Beta(alpha, "
                                        "alpha) instead.")
        if estimate is not None:
            return prefixed(f"for alpha = {alpha}: ", estimate)
        return hint(f"for alpha = {alpha} you returned {value:.6g}; that is not E[lam (1 - lam)] for "
                    "lam ~ Beta(alpha, alpha), and no one usual mistake explains your values at every "
                    "alpha tried.", "Write c as E[lam] - E[lam^2], with E[lam] = 1/2 and E[lam^2] = Var(lam) + "
                    "1/4, and use the same formula for every alpha.")
    return passed("c = alpha / (2 (2 alpha + 1)), exactly.")


# --- exercise 3: the expected loss when no example is its own partner --------------------------------


def _expected_others(e: torch.Tensor, alpha: float) -> float:
    """``E[1/n sum_i 1/2 (lam e_i + (1 - lam) e_pi(i))^2]`` when each partner is uniform over the OTHER examples."""
    return _others_value(float(e.pow(2).mean()), float(e.mean()), len(e), _c(alpha))


def _others_value(m2: float, m1: float, n: int, c: float) -> float:
    # the cross products e_i e_pi(i) average to e_i (n mean(e) - e_i) / (n - 1), that is
    # (n mean(e)^2 - mean(e^2)) / (n - 1) over the batch
    return (1 - 2 * c) * m2 / 2 + c * (n * m1**2 - m2) / (n - 1)


def _others_mistakes(m2: float, m1: float, n: int, c: float) -> dict[str, float]:
    """Each typical mistake, mapped from its hint to the value it produces."""
    right = _others_value(m2, m1, n, c)
    return {
        staged("yours is the value for a partner drawn from all n examples, the example itself included: the step "
               "where the partner's residual averages to the mean residual no longer holds when the example "
               "cannot be its own partner.",
               "The partner's residual now averages to the mean of the OTHER residuals, "
               "E[e_pi(i)] = (n mean(e) - e_i) / (n - 1)."): (1 - 2 * c) * m2 / 2 + c * m1**2,
        staged("you rescaled the penalty on the mean residual, but leaving the example itself out of the "
               "partner's average also takes something away in proportion to the mean SQUARED residual.",
               "Averaged over i, e_i (n mean(e) - e_i) / (n - 1) is (n mean(e)^2 - mean(e^2)) / (n - 1)."):
            (1 - 2 * c) * m2 / 2 + c * n * m1**2 / (n - 1),
        staged("you divided by n where the partner is drawn from n - 1 examples.",
               "E[e_pi(i)] = (n mean(e) - e_i) / (n - 1)."): (1 - 2 * c) * m2 / 2 + c * (n * m1**2 - m2) / n,
        staged("a sign: leaving the example out of its own partner's average SUBTRACTS e_i from the sum of the "
               "residuals; it does not add it.",
               "E[e_pi(i)] = (n mean(e) - e_i) / (n - 1)."): (1 - 2 * c) * m2 / 2 + c * (n * m1**2 + m2) / (n - 1),
        "you forgot the factor 1/2 of the loss 1/2 (mixed residual)^2.": 2 * right,
        "return the loss per example (a mean over the batch), not the sum.": n * right,
        staged("you used c = 1/4, which is E[lam] E[1-lam]; c is E[lam (1-lam)], and lam and 1-lam are not "
               "independent.", "c = E[lam (1-lam)] is the constant of the exercise before this one (or "
               "mixlib.gradients.mixing_constant)."):
            _others_value(m2, m1, n, 0.25),
        staged("the ERM part is scaled by E[lam^2] + E[(1-lam)^2], which is not 1.",
               "E[lam^2] + E[(1-lam)^2] = 1 - 2c, so that part is (1 - 2c) mean(e^2) / 2."):
            m2 / 2 + c * (n * m1**2 - m2) / (n - 1),
        "the cross part carries c, not 2c: the factor 2 of 2 lam (1-lam) e_i e_pi(i) is halved by the 1/2 "
        "of the loss.": (1 - 2 * c) * m2 / 2 + 2 * c * (n * m1**2 - m2) / (n - 1),
    }


@checker("expected_loss_others(residuals, alpha)",
         nudge="Go through the proof of the expected loss again and change only the step that averages the "
               "partner's residual: the partner is now one of the other examples, never the example itself.",
         shortcuts=(_expected_others,))
def check_expected_loss_others(expected_loss_others: Callable) -> Feedback:
    """Check ``expected_loss_others(residuals, alpha) -> float``.

    The answer is the manifold-mixup squared loss per example of an affine head, in expectation
    over ``lam ~ Beta(alpha, alpha)`` and a pairing that is a permutation in which the partner of
    each example is uniform over the other ``n - 1`` examples: torchvision's roll of a shuffled
    batch, for any ``n >= 2`` (the cases below include an odd ``n``). timm's flip gives the same
    only for an even ``n``; in an odd batch it pairs the middle example with itself.
    """
    gen = torch.Generator().manual_seed(4)
    cases = [
        (0.7 + torch.randn(12, generator=gen, dtype=torch.float64), 2.0),
        (torch.randn(5, generator=gen, dtype=torch.float64) - 1.3, 0.4),
    ]
    refs = []
    for e, alpha in cases:  # references first
        m2, m1, n, c = float(e.pow(2).mean()), float(e.mean()), len(e), _c(alpha)
        refs.append((e, alpha, _others_value(m2, m1, n, c), _others_mistakes(m2, m1, n, c)))
    for e, alpha, expected, mistakes in refs:
        value, problem = call(expected_loss_others, e, alpha)
        if problem is None:
            value, problem = as_float(value, "the expected loss")
        if problem is not None:
            return problem
        problem = diagnose(value, expected, mistakes, rtol=1e-6, atol=1e-12, fallback=staged(
            "it matches none of the usual mistakes. Expand the square of the mixed residual, take the expectation "
            "of each piece over lam and over the partner, who is one of the other examples, then average over "
            "the examples.",
            "Use E[lam^2] + E[(1-lam)^2] = 1 - 2c, E[lam (1-lam)] = c and E[e_pi(i)] = (n mean(e) - e_i) / (n - 1); "
            "the squares of the partners' residuals still average to mean(e^2), since the pairing is a "
            "permutation."))
        if problem is not None:
            known = any(math.isclose(value, v, rel_tol=1e-6, abs_tol=1e-12) for v in mistakes.values())
            estimate = None if known else estimate_hint(value, "Give the exact expectation instead.")
            if estimate is not None:  # named by what the function did, never by closeness (an oracle)
                problem = estimate
            return prefixed(f"with {len(e)} residuals and alpha = {alpha}: ", problem)
    return passed("your expected loss is right for a partner drawn from the other examples, exactly.")
