"""Chapter 5 checkers accept the reference solutions and reject typical wrong answers with a hint."""

from __future__ import annotations

import math

import pytest
import torch
from exercise_helpers import assert_rejected

from mixlib.exercises import ch05

# --- exercise 1 -------------------------------------------------------------------------------------


def mixed_logit_ce(logits, logits2, label, label2, lam):
    log_p = torch.log_softmax(lam * logits + (1 - lam) * logits2, dim=0)
    return float(-(lam * log_p[label] + (1 - lam) * log_p[label2]))


def ce_with_functional(logits, logits2, label, label2, lam):
    """The same through F.cross_entropy with probability targets, returned as a 0-d tensor."""
    mixed = lam * logits + (1 - lam) * logits2
    target = lam * torch.nn.functional.one_hot(torch.tensor(label), len(logits)).double()
    target = target + (1 - lam) * torch.nn.functional.one_hot(torch.tensor(label2), len(logits)).double()
    return torch.nn.functional.cross_entropy(mixed[None], target[None])


def ce_mixed_probabilities(logits, logits2, label, label2, lam):
    p = lam * torch.softmax(logits, 0) + (1 - lam) * torch.softmax(logits2, 0)
    return float(-(lam * torch.log(p[label]) + (1 - lam) * torch.log(p[label2])))


def ce_hard_target(logits, logits2, label, label2, lam):
    return float(-torch.log_softmax(lam * logits + (1 - lam) * logits2, 0)[label])


def ce_swapped_target(logits, logits2, label, label2, lam):
    log_p = torch.log_softmax(lam * logits + (1 - lam) * logits2, dim=0)
    return float(-((1 - lam) * log_p[label] + lam * log_p[label2]))


def ce_swapped_logits(logits, logits2, label, label2, lam):
    log_p = torch.log_softmax((1 - lam) * logits + lam * logits2, dim=0)
    return float(-(lam * log_p[label] + (1 - lam) * log_p[label2]))


def ce_originals(logits, logits2, label, label2, lam):
    return lam * mixed_logit_ce(logits, logits, label, label, 1.0) + (1 - lam) * mixed_logit_ce(
        logits2, logits2, label2, label2, 1.0)


def ce_double_softmax(logits, logits2, label, label2, lam):
    probs = torch.softmax(lam * logits + (1 - lam) * logits2, 0)
    return mixed_logit_ce(probs, probs, label, label2, lam)


def ce_tensor_per_class(logits, logits2, label, label2, lam):
    return torch.log_softmax(lam * logits + (1 - lam) * logits2, 0)


def ce_stub(logits, logits2, label, label2, lam):
    raise NotImplementedError


def test_reference_solutions_pass():
    assert ch05.check_mixed_logit_ce(mixed_logit_ce)
    assert ch05.check_mixed_logit_ce(ce_with_functional)
    assert ch05.check_best_scale(best_scale)
    assert ch05.check_mixup_losses(mixup_losses)
    assert ch05.check_mixup_losses(mixup_losses_tensors, strict=True).passed


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (ce_mixed_probabilities, "mixed the probabilities"),
        (ce_hard_target, "hard label"),
        (ce_swapped_target, "target's weights are swapped"),
        (ce_swapped_logits, "logits' weights are swapped"),
        (ce_originals, "averaged the losses of the two original"),
        (ce_double_softmax, "softmax twice"),
        (ce_tensor_per_class, "single number"),
        (ce_stub, "Not attempted yet"),
        ("not a function", "pass your function"),
    ],
)
def test_mixed_logit_ce_checker_rejects_typical_mistakes(answer, hint):
    assert_rejected(ch05.check_mixed_logit_ce, answer, hint)


# --- exercise 2 -------------------------------------------------------------------------------------


def best_scale(lam):
    return math.log(lam / (1 - lam)) / (2 * lam - 1)


def best_scale_numeric(lam):
    s = torch.linspace(0.001, 20, 200_001, dtype=torch.float64)
    m = (2 * lam - 1) * s
    loss = lam * torch.nn.functional.softplus(-m) + (1 - lam) * torch.nn.functional.softplus(m)
    return float(s[loss.argmin()])


def scale_margin(lam):
    return math.log(lam / (1 - lam))


def scale_sign(lam):
    return math.log(lam / (1 - lam)) / (1 - 2 * lam)


def scale_no_log(lam):
    return (lam / (1 - lam)) / (2 * lam - 1)


def scale_abs(lam):
    return math.log(lam / (1 - lam)) / abs(2 * lam - 1)


def scale_by_lam(lam):
    return math.log(lam / (1 - lam)) / lam


def test_a_numerical_search_passes_too():
    assert ch05.check_best_scale(best_scale_numeric)


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (scale_margin, "best MARGIN"),
        (scale_sign, "sign error"),
        (scale_no_log, "log is missing"),
        (scale_abs, "absolute value"),
        (scale_by_lam, "not lam"),
        (lambda lam: -1.0, "you returned"),
    ],
)
def test_best_scale_checker_rejects_typical_mistakes(answer, hint):
    assert_rejected(ch05.check_best_scale, answer, hint)


# --- exercise 3 -------------------------------------------------------------------------------------


def mixup_losses(features, head, x, y, lam, perm):
    target = lam * y + (1 - lam) * y[perm]
    with torch.no_grad():
        pred_in = head(features(lam * x + (1 - lam) * x[perm]))[:, 0]
        z = features(x)
        pred_mm = head(lam * z + (1 - lam) * z[perm])[:, 0]
    return (float(0.5 * ((target - pred_in) ** 2).mean()), float(0.5 * ((target - pred_mm) ** 2).mean()))


def mixup_losses_tensors(features, head, x, y, lam, perm):
    """Same, returning 0-d tensors that still carry gradients."""
    target = lam * y + (1 - lam) * y[perm]
    pred_in = head(features(lam * x + (1 - lam) * x[perm])).squeeze(1)
    z = features(x)
    pred_mm = head(lam * z + (1 - lam) * z[perm]).squeeze(1)
    return 0.5 * ((target - pred_in) ** 2).mean(), 0.5 * ((target - pred_mm) ** 2).mean()


def losses_mixed_outputs(features, head, x, y, lam, perm):
    loss_in, _ = mixup_losses(features, head, x, y, lam, perm)
    with torch.no_grad():
        out = head(features(x))[:, 0]
        pred = lam * out + (1 - lam) * out[perm]
    return loss_in, float(0.5 * ((lam * y + (1 - lam) * y[perm] - pred) ** 2).mean())


def losses_unmixed_target(features, head, x, y, lam, perm):
    with torch.no_grad():
        pred_in = head(features(lam * x + (1 - lam) * x[perm]))[:, 0]
        z = features(x)
        pred_mm = head(lam * z + (1 - lam) * z[perm])[:, 0]
    return float(0.5 * ((y - pred_in) ** 2).mean()), float(0.5 * ((y - pred_mm) ** 2).mean())


def losses_broadcast(features, head, x, y, lam, perm):
    target = lam * y + (1 - lam) * y[perm]
    with torch.no_grad():
        pred_in = head(features(lam * x + (1 - lam) * x[perm]))
        z = features(x)
        pred_mm = head(lam * z + (1 - lam) * z[perm])
    return float(0.5 * ((target - pred_in) ** 2).mean()), float(0.5 * ((target - pred_mm) ** 2).mean())


def losses_swapped(features, head, x, y, lam, perm):
    return mixup_losses(features, head, x, y, lam, perm)[::-1]


def losses_summed(features, head, x, y, lam, perm):
    a, b = mixup_losses(features, head, x, y, lam, perm)
    return a * len(y), b * len(y)


def losses_no_half(features, head, x, y, lam, perm):
    a, b = mixup_losses(features, head, x, y, lam, perm)
    return 2 * a, 2 * b


def losses_flipped_manifold(features, head, x, y, lam, perm):
    a, _ = mixup_losses(features, head, x, y, lam, perm)
    target = lam * y + (1 - lam) * y[perm]
    with torch.no_grad():
        z = features(x)
        pred = head((1 - lam) * z + lam * z[perm])[:, 0]
    return a, float(0.5 * ((target - pred) ** 2).mean())


def losses_input_twice(features, head, x, y, lam, perm):
    a, _ = mixup_losses(features, head, x, y, lam, perm)
    return a, a


def losses_single_number(features, head, x, y, lam, perm):
    return sum(mixup_losses(features, head, x, y, lam, perm))


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (losses_mixed_outputs, "mixed the OUTPUTS of the head"),
        (losses_unmixed_target, "unmixed target"),
        (losses_broadcast, "broadcasts to (B, B)"),
        (losses_swapped, "swapped"),
        (losses_summed, "summed over the batch"),
        (losses_no_half, "factor 1/2"),
        (losses_flipped_manifold, "weights are flipped"),
        (losses_input_twice, "input-mixup loss twice"),
        (losses_single_number, "return a pair"),
    ],
)
def test_mixup_losses_checker_rejects_typical_mistakes(answer, hint):
    assert_rejected(ch05.check_mixup_losses, answer, hint)


def test_mixed_outputs_mistake_is_named_only_where_it_matters():
    feedback = ch05.check_mixup_losses(losses_mixed_outputs)
    assert "nonlinear" in feedback.message
