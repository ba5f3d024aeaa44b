"""Chapter 2 checkers accept the reference solutions and reject typical wrong answers with a hint."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from exercise_helpers import assert_rejected, specific_hints
from scipy import stats

from mixlib.exercises import Feedback, ch02

# Wrong answers get the hint that names the mistake (the second stage); see test_exercises_guidance.py.
_specific = pytest.fixture(autouse=True)(specific_hints)

# --- reference solutions (as in the chapter) ---------------------------------------------------


def mixup_batch(x, y, lam, perm):
    lam = torch.as_tensor(lam, dtype=x.dtype)

    def mix(t):
        w = lam.reshape(-1, *[1] * (t.dim() - 1)) if lam.dim() else lam  # one weight per row of t
        return w * t + (1 - w) * t[perm]

    return mix(x), mix(y)


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
    return 0.5, var, 2 * float(stats.beta.cdf(0.1, alpha, alpha))


def chord_gap(model, a, b, n_points):
    t = torch.linspace(0, 1, n_points)[:, None]
    with torch.no_grad():
        p = torch.softmax(model(t * a + (1 - t) * b), dim=1)
        pa, pb = torch.softmax(model(torch.stack([a, b])), dim=1)
    return float((p - (t * pa + (1 - t) * pb)).norm(dim=1).mean())


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


# --- exercise 3: two moments of lambda and the share of near-original mixes -----------------------


def _var(a):
    return 1 / (4 * (2 * a + 1))


def _low(a, q=0.1):
    return float(stats.beta.cdf(q, a, a))


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (lambda a: (0.5, 1 / (4 * (a + 1)), 2 * _low(a)), "not alpha + 1"),
        (lambda a: (0.5, 1 / (2 * a + 1), 2 * _low(a)), "factor a1 a2 / (a1 + a2)^2"),
        (lambda a: (0.5, _var(a) ** 0.5, 2 * _low(a)), "standard deviation"),
        (lambda a: (0.5, 1 / 12, 2 * _low(a)), r"uniform distribution, Beta\(1, 1\)"),
        (lambda a: (0.5, _var(a)), "three numbers"),
        (lambda a: (a / (a + 1), _var(a), 2 * _low(a)), "same for every alpha"),
        # the share: one end only, the middle, the cdf at 0.9 for the upper end, every lam, ...
        (lambda a: (0.5, _var(a), _low(a)), "only the draws near 0"),
        (lambda a: (0.5, _var(a), _low(a, 0.9) - _low(a)), "NOT near an original"),
        (lambda a: (0.5, _var(a), _low(a) + _low(a, 0.9)), "BELOW 0.9"),
        (lambda a: (0.5, _var(a), _low(a) + (1 - _low(a))), "every lam was counted"),
        (lambda a: (0.5, _var(a), 2 * _low(a, 0.05)), "window of 0.05"),
        (lambda a: (0.5, _var(a), 0.2), "uniform distribution, alpha = 1"),
        (lambda a: (0.5, _var(a), 200 * _low(a)), "not as a percentage"),
        (lambda a: (0.5, _var(a), 2 * float(stats.beta.pdf(0.1, a, a))), "DENSITY"),
        (lambda a: (0.5, _var(a), 1 / a), "you returned"),
    ],
)
def test_lambda_moments_checker_rejects_typical_mistakes(answer, hint):
    assert_rejected(ch02.check_lambda_moments, answer, hint)


def test_lambda_moments_no_longer_asks_for_the_mixing_constant():
    # E[lam (1 - lam)] is chapter 4's exercise; here it is simply a wrong third number
    feedback = ch02.check_lambda_moments(lambda a: (0.5, _var(a), 0.25 - _var(a)))
    assert not feedback and "share of lam within 0.1 of 0 or 1" in feedback.message


def test_lambda_moments_first_hint_does_not_give_the_answer_away():
    from mixlib.exercises import hint_stage

    with hint_stage(1):
        message = ch02.check_lambda_moments(lambda a: (0.5, _var(a), _low(a))).message
    assert not any(word in message for word in ("cdf", "0.9", "twice", "2 P", "scipy", "only the draws"))


# --- exercise 4: chord gap ----------------------------------------------------------------------


def cg_logits(model, a, b, n_points):
    t = torch.linspace(0, 1, n_points)[:, None]
    with torch.no_grad():
        z = model(t * a + (1 - t) * b)
        za, zb = model(torch.stack([a, b]))
    return float((z - (t * za + (1 - t) * zb)).norm(dim=1).mean())


def cg_swapped(model, a, b, n_points):
    t = torch.linspace(0, 1, n_points)[:, None]
    with torch.no_grad():
        p = torch.softmax(model(t * a + (1 - t) * b), dim=1)
        pa, pb = torch.softmax(model(torch.stack([a, b])), dim=1)
    return float((p - ((1 - t) * pa + t * pb)).norm(dim=1).mean())


def cg_max(model, a, b, n_points):
    t = torch.linspace(0, 1, n_points)[:, None]
    with torch.no_grad():
        p = torch.softmax(model(t * a + (1 - t) * b), dim=1)
        pa, pb = torch.softmax(model(torch.stack([a, b])), dim=1)
    return float((p - (t * pa + (1 - t) * pb)).norm(dim=1).max())


def cg_interior(model, a, b, n_points):
    t = torch.linspace(0, 1, n_points + 2)[1:-1, None]
    with torch.no_grad():
        p = torch.softmax(model(t * a + (1 - t) * b), dim=1)
        pa, pb = torch.softmax(model(torch.stack([a, b])), dim=1)
    return float((p - (t * pa + (1 - t) * pb)).norm(dim=1).mean())


def cg_weight_on_b(model, a, b, n_points):  # t on the end b in both places: the same number, by symmetry
    t = torch.linspace(0, 1, n_points)[:, None]
    with torch.no_grad():
        p = torch.softmax(model((1 - t) * a + t * b), dim=1)
        pa, pb = torch.softmax(model(torch.stack([a, b])), dim=1)
    return float((p - ((1 - t) * pa + t * pb)).norm(dim=1).mean())


def test_chord_gap_with_the_weight_on_the_other_end_passes_and_equals_the_library():
    from mixlib.flatness import chord_nonlinearity

    assert ch02.check_chord_gap(cg_weight_on_b)
    model = ch02._chord_model()
    a, b = torch.tensor([0.5, -1.0]), torch.tensor([-2.0, 1.0])
    assert math.isclose(chord_gap(model, a, b, 9), float(chord_nonlinearity(model, a[None], b[None], 9)),
                        rel_tol=1e-5)


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


# --- more wrong answers, each with the hint it must get ----------------------------------------------


def mb_half_and_half(x, y, lam, perm):
    return (x + x[perm]) / 2, (y + y[perm]) / 2


def mb_no_one_minus(x, y, lam, perm):
    return lam * x + x[perm], lam * y + y[perm]


def mb_own_perm(x, y, lam, perm):
    mine = torch.randperm(len(x))
    return lam * x + (1 - lam) * x[mine], lam * y + (1 - lam) * y[mine]


def mb_order_swapped(x, y, lam, perm):
    return lam * y + (1 - lam) * y[perm], lam * x + (1 - lam) * x[perm]


def mb_lam_only(x, y, lam, perm):
    return lam * x, lam * y


def mb_numpy(x, y, lam, perm):
    xn, yn, p, w = x.numpy(), y.numpy(), perm.numpy(), np.asarray(lam, dtype=np.float32)

    def mix(t):
        v = w.reshape(-1, *[1] * (t.ndim - 1)) if w.ndim else w
        return v * t + (1 - v) * t[p]

    return mix(xn), mix(yn)


def mb_prints(x, y, lam, perm):
    print("mixing", x.shape, "with lam", lam)
    return mixup_batch(x, y, lam, perm)


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (mb_half_and_half, "half and half"),
        (mb_no_one_minus, "partner's weight is missing"),
        (mb_own_perm, "the perm you are given"),
        (mb_order_swapped, "wrong order"),
        (mb_lam_only, "the partner's share is missing"),
        (lambda x, y, lam, perm: None, "Not attempted yet"),
    ],
)
def test_mixup_batch_checker_rejects_more_wrong_answers(answer, hint):
    assert_rejected(ch02.check_mixup_batch, answer, hint)


# --- exercise 1 with one weight per example and a batch of images ---------------------------------------


def _rows(lam, t):
    w = torch.as_tensor(lam, dtype=t.dtype)
    return w.reshape(-1, *[1] * (t.dim() - 1)) if w.dim() else w


def mb_float_formula(x, y, lam, perm):  # the formula for one lam per batch, used as it is
    return lam * x + (1 - lam) * x[perm], lam * y + (1 - lam) * y[perm]


def mb_column_weights(x, y, lam, perm):  # right for vectors, but not for a batch of images
    w = torch.as_tensor(lam, dtype=x.dtype)
    w = w[:, None] if w.dim() else w
    return w * x + (1 - w) * x[perm], w * y + (1 - w) * y[perm]


def mb_image_weights_everywhere(x, y, lam, perm):  # written for images: a bigger tensor from vectors
    w = torch.as_tensor(lam, dtype=x.dtype)
    wx, wy = (w[:, None, None], w[:, None]) if w.dim() else (w, w)
    return wx * x + (1 - wx) * x[perm], wy * y + (1 - wy) * y[perm]


def mb_partner_keeps_its_weight(x, y, lam, perm):
    def mix(t):
        w = _rows(lam, t)
        return w * t + (1 - (w[perm] if w.dim() else w)) * t[perm]

    return mix(x), mix(y)


def mb_mean_weight(x, y, lam, perm):
    m = float(torch.as_tensor(lam).mean())
    return m * x + (1 - m) * x[perm], m * y + (1 - m) * y[perm]


def mb_first_weight(x, y, lam, perm):
    first = float(torch.as_tensor(lam).flatten()[0])
    return first * x + (1 - first) * x[perm], first * y + (1 - first) * y[perm]


def mb_targets_with_the_mean(x, y, lam, perm):
    w, m = _rows(lam, x), float(torch.as_tensor(lam).mean())
    return w * x + (1 - w) * x[perm], m * y + (1 - m) * y[perm]


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (mb_float_formula, "lines shapes up from the RIGHT"),
        (mb_column_weights, "an input may have more than two"),
        (mb_image_weights_everywhere, "more dimensions than the tensor they multiply"),
        (mb_partner_keeps_its_weight, "the weight 1 - lam[perm[i]]"),
        (mb_mean_weight, "one number, its mean"),
        (mb_first_weight, "with lam[0]"),
        (mb_targets_with_the_mean, "all the rows of y with one number, its mean"),
    ],
)
def test_mixup_batch_checker_rejects_per_example_mistakes(answer, hint):
    feedback = assert_rejected(ch02.check_mixup_batch, answer, hint)
    assert "one weight per example" in feedback.message


def test_mixup_batch_names_the_case_and_passes_images():
    x = torch.randn(4, 2, 3)
    y = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 0]), 3).float()
    lam, perm = torch.tensor([0.1, 0.4, 0.6, 0.9]), torch.tensor([1, 2, 3, 0])
    x_mix, y_mix = mixup_batch(x, y, lam, perm)
    assert torch.allclose(x_mix[2], 0.6 * x[2] + 0.4 * x[3]) and torch.allclose(y_mix.sum(1), torch.ones(4))
    assert "with lam = 0.3 and x of shape (6, 3)" in ch02.check_mixup_batch(mb_swapped).message


def test_mixup_batch_accepts_numpy_arrays_and_shows_prints():
    assert ch02.check_mixup_batch(mb_numpy)
    feedback = ch02.check_mixup_batch(mb_prints)
    assert feedback and "mixing torch.Size([6, 3]) with lam 0.3" in feedback.output


def ece_summed_gaps(probs, labels, n_bins):
    conf, pred = probs.max(dim=1)
    correct = (pred == labels).float()
    index = _bins(conf, n_bins)
    return float(sum((correct[index == b].mean() - conf[index == b].mean()).abs()
                     for b in range(n_bins) if (index == b).any()))


def ece_bin_totals(probs, labels, n_bins):
    conf, pred = probs.max(dim=1)
    correct = (pred == labels).float()
    index = _bins(conf, n_bins)
    return float(sum((index == b).float().mean() * (correct[index == b].sum() - conf[index == b].sum()).abs()
                     for b in range(n_bins) if (index == b).any()))


def ece_max_gap(probs, labels, n_bins):
    conf, pred = probs.max(dim=1)
    correct = (pred == labels).float()
    index = _bins(conf, n_bins)
    return float(max((correct[index == b].mean() - conf[index == b].mean()).abs()
                     for b in range(n_bins) if (index == b).any()))


def ece_empty_bins_nan(probs, labels, n_bins):
    conf, pred = probs.max(dim=1)
    correct = (pred == labels).float()
    index = _bins(conf, n_bins)
    return float(sum((index == b).float().mean() * (correct[index == b].mean() - conf[index == b].mean()).abs()
                     for b in range(n_bins)))


def ece_many_edges(probs, labels, n_bins):
    return expected_calibration_error(probs, labels, n_bins + 1)


def ece_squared(probs, labels, n_bins):
    conf, pred = probs.max(dim=1)
    correct = (pred == labels).float()
    index = _bins(conf, n_bins)
    return float(sum((index == b).float().mean() * (correct[index == b].mean() - conf[index == b].mean()) ** 2
                     for b in range(n_bins) if (index == b).any()))


def ece_sorts_probs_in_place(probs, labels, n_bins):
    probs.clamp_(min=1e-3)
    return expected_calibration_error(probs, labels, n_bins)


def ece_reveal_probe(probs, labels, n_bins):
    return 0.123456


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (ece_summed_gaps, "summed the bins' gaps .* without weights"),
        (ece_bin_totals, "their sums \\(totals\\)"),
        (ece_max_gap, "maximum calibration error"),
        (ece_empty_bins_nan, "skip the bins that hold no example"),
        (ece_many_edges, "n_bins \\+ 1 bins"),
        (ece_squared, "not its square"),
        (ece_sorts_probs_in_place, "changed its argument `probs` in place"),
        (ece_reveal_probe, "matches none of the usual mistakes"),
    ],
)
def test_ece_checker_rejects_more_wrong_answers(answer, hint):
    assert_rejected(ch02.check_ece, answer, hint)


def test_ece_hint_never_shows_the_expected_value():
    from mixlib.metrics import reliability

    _, probs, labels, n_bins = ch02._ece_cases()[0]
    right = reliability(probs, labels, n_bins).ece
    for answer in (ece_summed_gaps, ece_reveal_probe, ece_bin_totals):
        message = ch02.check_ece(answer).message
        assert f"{right:.6g}" not in message and f"{right:.4g}" not in message, message


def lm_monte_carlo(alpha):
    g = torch.Generator().manual_seed(0)
    lam = torch._standard_gamma(torch.full((20_000,), float(alpha)), generator=g)
    lam = lam / (lam + torch._standard_gamma(torch.full((20_000,), float(alpha)), generator=g))
    return 0.5, 1 / (4 * (2 * alpha + 1)), float(((lam < 0.1) | (lam > 0.9)).double().mean())


def lm_negative_share(alpha):
    return 0.5, _var(alpha), -2 * _low(alpha)


def lm_dict(alpha):
    return {"mean": 0.5, "var": _var(alpha), "near": 2 * _low(alpha)}


def lm_mean_alpha_over_2(alpha):
    return alpha / 2, _var(alpha), 2 * _low(alpha)


def lm_numpy(alpha):
    return np.array([0.5, _var(alpha), 2 * _low(alpha)])


def lm_variance_wrong_denominator(alpha):
    return 0.5, 1 / (2 * alpha + 1) ** 2, 2 * _low(alpha)


def lm_trapezoid(alpha):  # integrating the density on a coarse grid: close, but not the exact value
    t = torch.linspace(1e-3, 0.1, 50, dtype=torch.float64)
    density = t ** (alpha - 1) * (1 - t) ** (alpha - 1) / math.exp(math.lgamma(alpha) * 2 - math.lgamma(2 * alpha))
    return 0.5, _var(alpha), 2 * float(torch.trapezoid(density, t))


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (lm_monte_carlo, "Monte Carlo estimate"),
        (lm_negative_share, "negative number"),
        (lm_dict, "three numbers, in this order"),
        (lm_mean_alpha_over_2, "not the mean of Beta"),
        (lm_variance_wrong_denominator, "not the variance of Beta"),
        (lm_trapezoid, "not the probability that lam lies within 0.1"),
    ],
)
def test_lambda_moments_checker_rejects_more_wrong_answers(answer, hint):
    assert_rejected(ch02.check_lambda_moments, answer, hint)


def test_lambda_moments_accepts_a_numpy_array_and_scipy_special():
    from scipy import special

    assert ch02.check_lambda_moments(lm_numpy)
    assert ch02.check_lambda_moments(lambda a: (0.5, _var(a), 2 * special.betainc(a, a, 0.1)))


def _chord(model, a, b, n_points, dim=1):
    t = torch.linspace(0, 1, n_points)[:, None]
    with torch.no_grad():
        p = torch.softmax(model(t * a + (1 - t) * b), dim=dim)
        pa, pb = torch.softmax(model(a[None]), dim=dim)[0], torch.softmax(model(b[None]), dim=dim)[0]
    return t, p, pa, pb


def cg_softmax_over_points(model, a, b, n_points):
    t, p, pa, pb = _chord(model, a, b, n_points, dim=0)
    return float((p - (t * pa + (1 - t) * pb)).norm(dim=1).mean())


def cg_forgets_one_minus(model, a, b, n_points):
    t, p, pa, pb = _chord(model, a, b, n_points)
    return float((p - (t * pa + pb)).norm(dim=1).mean())


def cg_log_probs(model, a, b, n_points):
    t = torch.linspace(0, 1, n_points)[:, None]
    with torch.no_grad():
        p = torch.log_softmax(model(t * a + (1 - t) * b), dim=1)
        pa, pb = torch.log_softmax(model(torch.stack([a, b])), dim=1)
    return float((p - (t * pa + (1 - t) * pb)).norm(dim=1).mean())


def cg_mean_abs(model, a, b, n_points):
    t, p, pa, pb = _chord(model, a, b, n_points)
    return float((p - (t * pa + (1 - t) * pb)).abs().mean())


def cg_norm_over_points(model, a, b, n_points):
    t, p, pa, pb = _chord(model, a, b, n_points)
    return float((p - (t * pa + (1 - t) * pb)).norm(dim=0).mean())


def cg_rms(model, a, b, n_points):
    t, p, pa, pb = _chord(model, a, b, n_points)
    return float((p - (t * pa + (1 - t) * pb)).pow(2).sum(dim=1).mean().sqrt())


def cg_one_norm(model, a, b, n_points):
    t, p, pa, pb = _chord(model, a, b, n_points)
    return float((p - (t * pa + (1 - t) * pb)).norm())


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (cg_softmax_over_points, "over the classes \\(dim=1"),
        (cg_forgets_one_minus, "left out the factor \\(1 - t\\) on f\\(b\\)"),
        (cg_log_probs, "not the log-probabilities"),
        (cg_mean_abs, "averaged the absolute entries"),
        (cg_norm_over_points, "norm over the points"),
        (cg_rms, "root of the mean squared norm"),
        (cg_one_norm, "one norm over the whole"),
    ],
)
def test_chord_gap_checker_rejects_more_wrong_answers(answer, hint):
    assert_rejected(ch02.check_chord_gap, answer, hint)


# --- values in the wrong order; numbers returned as tensors ------------------------------------------


@pytest.mark.parametrize("order", [(0, 2, 1), (1, 0, 2), (2, 1, 0), (1, 2, 0), (2, 0, 1)])
def test_lambda_moments_names_the_wrong_order(order):
    def permuted(alpha):
        values = lambda_moments(alpha)
        return tuple(values[i] for i in order)

    assert_rejected(ch02.check_lambda_moments, permuted, r"right three values in the wrong order; return them "
                    r"as \(mean, variance, share of lam within 0.1 of 0 or 1\)")


def test_ece_and_chord_gap_accept_tensors_and_say_a_float_was_asked():
    def ece_tensor(probs, labels, n_bins):
        return torch.tensor(expected_calibration_error(probs, labels, n_bins))

    def chord_gap_grad(model, a, b, n_points):
        t = torch.linspace(0, 1, n_points)[:, None]
        p = torch.softmax(model(t * a + (1 - t) * b), 1)
        line = t * torch.softmax(model(a[None]), 1) + (1 - t) * torch.softmax(model(b[None]), 1)
        return (p - line).norm(dim=1).mean()

    feedback = ch02.check_ece(ece_tensor)
    assert feedback.passed and "asks for a float" in feedback.message
    feedback = ch02.check_chord_gap(chord_gap_grad)
    assert feedback.passed and "asks for a float" in feedback.message and "gradient" in feedback.message
    assert "asks for a float" not in ch02.check_chord_gap(chord_gap).message


# --- every exercise names the library function that computes its answer -----------------------------


def test_each_exercise_names_its_library_shortcut():
    from exercise_helpers import assert_shortcut

    from mixlib import flatness, gradients, metrics, mixing

    assert_shortcut(ch02.check_mixup_batch, lambda x, y, lam, perm: mixing.mixup(x, y, lam, perm),
                    "mixlib.mixing.mixup")
    assert_shortcut(ch02.check_ece, lambda probs, labels, n_bins: metrics.ece(probs, labels, n_bins),
                    "mixlib.metrics.ece")
    assert_shortcut(ch02.check_ece, lambda probs, labels, n_bins: metrics.reliability(probs, labels, n_bins).ece,
                    "mixlib.metrics.reliability")
    assert_shortcut(ch02.check_lambda_moments, lambda a: (0.5, 0.25 - gradients.mixing_constant(a), 2 * _low(a)),
                    "mixlib.gradients.mixing_constant")
    assert_shortcut(ch02.check_lambda_moments, lambda a: ch02._moments(a), "mixlib.exercises.ch02._moments")
    assert_shortcut(ch02.check_chord_gap,
                    lambda model, a, b, n: float(flatness.chord_nonlinearity(model, a[None], b[None], n)),
                    "mixlib.flatness.chord_nonlinearity")
