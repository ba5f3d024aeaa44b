"""Checkers for chapter 5, input mixup vs manifold mixup."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from . import Feedback, as_float, call, checker, diagnose, form_hint, hint, passed, prefixed, staged

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
        "overwritten_target": _ce(mixed, _assigned_target(k, a, b, lam)),
        "class_mean": _ce(mixed, target) / k,
        "negative": -_ce(mixed, target),
        "lam_both": _ce(mixed, lam * _one_hot(a, k) + lam * _one_hot(b, k)),
        "no_log": float(-(target * torch.softmax(mixed, 0)).sum()),
    }


def _assigned_target(k: int, a: int, b: int, lam: float) -> torch.Tensor:
    """The target built by assignment, ``t[a] = lam; t[b] = 1 - lam``: wrong when ``a == b``."""
    t = torch.zeros(k, dtype=torch.float64)
    t[a] = lam
    t[b] = 1 - lam
    return t


def _mixed_ce_inputs() -> list[tuple[torch.Tensor, torch.Tensor, int, int, float]]:
    g = torch.Generator().manual_seed(505)
    cases = []
    # the third pair has the same class twice: its target is one-hot, lam + (1 - lam) = 1 on that class
    for k, a, b, lam in [(5, 2, 4, 0.35), (3, 0, 2, 0.8), (4, 1, 1, 0.3), (10, 3, 7, 0.6)]:
        z = 3 * torch.randn(k, generator=g, dtype=torch.float64)
        z2 = 3 * torch.randn(k, generator=g, dtype=torch.float64)
        cases.append((z, z2, a, b, lam))
    # the chapter's chord: logits (s, 0) and (0, s) (symmetric, so it comes after the cases above)
    e0, e1 = _one_hot(0, 2), _one_hot(1, 2)
    return cases + [(4.0 * e0, 4.0 * e1, 0, 1, 0.7), (32.0 * e0, 32.0 * e1, 0, 1, 0.7)]


@checker("mixed_logit_ce(logits, logits2, label, label2, lam)",
         nudge="Look at the order of the steps: mix the two examples' logits first, turn the mixed logits into "
               "log-probabilities once, and score them against a soft target that shares its weight between "
               "the two labels.",
         shortcuts=(_mixed_ce_cases, ("mixlib.mixing.mixed_cross_entropy",
                                      "the cross-entropy against the mixed target, the heart of this exercise")))
def check_mixed_logit_ce(mixed_logit_ce: Callable) -> Feedback:
    """Check ``mixed_logit_ce(logits, logits2, label, label2, lam) -> float``.

    The expected answer is the cross-entropy of the mixed logits ``lam * logits + (1 - lam) * logits2``
    (1-D tensors of length C) against the soft target with weight ``lam`` on ``label`` and
    ``1 - lam`` on ``label2``.
    """
    cases = [(z, z2, a, b, lam, _mixed_ce_cases(z, z2, a, b, lam))
             for z, z2, a, b, lam in _mixed_ce_inputs()]  # references first
    for z, z2, a, b, lam, ref in cases:
        value, problem = call(mixed_logit_ce, z, z2, a, b, lam)
        if problem is None:
            value, problem = as_float(value, "the cross-entropy")
        if problem is not None:
            return problem
        problem = diagnose(value, ref["right"], {
            staged("when label == label2 the target puts all its weight, lam + (1 - lam) = 1, on that one class: "
                   "don't let the second assignment overwrite the first.",
                   "Add the two weights (target[label] += ...)."): ref["overwritten_target"],
            "you mixed the probabilities of the two originals; manifold mixup with a linear head "
            "mixes the LOGITS, then applies the softmax once.": ref["mixed_probs"],
            "you scored the mixed logits against the hard label of the first example; the target "
            "is the soft mixture, lam on label and 1 - lam on label2.": ref["hard"],
            "the target's weights are swapped: label gets lam and label2 gets 1 - lam.":
                ref["swapped_target"],
            staged("the logits' weights are swapped: logits gets lam and logits2 gets 1 - lam.",
                   "The mixed logits are lam * logits + (1 - lam) * logits2."): ref["swapped_logits"],
            staged("you averaged the losses of the two original examples; compute the loss of the one "
                   "mixed point.", "Its logits are lam * logits + (1 - lam) * logits2."): ref["originals"],
            staged("you applied the softmax twice (for instance softmax, then a function that expects "
                   "logits).", "log_softmax of the mixed logits is all you need."): ref["double_softmax"],
            "you averaged over the classes; the cross-entropy SUMS target * log-probability over the classes.":
                ref["class_mean"],
            "the sign is missing: the cross-entropy is MINUS the sum of target * log-probability, a positive "
            "number.": ref["negative"],
            "both labels got weight lam; label2's weight is 1 - lam.": ref["lam_both"],
            staged("you weighted the probabilities, not the log-probabilities.",
                   "The cross-entropy is -sum(target * log_softmax(mixed logits))."): ref["no_log"],
        }, rtol=1e-5, fallback=staged(
            "it matches none of the usual mistakes. Mix the logits, build the target with lam on label and "
            "1 - lam on label2, and return the cross-entropy of the mixed logits against that target.",
            "z = lam * logits + (1 - lam) * logits2, then -sum(target * log_softmax(z))."))
        if problem is not None:
            return prefixed(f"with {len(z)} classes, labels ({a}, {b}) and lam = {lam}: ", problem)
    return passed("your function mixes the logits and scores them against the soft target, also when both "
                  "examples share a class.")


# --- exercise 2: the best scale for two classes ------------------------------------------------------


def _best_scale(lam: float) -> float:
    return math.log(lam / (1 - lam)) / (2 * lam - 1)


@checker("best_scale(lam)",
         nudge="Write the loss as a function of the margin between the two logits: the chapter's two-class "
               "formula already is one. Find where its derivative in the margin vanishes, then go back from the "
               "margin to the scale.",
         shortcuts=(_best_scale,))
def check_best_scale(best_scale: Callable) -> Feedback:
    """Check ``best_scale(lam) -> float``: the minimiser ``s* = logit(lam) / (2 lam - 1)``.

    For two classes the chord cross-entropy depends on the margin ``dz = (2 lam - 1) s``, is
    minimised where ``sigmoid(dz) = lam``, hence ``s* = log(lam / (1 - lam)) / (2 lam - 1) > 0``.
    """
    for lam in (0.7, 0.9, 0.6, 0.3, 0.05):
        value, problem = call(best_scale, lam)
        if problem is None:
            value, problem = as_float(value, "the best scale")
        if problem is None:
            right = _best_scale(lam)
            logit = math.log(lam / (1 - lam))
            wrong = {
                staged("you returned the best MARGIN; the scale is not the margin itself.",
                       "The scale is the margin divided by (2 lam - 1)."): logit,
                staged("sign error: your scale has the wrong sign (the best scale is positive on both sides of "
                       "lam = 1/2).", "The best margin is log(lam / (1 - lam)) (not log((1 - lam) / lam)), and the "
                       "margin is (2 lam - 1) s, so divide by (2 lam - 1), not by (1 - 2 lam)."): -right,
                staged("the log is missing: solving sigmoid(dz) = lam for dz takes a log.",
                       "dz = log(lam / (1 - lam)).",): (lam / (1 - lam)) / (2 * lam - 1),
                "the denominator is (2 lam - 1), the coefficient of s in the margin, not lam.": logit / lam,
                "use the natural logarithm (math.log or torch.log), not log10: sigmoid is built on e.":
                    math.log10(lam / (1 - lam)) / (2 * lam - 1),
                staged("you returned the odds lam / (1 - lam); the best margin is their LOG, and the scale is not "
                       "the margin itself.", "The scale is that margin divided by (2 lam - 1)."): lam / (1 - lam),
                "the log is of the odds lam / (1 - lam), not of lam alone.": math.log(lam) / (2 * lam - 1),
                "the margin of the two logits (s, 0) and (0, s) at the mixed point is (2 lam - 1) s, not "
                "(1 - lam) s or lam s; divide the best margin by (2 lam - 1).": logit / (1 - lam),
            }
            if lam < 0.5:  # an absolute value on the denominator only shows for lam < 1/2
                wrong = {"for lam < 1/2 both the best margin and (2 lam - 1) are negative, so s* is "
                         "still positive: do not take the absolute value of only one of them.":
                         logit / abs(2 * lam - 1), **wrong}
            problem = diagnose(value, right, wrong, rtol=1e-3, fallback=staged(
                "it matches none of the usual mistakes. For two classes the loss depends on s only through the "
                "margin between the two logits: find the best margin, then turn it into a scale.",
                "The margin is dz = (2 lam - 1) s; find the dz where sigmoid(dz) = lam, then divide by (2 lam - 1)."))
            if problem is None and value <= 0:
                problem = hint("a scale must be positive.")
            if problem is not None:
                problem = prefixed(f"for lam = {lam}: ", problem)
        if problem is not None:
            return problem
    return passed("s*(lam) = log(lam / (1 - lam)) / (2 lam - 1): sigmoid of the best margin "
                         "equals lam.")


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
        # (B, 1) against (B,): the difference broadcasts to (B, B); F.mse_loss does the same, without the 1/2
        "in_broadcast": half_mse(target, pred_in[:, None]),
        "mm_broadcast": half_mse(target, pred_mm[:, None]),
        "in_broadcast_no_half": 2 * half_mse(target, pred_in[:, None]),
        "mm_broadcast_no_half": 2 * half_mse(target, pred_mm[:, None]),
        "in_flipped": half_mse(target, head(features((1 - lam) * x + lam * x[perm]))[:, 0]),
        "mm_flipped": half_mse(target, head((1 - lam) * z + lam * z[perm])[:, 0]),
        "in_abs": float(0.5 * (target - pred_in).abs().mean()),
        "mm_abs": float(0.5 * (target - pred_mm).abs().mean()),
        "in_abs_no_half": float((target - pred_in).abs().mean()),
        "mm_abs_no_half": float((target - pred_mm).abs().mean()),
        "in_no_perm": half_mse(target, out),
        "mm_no_perm": half_mse(target, out),
        "in_unmixed_both": half_mse(y, out),
        "mm_unmixed_both": half_mse(y, out),
    }


@checker("mixup_losses(features, head, x, y, lam, perm)",
         nudge="Look at where each loss does its mixing: input mixup mixes the inputs before the feature map, "
               "manifold mixup mixes the features between the feature map and the head; both score the "
               "prediction against the mixed target.",
         shortcuts=(_two_loss_cases, "mixlib.recipe.recipe_loss",
                    ("mixlib.manifold.StagedNet.forward_mixed",
                     "the prediction mixed at a chosen layer, the heart of this exercise")))
def check_mixup_losses(mixup_losses: Callable) -> Feedback:
    """Check ``mixup_losses(features, head, x, y, lam, perm) -> (input_loss, manifold_loss)``.

    Both are ``mean_i 1/2 (lam y_i + (1-lam) y_perm[i] - prediction_i)^2``, with the prediction
    ``head(features(lam x + (1-lam) x[perm]))`` for input mixup and
    ``head(lam features(x) + (1-lam) features(x)[perm])`` for manifold mixup.
    """
    cases = []
    for nonlinear, lam, seed in [(True, 0.3, 0), (False, 0.8, 1), (True, 0.65, 2)]:  # references first
        features, head, x, y, perm = _setup(nonlinear, seed)
        cases.append((nonlinear, lam, features, head, x, y, perm, _two_loss_cases(features, head, x, y, lam, perm)))
    for nonlinear, lam, features, head, x, y, perm, ref in cases:
        result, problem = call(mixup_losses, features, head, x, y, lam, perm)
        if problem is None:  # call() compares values in float64, so a dtype changed in place is checked here
            from . import given_arguments

            for name, before, after in zip(("features", "head", "x", "y"), (features, head, x, y),
                                           given_arguments(), strict=False):
                dtypes = [[t.dtype for t in m.state_dict().values()] if isinstance(m, nn.Module) else [m.dtype]
                          for m in (before, after)]
                if dtypes[0] != dtypes[1]:
                    problem = form_hint(f"your function converted `{name}` to another dtype in place (.double() "
                                        f"or .to(torch.float64) changes a module itself, not a copy). The caller "
                                        f"still needs `{name}` as it was: use it as given, or convert a copy.")
                    break
        if problem is None and isinstance(result, (torch.Tensor, np.ndarray)) and tuple(result.shape) == (2,):
            result = list(result)
        if problem is None and (not isinstance(result, (tuple, list)) or len(result) != 2):
            problem = form_hint("return a pair (input_loss, manifold_loss), e.g. `return loss_in, loss_mm`.")
        if problem is None:
            loss_in, problem = as_float(result[0], "the input-mixup loss")
        if problem is None:
            loss_mm, problem = as_float(result[1], "the manifold-mixup loss")
        if problem is not None:
            return problem
        where = f"(head {'nonlinear' if nonlinear else 'affine'}, lam = {lam}) "
        if math.isclose(loss_in, ref["mm"], rel_tol=1e-4) and math.isclose(loss_mm, ref["in"], rel_tol=1e-4):
            return form_hint(where + "the two losses are swapped: return (input_loss, manifold_loss).")
        # a shape slip, not a wrong idea: named in full at the first reply, and not counted as a wrong answer
        for which, got in (("in", loss_in), ("mm", loss_mm)):
            if any(math.isclose(got, ref[f"{which}_{kind}"], rel_tol=1e-4)
                   for kind in ("broadcast", "broadcast_no_half")):
                return form_hint(where + f"{'input' if which == 'in' else 'manifold'}-mixup loss: a shape "
                                 "mismatch. head returns shape (B, 1) and y has shape (B,), so target - "
                                 "prediction broadcasts to (B, B) and the mean runs over all B * B "
                                 "combinations. Take head(...)[:, 0] (or .squeeze(1)) before subtracting.")
        common = {
            staged("you compared the prediction with the unmixed target y; the target must be mixed too, with the "
                   "same lam and perm.", "The target is lam * y + (1 - lam) * y[perm]."): "unmixed_target",
            "you summed over the batch; take the mean.": "sum",
            "the loss is 1/2 (target - prediction)^2: the factor 1/2 is missing.": "no_half",
            "you used the absolute error; the loss is 1/2 (target - prediction)^2, a square.": "abs",
            "you used the absolute error without the 1/2; the loss is 1/2 (target - prediction)^2, a square.":
                "abs_no_half",
            "your prediction is the plain, unmixed head(features(x)): mixing x with x[perm] (or z with "
            "z[perm]) is missing, so lam * x + (1 - lam) * x collapsed to x.": "no_perm",
            "you scored the plain prediction head(features(x)) against the plain y: nothing was mixed.":
                "unmixed_both",
            "the weights are flipped: example i gets weight lam and its partner perm[i] weight "
            "1 - lam, for the inputs (or features) and the targets alike.": "flipped",
        }
        problem = diagnose(loss_in, ref["in"], {m: ref["in_" + k] for m, k in common.items()}, fallback=staged(
            "it matches none of the usual mistakes. Mix the inputs with their partners, predict with the whole "
            "network on the mix, and take the mean of half the squared gap between mixed target and prediction.",
            "x_mix = lam * x + (1 - lam) * x[perm], prediction head(features(x_mix))[:, 0], and the mean of "
            "1/2 (lam * y + (1 - lam) * y[perm] - prediction)^2."))
        if problem is not None:
            return prefixed(where + "input-mixup loss: ", problem)
        wrong_mm = {
            "you mixed the OUTPUTS of the head, lam * head(z) + (1 - lam) * head(z[perm]); manifold "
            "mixup mixes the features z = features(x) and applies the head to the mix. (With an affine "
            "head the two agree, with a nonlinear one they do not.)": ref["mm_mixed_outputs"],
            **{m: ref["mm_" + k] for m, k in common.items()},
            "you returned the input-mixup loss twice: for manifold mixup, mix features(x), not x.": ref["in"],
        }
        if not nonlinear:
            wrong_mm.pop(next(iter(wrong_mm)))  # outputs and features mix alike under an affine head
        problem = diagnose(loss_mm, ref["mm"], wrong_mm, fallback=staged(
            "it matches none of the usual mistakes. Mix the features of the examples with their partners', "
            "predict with the head on the mix, and take the mean of half the squared gap between mixed target and "
            "prediction.",
            "z = features(x), z_mix = lam * z + (1 - lam) * z[perm], prediction head(z_mix)[:, 0], and the mean "
            "of 1/2 (lam * y + (1 - lam) * y[perm] - prediction)^2."))
        if problem is not None:
            return prefixed(where + "manifold-mixup loss: ", problem)
    return passed("both losses are right, with an affine and with a nonlinear head.")
