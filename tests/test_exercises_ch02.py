"""Chapter 2 checkers accept the reference solutions and reject typical wrong answers with a hint."""

from __future__ import annotations

import math

import pytest
import torch
from exercise_helpers import assert_rejected

from mixlib.exercises import Feedback, ch02

# --- reference solutions (as in the chapter) ---------------------------------------------------


def mixup_batch(x, y, lam, perm):
    return lam * x + (1 - lam) * x[perm], lam * y + (1 - lam) * y[perm]


def expected_calibration_error(probs, labels, n_bins):
    conf, pred = probs.max(dim=1)
    correct = (pred == labels).float()
    edges = torch.linspace(0, 1, n_bins + 1)
    # bin b holds (edges[b], edges[b + 1]]; a confidence of 0 goes to the first bin
    index = (torch.bucketize(conf, edges) - 1).clamp(min=0)
    ece = 0.0
    for b in range(n_bins):
        in_bin = index == b
        if in_bin.any():
            gap = correct[in_bin].mean() - conf[in_bin].mean()
            ece += in_bin.float().mean() * gap.abs()
    return float(ece)


def lambda_moments(alpha):
    var = 1 / (4 * (2 * alpha + 1))
    return 0.5, var, 0.25 - var


def chord_gap(model, a, b, n_points):
    t = torch.linspace(0, 1, n_points)[:, None]
    with torch.no_grad():
        p = torch.softmax(model((1 - t) * a + t * b), dim=1)
        pa, pb = torch.softmax(model(torch.stack([a, b])), dim=1)
    return float((p - ((1 - t) * pa + t * pb)).norm(dim=1).mean())


CHECKS = [
    (ch02.check_mixup_batch, mixup_batch),
    (ch02.check_ece, expected_calibration_error),
    (ch02.check_lambda_moments, lambda_moments),
    (ch02.check_chord_gap, chord_gap),
]


@pytest.mark.parametrize(("check", "answer"), CHECKS, ids=lambda f: getattr(f, "__name__", ""))
def test_reference_solutions_pass(check, answer):
    feedback = check(answer)
    assert isinstance(feedback, Feedback) and feedback.passed, feedback.message
    assert check(answer, strict=True).passed
    assert str(feedback).startswith("✅")


def test_ece_reference_agrees_with_the_library():
    from mixlib.metrics import reliability

    g = torch.Generator().manual_seed(3)
    probs = torch.softmax(3 * torch.randn(200, 4, generator=g), dim=1)
    labels = torch.randint(4, (200,), generator=g)
    assert math.isclose(expected_calibration_error(probs, labels, 15), reliability(probs, labels, 15).ece,
                        rel_tol=1e-5)


# --- exercise 1: the mixup batch -------------------------------------------------------------


def mb_y_unmixed(x, y, lam, perm):
    return lam * x + (1 - lam) * x[perm], y


def mb_x_unmixed(x, y, lam, perm):
    return x, lam * y + (1 - lam) * y[perm]


def mb_swapped(x, y, lam, perm):
    return (1 - lam) * x + lam * x[perm], (1 - lam) * y + lam * y[perm]


def mb_swapped_y_only(x, y, lam, perm):
    return lam * x + (1 - lam) * x[perm], (1 - lam) * y + lam * y[perm]


def mb_inverse_for_y(x, y, lam, perm):
    y_partner = torch.empty_like(y)
    y_partner[perm] = y  # scatters: row perm[i] gets y[i], the inverse pairing
    return lam * x + (1 - lam) * x[perm], lam * y + (1 - lam) * y_partner


def mb_flip(x, y, lam, perm):
    return lam * x + (1 - lam) * x.flip(0), lam * y + (1 - lam) * y.flip(0)


def mb_roll(x, y, lam, perm):
    return lam * x + (1 - lam) * x.roll(1, 0), lam * y + (1 - lam) * y.roll(1, 0)


def mb_in_place(x, y, lam, perm):
    partner_x, partner_y = x[perm], y[perm]
    x *= lam
    x += (1 - lam) * partner_x
    return x, lam * y + (1 - lam) * partner_y


def mb_one_output(x, y, lam, perm):
    return lam * x + (1 - lam) * x[perm]


def mb_hard_labels(x, y, lam, perm):
    return lam * x + (1 - lam) * x[perm], y.argmax(1)


def mb_stub(x, y, lam, perm):
    raise NotImplementedError


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (mb_y_unmixed, "you returned y unchanged"),
        (mb_x_unmixed, "you returned x unchanged"),
        (mb_swapped, "the other way round"),
        (mb_swapped_y_only, "for y only"),
        (mb_inverse_for_y, "inverse pairing"),
        (mb_flip, "timm"),
        (mb_roll, "torchvision"),
        (mb_in_place, "in place"),
        (mb_one_output, "return a pair"),
        (mb_hard_labels, "should have shape \\(6, 4\\)"),
        (mb_stub, "Not attempted yet"),
        ("mixup_batch", "pass your function"),
    ],
)
def test_mixup_batch_checker_rejects_typical_mistakes(answer, hint):
    assert_rejected(ch02.check_mixup_batch, answer, hint)


# --- exercise 2: expected calibration error ---------------------------------------------------


def _bins(conf, n_bins):
    return (torch.bucketize(conf, torch.linspace(0, 1, n_bins + 1)) - 1).clamp(min=0)


def ece_unweighted(probs, labels, n_bins):
    conf, pred = probs.max(dim=1)
    correct = (pred == labels).float()
    index = _bins(conf, n_bins)
    gaps = [(correct[index == b].mean() - conf[index == b].mean()).abs()
            for b in range(n_bins) if (index == b).any()]
    return float(torch.stack(gaps).mean())


def ece_true_class(probs, labels, n_bins):
    conf = probs[torch.arange(len(labels)), labels]
    pred = probs.argmax(dim=1)
    correct = (pred == labels).float()
    index = _bins(conf, n_bins)
    return float(sum((index == b).float().mean() * (correct[index == b].mean() - conf[index == b].mean()).abs()
                     for b in range(n_bins) if (index == b).any()))


def ece_left_closed(probs, labels, n_bins):
    conf, pred = probs.max(dim=1)
    correct = (pred == labels).float()
    index = (conf * n_bins).floor().long().clamp(max=n_bins - 1)  # [b / n, (b + 1) / n)
    return float(sum((index == b).float().mean() * (correct[index == b].mean() - conf[index == b].mean()).abs()
                     for b in range(n_bins) if (index == b).any()))


def ece_few_edges(probs, labels, n_bins):
    return expected_calibration_error(probs, labels, n_bins - 1)


def ece_no_abs(probs, labels, n_bins):
    conf, pred = probs.max(dim=1)
    correct = (pred == labels).float()
    index = _bins(conf, n_bins)
    return float(sum((index == b).float().mean() * (correct[index == b].mean() - conf[index == b].mean())
                     for b in range(n_bins) if (index == b).any()))


def ece_histc_range(probs, labels, n_bins):
    conf, pred = probs.max(dim=1)
    correct = (pred == labels).float()
    edges = torch.linspace(float(conf.min()), float(conf.max()), n_bins + 1)
    index = (torch.bucketize(conf, edges) - 1).clamp(0, n_bins - 1)
    return float(sum((index == b).float().mean() * (correct[index == b].mean() - conf[index == b].mean()).abs()
                     for b in range(n_bins) if (index == b).any()))


def ece_per_bin_tensor(probs, labels, n_bins):
    return torch.zeros(n_bins)


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (ece_unweighted, "averaged the bins' gaps equally"),
        (ece_true_class, "PREDICTED class"),
        (ece_left_closed, "closed on the RIGHT"),
        (ece_few_edges, "n_bins - 1 bins"),
        (ece_no_abs, "absolute value"),
        (ece_histc_range, "torch.histc"),
        (ece_per_bin_tensor, "single number"),
    ],
)
def test_ece_checker_rejects_typical_mistakes(answer, hint):
    assert_rejected(ch02.check_ece, answer, hint)


def test_ece_left_closed_passes_the_generic_case_and_fails_on_the_edges():
    feedback = ch02.check_ece(ece_left_closed)
    assert "bin edges" in feedback.message


# --- exercise 3: moments of lambda -------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (lambda a: (0.5, 1 / (4 * (a + 1)), 0.25 - 1 / (4 * (a + 1))), "not alpha + 1"),
        (lambda a: (0.5, 1 / (2 * a + 1), 0.25 - 1 / (2 * a + 1)), "factor a b / (a + b)^2"),
        (lambda a: (0.5, 1 / (4 * (2 * a + 1)), 0.25), "not independent"),
        (lambda a: (0.5, 1 / (4 * (2 * a + 1)), 0.25 + 1 / (4 * (2 * a + 1))), "a sign"),
        (lambda a: (0.5, (1 / (4 * (2 * a + 1))) ** 0.5, 0.25 - 1 / (4 * (2 * a + 1))), "standard deviation"),
        (lambda a: (0.5, 1 / 12, 0.25 - 1 / 12), "uniform distribution"),
        (lambda a: (0.5, 1 / (4 * (2 * a + 1))), "three numbers"),
        (lambda a: (a / (a + 1), 1 / (4 * (2 * a + 1)), 0.25 - 1 / (4 * (2 * a + 1))), "1/2 for every alpha"),
        (lambda a: (0.5, 1 / (4 * (2 * a + 1)), 1 / a), "you returned"),
    ],
)
def test_lambda_moments_checker_rejects_typical_mistakes(answer, hint):
    assert_rejected(ch02.check_lambda_moments, answer, hint)


def test_lambda_moments_swapped_outputs_are_caught_after_alpha_one_half():
    # at alpha = 1/2 the variance and E[lam (1 - lam)] coincide (both 1/8); alpha = 2 tells them apart
    def swapped(a):
        var = 1 / (4 * (2 * a + 1))
        return 0.5, 0.25 - var, var

    feedback = ch02.check_lambda_moments(swapped)
    assert not feedback and "alpha = 2.0" in feedback.message


# --- exercise 4: chord gap ----------------------------------------------------------------------


def cg_logits(model, a, b, n_points):
    t = torch.linspace(0, 1, n_points)[:, None]
    with torch.no_grad():
        z = model((1 - t) * a + t * b)
        za, zb = model(torch.stack([a, b]))
    return float((z - ((1 - t) * za + t * zb)).norm(dim=1).mean())


def cg_swapped(model, a, b, n_points):
    t = torch.linspace(0, 1, n_points)[:, None]
    with torch.no_grad():
        p = torch.softmax(model((1 - t) * a + t * b), dim=1)
        pa, pb = torch.softmax(model(torch.stack([a, b])), dim=1)
    return float((p - (t * pa + (1 - t) * pb)).norm(dim=1).mean())


def cg_max(model, a, b, n_points):
    t = torch.linspace(0, 1, n_points)[:, None]
    with torch.no_grad():
        p = torch.softmax(model((1 - t) * a + t * b), dim=1)
        pa, pb = torch.softmax(model(torch.stack([a, b])), dim=1)
    return float((p - ((1 - t) * pa + t * pb)).norm(dim=1).max())


def cg_interior(model, a, b, n_points):
    t = torch.linspace(0, 1, n_points + 2)[1:-1, None]
    with torch.no_grad():
        p = torch.softmax(model((1 - t) * a + t * b), dim=1)
        pa, pb = torch.softmax(model(torch.stack([a, b])), dim=1)
    return float((p - ((1 - t) * pa + t * pb)).norm(dim=1).mean())


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (cg_logits, "not the logits"),
        (cg_swapped, "ends the other way round"),
        (cg_max, "largest value"),
        (cg_interior, "include both endpoints"),
    ],
)
def test_chord_gap_checker_rejects_typical_mistakes(answer, hint):
    assert_rejected(ch02.check_chord_gap, answer, hint)
