"""Chapter 5 checkers accept the reference solutions and reject typical wrong answers with a hint."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from exercise_helpers import assert_rejected, assert_shortcut, specific_hints

from mixlib.exercises import ch05
from mixlib.manifold import StagedNet
from mixlib.recipe import Draw, make_recipe, recipe_loss

# Wrong answers get the hint that names the mistake (the second stage); see test_exercises_guidance.py.
_specific = pytest.fixture(autouse=True)(specific_hints)

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


def losses_mse_loss_broadcast(features, head, x, y, lam, perm):
    """F.mse_loss on head(...) of shape (B, 1) against a target of shape (B,): it broadcasts (with a warning)."""
    import warnings

    target = lam * y + (1 - lam) * y[perm]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pred_in = head(features(lam * x + (1 - lam) * x[perm]))
        z = features(x)
        pred_mm = head(lam * z + (1 - lam) * z[perm])
        mse = torch.nn.functional.mse_loss
        return float(mse(pred_in, target)), float(mse(pred_mm, target))


def losses_broadcast_manifold_only(features, head, x, y, lam, perm):
    loss_in, _ = mixup_losses(features, head, x, y, lam, perm)
    _, loss_mm = losses_broadcast(features, head, x, y, lam, perm)
    return loss_in, loss_mm


@pytest.mark.parametrize(("answer", "which"), [
    (losses_broadcast, "input-mixup loss"),
    (losses_mse_loss_broadcast, "input-mixup loss"),
    (losses_broadcast_manifold_only, "manifold-mixup loss"),
])
def test_mixup_losses_names_a_shape_mismatch_at_the_first_reply(answer, which):
    """(B, 1) against (B,) is a slip of shapes, not a wrong idea: the first reply names it in full (not the
    nudge about where the mixing happens), every reply says the same, and it is not counted as a wrong answer."""
    from mixlib.exercises import hint_stage, reset_hints

    reset_hints(ch05.check_mixup_losses)
    with hint_stage(None):
        replies = [ch05.check_mixup_losses(answer) for _ in range(2)]
        assert ch05.check_mixup_losses(losses_unmixed_target).stage == 1  # the shape replies counted nothing
    for feedback in replies:
        assert not feedback.passed and not feedback.wrong and feedback.stage == 0
        assert "shape mismatch" in feedback.message and "broadcasts to (B, B)" in feedback.message
        assert which in feedback.message and "[:, 0]" in feedback.message
    assert replies[0].message == replies[1].message
    reset_hints(ch05.check_mixup_losses)


def test_mixed_outputs_mistake_is_named_only_where_it_matters():
    feedback = ch05.check_mixup_losses(losses_mixed_outputs)
    assert "nonlinear" in feedback.message


# --- more wrong answers, each with the hint it must get ----------------------------------------------


def ce_assigned_target(logits, logits2, label, label2, lam):
    target = torch.zeros(len(logits), dtype=torch.float64)
    target[label] = lam
    target[label2] = 1 - lam  # overwrites when label == label2
    return float(-(target * torch.log_softmax(lam * logits + (1 - lam) * logits2, 0)).sum())


def ce_added_target(logits, logits2, label, label2, lam):
    target = torch.zeros(len(logits), dtype=torch.float64)
    target[label] += lam
    target[label2] += 1 - lam
    return float(-(target * torch.log_softmax(lam * logits + (1 - lam) * logits2, 0)).sum())


def ce_mean_over_classes(logits, logits2, label, label2, lam):
    return mixed_logit_ce(logits, logits2, label, label2, lam) / len(logits)


def ce_no_minus(logits, logits2, label, label2, lam):
    return -mixed_logit_ce(logits, logits2, label, label2, lam)


def ce_lam_for_both_labels(logits, logits2, label, label2, lam):
    log_p = torch.log_softmax(lam * logits + (1 - lam) * logits2, dim=0)
    return float(-(lam * log_p[label] + lam * log_p[label2]))


def ce_probabilities_not_logs(logits, logits2, label, label2, lam):
    p = torch.softmax(lam * logits + (1 - lam) * logits2, dim=0)
    return float(-(lam * p[label] + (1 - lam) * p[label2]))


def ce_in_place_mix(logits, logits2, label, label2, lam):
    logits.mul_(lam).add_((1 - lam) * logits2)
    log_p = torch.log_softmax(logits, 0)
    return float(-(lam * log_p[label] + (1 - lam) * log_p[label2]))


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (ce_assigned_target, "when label == label2"),
        (ce_mean_over_classes, "SUMS target \\* log-probability over the classes"),
        (ce_no_minus, "the sign is missing"),
        (ce_lam_for_both_labels, "both labels got weight lam"),
        (ce_probabilities_not_logs, "weighted the probabilities, not the log-probabilities"),
        (ce_in_place_mix, "changed its argument `logits` in place"),
    ],
)
def test_mixed_logit_ce_checker_rejects_more_wrong_answers(answer, hint):
    assert_rejected(ch05.check_mixed_logit_ce, answer, hint)


def test_mixed_logit_ce_has_a_same_class_pair_and_accepts_added_weights():
    assert any(a == b for _, _, a, b, _ in ch05._mixed_ce_inputs())
    assert ch05.check_mixed_logit_ce(ce_added_target)


def scale_log10(lam):
    return math.log10(lam / (1 - lam)) / (2 * lam - 1)


def scale_odds(lam):
    return lam / (1 - lam)


def scale_log_lam(lam):
    return math.log(lam) / (2 * lam - 1)


def scale_one_minus_lam(lam):
    return math.log(lam / (1 - lam)) / (1 - lam)


def scale_inverted_log(lam):
    return math.log((1 - lam) / lam) / (2 * lam - 1)


def scale_coarse_grid(lam):
    s = torch.linspace(0.5, 20, 40, dtype=torch.float64)
    m = (2 * lam - 1) * s
    loss = lam * torch.nn.functional.softplus(-m) + (1 - lam) * torch.nn.functional.softplus(m)
    return float(s[loss.argmin()])


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (scale_log10, "not log10"),
        (scale_odds, "returned the odds"),
        (scale_log_lam, "not of lam alone"),
        (scale_one_minus_lam, "divide the best margin by \\(2 lam - 1\\)"),
        (scale_inverted_log, "wrong sign"),
        (scale_coarse_grid, "matches none of the usual mistakes"),
    ],
)
def test_best_scale_checker_rejects_more_wrong_answers(answer, hint):
    assert_rejected(ch05.check_best_scale, answer, hint)


def losses_abs(features, head, x, y, lam, perm):
    target = lam * y + (1 - lam) * y[perm]
    with torch.no_grad():
        pred_in = head(features(lam * x + (1 - lam) * x[perm]))[:, 0]
        z = features(x)
        pred_mm = head(lam * z + (1 - lam) * z[perm])[:, 0]
    return float(0.5 * (target - pred_in).abs().mean()), float(0.5 * (target - pred_mm).abs().mean())


def losses_no_perm(features, head, x, y, lam, perm):
    target = lam * y + (1 - lam) * y[perm]
    with torch.no_grad():
        pred_in = head(features(lam * x + (1 - lam) * x))[:, 0]
        z = features(x)
        pred_mm = head(lam * z + (1 - lam) * z)[:, 0]
    return float(0.5 * ((target - pred_in) ** 2).mean()), float(0.5 * ((target - pred_mm) ** 2).mean())


def losses_nothing_mixed(features, head, x, y, lam, perm):
    with torch.no_grad():
        pred = head(features(x))[:, 0]
    loss = float(0.5 * ((y - pred) ** 2).mean())
    return loss, loss


def losses_as_tensor_pair(features, head, x, y, lam, perm):
    return torch.tensor(mixup_losses(features, head, x, y, lam, perm))


def losses_trains_the_head(features, head, x, y, lam, perm):
    opt = torch.optim.SGD(head.parameters(), lr=0.1)
    loss_in, loss_mm = mixup_losses_tensors(features, head, x, y, lam, perm)
    (loss_in + loss_mm).backward()
    opt.step()
    return float(loss_in.detach()), float(loss_mm.detach())


def losses_mse_loss(features, head, x, y, lam, perm):
    target = lam * y + (1 - lam) * y[perm]
    with torch.no_grad():
        pred_in = head(features(lam * x + (1 - lam) * x[perm]))[:, 0]
        z = features(x)
        pred_mm = head(lam * z + (1 - lam) * z[perm])[:, 0]
    mse = torch.nn.functional.mse_loss
    return float(mse(pred_in, target)), float(mse(pred_mm, target))


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (losses_abs, "absolute error"),
        (losses_no_perm, "mixing x with x\\[perm\\] .* is missing"),
        (losses_nothing_mixed, "nothing was mixed"),
        (losses_trains_the_head, "changed the parameters of `head`"),
        (losses_mse_loss, "factor 1/2 is missing"),
    ],
)
def test_mixup_losses_checker_rejects_more_wrong_answers(answer, hint):
    assert_rejected(ch05.check_mixup_losses, answer, hint)


def test_mixup_losses_accepts_a_tensor_of_two_losses():
    assert ch05.check_mixup_losses(losses_as_tensor_pair)


# --- library shortcuts for exercise 3 (those of exercises 1 and 2 are in test_exercises_guidance.py) ---


def losses_with_forward_mixed(features, head, x, y, lam, perm):
    """The chapter's own route: a StagedNet mixing at layer 0 (input) or 1 (features)."""
    net = StagedNet([features], head)
    target = lam * y + (1 - lam) * y[perm]
    with torch.no_grad():
        return tuple(float(0.5 * ((target - net.forward_mixed(x, layer, lam, perm)[:, 0]) ** 2).mean())
                     for layer in (0, 1))


def losses_with_recipe_loss(features, head, x, y, lam, perm):
    net = StagedNet([features], head)
    losses = []
    for method, layer in (("input", 0), ("manifold", 1)):
        recipe = make_recipe(net, method=method, loss="mse")
        with torch.no_grad():
            losses.append(float(recipe_loss(net, x, y, recipe, Draw(lam, perm, layer))))
    return tuple(losses)


@pytest.mark.parametrize(("answer", "name"), [
    (losses_with_forward_mixed, "mixlib.manifold.StagedNet.forward_mixed"),
    (losses_with_recipe_loss, "mixlib.recipe.recipe_loss"),
])
def test_mixup_losses_names_a_library_shortcut(answer, name):
    assert_shortcut(ch05.check_mixup_losses, answer, name)


def test_mixup_losses_by_hand_around_a_staged_net_passes():
    """Wrapping the modules is fine; only the library's mixing is the shortcut."""
    def by_hand(features, head, x, y, lam, perm):
        net = StagedNet([features], head)
        target = lam * y + (1 - lam) * y[perm]
        with torch.no_grad():
            pred_in = net(lam * x + (1 - lam) * x[perm])[:, 0]
            h = net.features(x)
            pred_mm = net.forward_from(lam * h + (1 - lam) * h[perm], 1)[:, 0]
        return float(0.5 * ((target - pred_in) ** 2).mean()), float(0.5 * ((target - pred_mm) ** 2).mean())

    assert ch05.check_mixup_losses(by_hand)


def losses_converted_in_place(features, head, x, y, lam, perm):
    """Right values, but the caller's modules are left in float64 (.double() converts a module itself)."""
    features.double()
    head.double()
    return mixup_losses(features, head, x.double(), y.double(), lam, perm)


def losses_x_converted_in_place(features, head, x, y, lam, perm):
    x.data = x.data.double()  # the same values, another dtype, in the caller's tensor
    return mixup_losses(copy.deepcopy(features).double(), copy.deepcopy(head).double(), x, y.double(), lam, perm)


@pytest.mark.parametrize(("answer", "name"), [(losses_converted_in_place, "features"),
                                              (losses_x_converted_in_place, "x")])
def test_mixup_losses_rejects_a_dtype_changed_in_place(answer, name):
    assert_rejected(ch05.check_mixup_losses, answer, f"converted `{name}` to another dtype in place")
