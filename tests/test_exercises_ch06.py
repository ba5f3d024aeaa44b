"""Chapter 6 checkers accept the reference solutions and reject typical wrong answers with a hint."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from exercise_helpers import assert_accepted, assert_rejected, specific_hints
from scipy import stats

from mixlib.exercises import ch06

# Wrong answers get the hint that names the mistake (the second stage); see test_exercises_guidance.py.
_specific = pytest.fixture(autouse=True)(specific_hints)

# --- reference solutions, as in the book -----------------------------------------------------------


def cross_terms_loss(out, target, lam, perm):
    e = target - out
    return (lam * (1 - lam) * (e * e[perm]).sum(1)).mean()


def paired_interval(a, b):
    d = torch.as_tensor(a, dtype=torch.float64) - torch.as_tensor(b, dtype=torch.float64)
    n = len(d)
    half = stats.t.ppf(0.975, n - 1) * d.std() / math.sqrt(n)
    return d.mean().item(), (d.mean() - half).item(), (d.mean() + half).item()


def expected_last_layer_loss(residuals, alpha):
    c = alpha / (2 * (2 * alpha + 1))
    return float((1 - 2 * c) / 2 * residuals.pow(2).sum(1).mean() + c * residuals.mean(0).pow(2).sum())


def test_reference_solutions_pass():
    assert_accepted(ch06.check_cross_terms_loss, cross_terms_loss)
    assert_accepted(ch06.check_paired_interval, paired_interval)
    assert_accepted(ch06.check_expected_last_layer_loss, expected_last_layer_loss)


def test_other_correct_forms_pass():
    def via_inverse(out, target, lam, perm):  # pairing i with perm^-1(i) gives the same sum
        e = target - out
        inverse = torch.argsort(perm)
        return lam * (1 - lam) * (e * e[inverse]).sum() / len(e)

    def as_numpy(a, b):
        d = np.asarray(a) - np.asarray(b)
        low, high = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
        return np.float64(d.mean()), low, high

    def as_tensor(residuals, alpha):
        c = alpha / (2 * (2 * alpha + 1))
        return ((1 - 2 * c) / 2 * (residuals**2).sum(1).mean() + c * (residuals.mean(0) ** 2).sum()).reshape(1)

    assert_accepted(ch06.check_cross_terms_loss, via_inverse)
    assert_accepted(ch06.check_paired_interval, as_numpy)
    assert_accepted(ch06.check_expected_last_layer_loss, as_tensor)


# --- wrong answers -----------------------------------------------------------------------------------

CROSS_WRONG = [
    (lambda o, t, lam, p: (lam * (1 - lam) * ((t - o) * (t - o)[p]).sum(1)).sum(), "summed over the batch"),
    (lambda o, t, lam, p: (2 * lam * (1 - lam) * ((t - o) * (t - o)[p]).sum(1)).mean(), "counted the cross term twice"),
    (lambda o, t, lam, p: (((t - o) * (t - o)[p]).sum(1)).mean(), "lacks the factor lam"),
    (lambda o, t, lam, p: (lam * (1 - lam) * (o * o[p]).sum(1)).mean(), "OUTPUTS"),
    (lambda o, t, lam, p: (0.5 * ((lam * (t - o) + (1 - lam) * (t - o)[p]) ** 2).sum(1)).mean(), "whole loss"),
    (lambda o, t, lam, p: (lam * (1 - lam) * ((t - o) * (t - o)).sum(1)).mean(), "itself"),
    (lambda o, t, lam, p: (lam * (1 - lam) * ((t - o.detach()) * (t - o.detach())[p]).sum(1)).mean(), "no gradient"),
    (lambda o, t, lam, p: (lam * (1 - lam) * ((t - o) * (t - o.detach())[p]).sum(1)).mean(), "gradient"),
    (lambda o, t, lam, p: float((lam * (1 - lam) * ((t - o) * (t - o)[p]).sum(1)).mean()), "TENSOR"),
    (lambda o, t, lam, p: (lam**2 * ((t - o) * (t - o)[p]).sum(1)).mean(), "lam\\^2"),
    (lambda o, t, lam, p: None, "Not attempted"),
    (lambda o, t, lam, p: 0 * o.sum(), "you returned -?0"),
]


@pytest.mark.parametrize(("answer", "message"), CROSS_WRONG)
def test_cross_terms_wrong_answers(answer, message):
    assert_rejected(ch06.check_cross_terms_loss, answer, message)


def _unpaired(a, b):
    a, b = np.asarray(a), np.asarray(b)
    n = len(a)
    half = stats.t.ppf(0.975, n - 1) * math.sqrt(a.var(ddof=1) / n + b.var(ddof=1) / n)
    m = a.mean() - b.mean()
    return m, m - half, m + half


def _with(quantile=None, ddof=1, sign=1, divide=True, df=None):
    def answer(a, b):
        d = sign * (np.asarray(a) - np.asarray(b))
        n = len(d)
        q = quantile if quantile is not None else stats.t.ppf(0.975, n - 1 if df is None else df(n))
        half = q * d.std(ddof=ddof) / (math.sqrt(n) if divide else 1)
        return d.mean(), d.mean() - half, d.mean() + half
    return answer


INTERVAL_WRONG = [
    (_unpaired, "paired by seed"),
    (_with(quantile=1.96), "1.96"),
    (_with(ddof=0), "divides by n"),
    (_with(df=lambda n: n), "n degrees of freedom"),
    (_with(sign=-1), "other way round"),
    (_with(divide=False), "sqrt\\(n\\)"),
    (lambda a, b: [_with()(a, b)[i] for i in (0, 2, 1)], "lower end is above"),
    (lambda a, b: (float((a - b).mean()), 0.0, 1.0), "interval is not"),
    (lambda a, b: float((a - b).mean()), "three numbers"),
    (lambda a, b: (float(np.median(np.asarray(a) - np.asarray(b))), 0.0, 1.0), "mean"),
]


@pytest.mark.parametrize(("answer", "message"), INTERVAL_WRONG)
def test_paired_interval_wrong_answers(answer, message):
    assert_rejected(ch06.check_paired_interval, answer, message)


def _expected_with(c_scale=1.0, mean_term=True, ordinary=None, norm_of_mean=True, total=False):
    def answer(residuals, alpha):
        c = c_scale * alpha / (2 * (2 * alpha + 1))
        sq = residuals.pow(2).sum(1).mean()
        pen = residuals.mean(0).pow(2).sum() if norm_of_mean else sq
        weight = (1 - 2 * c) / 2 if ordinary is None else ordinary(c)
        value = weight * sq + (c * pen if mean_term else 0)
        return float(value * (len(residuals) if total else 1))
    return answer


EXPECTED_WRONG = [
    (_expected_with(c_scale=2.0), "twice too large"),
    (_expected_with(mean_term=False), "dropped the cross terms"),
    (_expected_with(ordinary=lambda c: 0.5), "1 - 2c, not 1"),
    (_expected_with(norm_of_mean=False), "plain ERM loss"),
    (_expected_with(total=True), "summed over the batch"),
    (_expected_with(ordinary=lambda c: 1 - c), "not 1 - c"),
    (lambda e, alpha: float(e.pow(2).sum(1).mean() / 2), "plain ERM loss"),
    (lambda e, alpha: None, "Not attempted"),
    (lambda e, alpha: float(e.pow(2).mean() / 2), "you returned"),
]


@pytest.mark.parametrize(("answer", "message"), EXPECTED_WRONG)
def test_expected_loss_wrong_answers(answer, message):
    assert_rejected(ch06.check_expected_last_layer_loss, answer, message)


def test_a_monte_carlo_estimate_is_called_one():
    def monte_carlo(residuals, alpha):
        g = torch.Generator().manual_seed(0)
        lam = torch.distributions.Beta(alpha, alpha).sample((4000,))
        total = 0.0
        for k in range(4000):
            perm = torch.randint(len(residuals), (len(residuals),), generator=g)
            mixed = lam[k] * residuals + (1 - lam[k]) * residuals[perm]
            total += float(0.5 * mixed.pow(2).sum(1).mean())
        return total / 4000

    assert_rejected(ch06.check_expected_last_layer_loss, monte_carlo, "Monte Carlo|close")


def ell_no_self_pairs(residuals, alpha):
    c, n = alpha / (2 * (2 * alpha + 1)), len(residuals)
    s = residuals.sum(0)
    cross = ((s * s).sum() - (residuals * residuals).sum()) / (n * (n - 1))
    return float((1 - 2 * c) / 2 * residuals.pow(2).sum(1).mean() + c * cross)


def ell_c_precedence(residuals, alpha):
    c = alpha / (2 * 2 * alpha + 1)
    return float((1 - 2 * c) / 2 * residuals.pow(2).sum(1).mean() + c * (residuals.mean(0) ** 2).sum())


@pytest.mark.parametrize(
    ("answer", "hint"),
    [(ell_no_self_pairs, "with probability 1/n"), (ell_c_precedence, r"alpha / \(4 alpha \+ 1\)")],
)
def test_exact_mistakes_are_not_called_monte_carlo(answer, hint):
    feedback = assert_rejected(ch06.check_expected_last_layer_loss, answer, hint)
    assert "Monte Carlo" not in feedback.message
