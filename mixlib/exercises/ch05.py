"""Checkers for chapter 5, input mixup vs manifold mixup."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from . import Feedback, as_float, call, check_callable, diagnose, finish, hint, passed

# --- exercise 1: cross-entropy at a mixed point, from the logits of the originals ---------------------


def _ce(logits: torch.Tensor, target: torch.Tensor) -> float:
    return float(-(target * torch.log_softmax(logits, dim=0)).sum())


def _one_hot(label: int, k: int) -> torch.Tensor:
    e = torch.zeros(k, dtype=torch.float64)
    e[label] = 1.0
    return e


def _mixed_ce_cases(z: torch.Tensor, z2: torch.Tensor, a: int, b: int, lam: float) -> dict[str, float]:
    """The right answer and what typical mistakes give, for one case."""
    k = len(z)
    mixed = lam * z + (1 - lam) * z2
    target = lam * _one_hot(a, k) + (1 - lam) * _one_hot(b, k)
    mixed_probs = lam * torch.softmax(z, 0) + (1 - lam) * torch.softmax(z2, 0)
    return {
        "right": _ce(mixed, target),
        "mixed_probs": float(-(target * torch.log(mixed_probs)).sum()),
        "hard": _ce(mixed, _one_hot(a, k)),
        "swapped_target": _ce(mixed, (1 - lam) * _one_hot(a, k) + lam * _one_hot(b, k)),
        "swapped_logits": _ce((1 - lam) * z + lam * z2, target),
        "originals": lam * _ce(z, _one_hot(a, k)) + (1 - lam) * _ce(z2, _one_hot(b, k)),
        "double_softmax": _ce(torch.softmax(mixed, 0), target),
    }


def _mixed_ce_inputs() -> list[tuple[torch.Tensor, torch.Tensor, int, int, float]]:
    g = torch.Generator().manual_seed(505)
    cases = []
    for k, a, b, lam in [(5, 2, 4, 0.35), (3, 0, 2, 0.8), (10, 3, 7, 0.6)]:
        z = 3 * torch.randn(k, generator=g, dtype=torch.float64)
        z2 = 3 * torch.randn(k, generator=g, dtype=torch.float64)
        cases.append((z, z2, a, b, lam))
    # the chapter's chord: logits s e_0 and s e_1 (symmetric, so it comes after the cases above)
    e0, e1 = _one_hot(0, 2), _one_hot(1, 2)
    return cases + [(4.0 * e0, 4.0 * e1, 0, 1, 0.7), (32.0 * e0, 32.0 * e1, 0, 1, 0.7)]


def check_mixed_logit_ce(mixed_logit_ce: Callable, strict: bool = False) -> Feedback:
    """Check ``mixed_logit_ce(logits, logits2, label, label2, lam) -> float``.

    The expected answer is the cross-entropy of the mixed logits ``lam * logits + (1 - lam) * logits2``
    (1-D tensors of length K) against the soft target with weight ``lam`` on ``label`` and
    ``1 - lam`` on ``label2``.
    """
    problem = check_callable(mixed_logit_ce, "mixed_logit_ce")
    if problem is not None:
        return finish(problem, strict)
    for z, z2, a, b, lam in _mixed_ce_inputs():
        value, problem = call(mixed_logit_ce, z.clone(), z2.clone(), a, b, lam)
        if problem is None:
            value, problem = as_float(value, "the cross-entropy")
        if problem is None:
            ref = _mixed_ce_cases(z, z2, a, b, lam)
            problem = diagnose(value, ref["right"], {
                "you mixed the probabilities of the two originals; manifold mixup with a linear head "
                "mixes the LOGITS, then applies the softmax once.": ref["mixed_probs"],
                "you scored the mixed logits against the hard label of the first example; the target "
                "is the soft mixture, lam on label and 1 - lam on label2.": ref["hard"],
                "the target's weights are swapped: label gets lam and label2 gets 1 - lam.":
                    ref["swapped_target"],
                "the logits' weights are swapped: the mixed logits are lam * logits + (1 - lam) * logits2.":
                    ref["swapped_logits"],
                "you averaged the losses of the two original examples; compute the loss of the one "
                "mixed point, whose logits are lam * logits + (1 - lam) * logits2.": ref["originals"],
                "you applied the softmax twice (for instance softmax, then a function that expects "
                "logits); log_softmax of the mixed logits is all you need.": ref["double_softmax"],
            }, rtol=1e-5)
            if problem is not None:
                problem = hint(f"with {len(z)} classes, labels ({a}, {b}) and lam = {lam}: {problem.message}")
        if problem is not None:
            return finish(problem, strict)
    return finish(passed("your function mixes the logits and scores them against the soft target."), strict)


# --- exercise 2: the best scale for two classes ------------------------------------------------------


def _best_scale(lam: float) -> float:
    return math.log(lam / (1 - lam)) / (2 * lam - 1)


def check_best_scale(best_scale: Callable, strict: bool = False) -> Feedback:
    """Check ``best_scale(lam) -> float``: the minimiser ``s* = logit(lam) / (2 lam - 1)``.

    For two classes the chord cross-entropy depends on the margin ``m = (2 lam - 1) s``, is
    minimised where ``sigmoid(m) = lam``, hence ``s* = log(lam / (1 - lam)) / (2 lam - 1) > 0``.
    """
    problem = check_callable(best_scale, "best_scale")
    if problem is not None:
        return finish(problem, strict)
    for lam in (0.7, 0.9, 0.6, 0.3, 0.05):
        value, problem = call(best_scale, lam)
        if problem is None:
            value, problem = as_float(value, "the best scale")
        if problem is None:
            right = _best_scale(lam)
            logit = math.log(lam / (1 - lam))
            wrong = {
                "you returned the best MARGIN m* = log(lam / (1 - lam)); the scale is the margin "
                "divided by (2 lam - 1).": logit,
                "sign error: the margin is (2 lam - 1) s, so divide by (2 lam - 1), not by "
                "(1 - 2 lam).": -right,
                "the log is missing: sigmoid(m) = lam gives m = log(lam / (1 - lam)).":
                    (lam / (1 - lam)) / (2 * lam - 1),
                "the denominator is (2 lam - 1), the coefficient of s in the margin, not lam.": logit / lam,
            }
            if lam < 0.5:  # an absolute value on the denominator only shows for lam < 1/2
                wrong = {"for lam < 1/2 both the best margin and (2 lam - 1) are negative, so s* is "
                         "still positive: do not take the absolute value of only one of them.":
                         logit / abs(2 * lam - 1), **wrong}
            problem = diagnose(value, right, wrong, rtol=1e-3)
            if problem is None and value <= 0:
                problem = hint("a scale must be positive.")
            if problem is not None:
                problem = hint(f"for lam = {lam}: {problem.message}")
        if problem is not None:
            return finish(problem, strict)
    return finish(passed("s*(lam) = log(lam / (1 - lam)) / (2 lam - 1): sigmoid of the best margin "
                         "equals lam."), strict)


# --- exercise 3: input vs manifold mixup losses --------------------------------------------------------


def _setup(nonlinear_head: bool, seed: int):
    g = torch.Generator().manual_seed(seed)
    features = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 4), nn.Tanh())
    head: nn.Module
    if nonlinear_head:
        head = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 1))
    else:
        head = nn.Linear(4, 1)
    with torch.no_grad():
        for p in [*features.parameters(), *head.parameters()]:
            p.copy_(torch.randn(p.shape, generator=g))
    x = torch.randn(9, 3, generator=g)
    y = torch.randn(9, generator=g)
    perm = torch.randperm(9, generator=g)
    return features.eval(), head.eval(), x, y, perm


@torch.no_grad()
def _two_loss_cases(features, head, x, y, lam, perm) -> dict[str, float]:
    target = lam * y + (1 - lam) * y[perm]
    z = features(x)
    pred_in = head(features(lam * x + (1 - lam) * x[perm]))[:, 0]
    pred_mm = head(lam * z + (1 - lam) * z[perm])[:, 0]
    out = head(z)[:, 0]
    pred_out = lam * out + (1 - lam) * out[perm]

    def half_mse(t, p):
        return float(0.5 * ((t - p) ** 2).mean())

    return {
        "in": half_mse(target, pred_in),
        "mm": half_mse(target, pred_mm),
        "mm_mixed_outputs": half_mse(target, pred_out),
        "in_unmixed_target": half_mse(y, pred_in),
        "mm_unmixed_target": half_mse(y, pred_mm),
        "in_sum": float(0.5 * ((target - pred_in) ** 2).sum()),
        "mm_sum": float(0.5 * ((target - pred_mm) ** 2).sum()),
        "in_no_half": 2 * half_mse(target, pred_in),
        "mm_no_half": 2 * half_mse(target, pred_mm),
        "in_broadcast": half_mse(target, pred_in[:, None]),
        "mm_broadcast": half_mse(target, pred_mm[:, None]),
        "in_flipped": half_mse(target, head(features((1 - lam) * x + lam * x[perm]))[:, 0]),
        "mm_flipped": half_mse(target, head((1 - lam) * z + lam * z[perm])[:, 0]),
    }


def check_mixup_losses(mixup_losses: Callable, strict: bool = False) -> Feedback:
    """Check ``mixup_losses(features, head, x, y, lam, perm) -> (input_loss, manifold_loss)``.

    Both are ``mean_i 1/2 (lam y_i + (1-lam) y_perm[i] - prediction_i)^2``, with the prediction
    ``head(features(lam x + (1-lam) x[perm]))`` for input mixup and
    ``head(lam features(x) + (1-lam) features(x)[perm])`` for manifold mixup.
    """
    problem = check_callable(mixup_losses, "mixup_losses")
    if problem is not None:
        return finish(problem, strict)
    for nonlinear, lam, seed in [(True, 0.3, 0), (False, 0.8, 1), (True, 0.65, 2)]:
        features, head, x, y, perm = _setup(nonlinear, seed)
        result, problem = call(mixup_losses, features, head, x.clone(), y.clone(), lam, perm.clone())
        if problem is None and (not isinstance(result, (tuple, list)) or len(result) != 2):
            problem = hint("return a pair (input_loss, manifold_loss), e.g. `return loss_in, loss_mm`.")
        if problem is None:
            loss_in, problem = as_float(result[0], "the input-mixup loss")
        if problem is None:
            loss_mm, problem = as_float(result[1], "the manifold-mixup loss")
        if problem is not None:
            return finish(problem, strict)
        ref = _two_loss_cases(features, head, x, y, lam, perm)
        where = f"(head {'nonlinear' if nonlinear else 'affine'}, lam = {lam}) "
        if math.isclose(loss_in, ref["mm"], rel_tol=1e-4) and math.isclose(loss_mm, ref["in"], rel_tol=1e-4):
            return finish(hint(where + "the two losses are swapped: return (input_loss, manifold_loss)."),
                          strict)
        common = {
            "you compared the prediction with the unmixed target y; the target is "
            "lam * y + (1 - lam) * y[perm].": "unmixed_target",
            "you summed over the batch; take the mean.": "sum",
            "the loss is 1/2 (target - prediction)^2: the factor 1/2 is missing.": "no_half",
            "shapes: head returns (B, 1) and y has (B,), so their difference broadcasts to (B, B). "
            "Take head(...)[:, 0] first.": "broadcast",
            "the weights are flipped: example i gets weight lam and its partner perm[i] weight "
            "1 - lam, for the inputs (or features) and the targets alike.": "flipped",
        }
        problem = diagnose(loss_in, ref["in"], {m: ref["in_" + k] for m, k in common.items()})
        if problem is not None:
            return finish(hint(where + "input-mixup loss: " + problem.message), strict)
        wrong_mm = {
            "you mixed the OUTPUTS of the head, lam * head(z) + (1 - lam) * head(z[perm]); manifold "
            "mixup mixes the features z = features(x) and applies the head to the mix. (With an affine "
            "head the two agree, with a nonlinear one they do not.)": ref["mm_mixed_outputs"],
            **{m: ref["mm_" + k] for m, k in common.items()},
            "you returned the input-mixup loss twice: for manifold mixup, mix features(x), not x.": ref["in"],
        }
        if not nonlinear:
            wrong_mm.pop(next(iter(wrong_mm)))  # outputs and features mix alike under an affine head
        problem = diagnose(loss_mm, ref["mm"], wrong_mm)
        if problem is not None:
            return finish(hint(where + "manifold-mixup loss: " + problem.message), strict)
    return finish(passed("both losses are right, with an affine and with a nonlinear head."), strict)
