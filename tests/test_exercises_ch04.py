"""Chapter 4 checkers accept the reference solutions and reject typical wrong answers with a hint."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from exercise_helpers import assert_rejected, assert_shortcut, specific_hints
from torch import nn

from mixlib.exercises import ch04
from mixlib.gradients import FOUR_TERM_KEYS, expected_mmix_loss, gradient_terms, mixing_constant

# Wrong answers get the hint that names the mistake (the second stage); see test_exercises_guidance.py.
_specific = pytest.fixture(autouse=True)(specific_hints)

# --- reference solutions, as in the book -----------------------------------------------------------


def terms_from_gradients(e, e2, g, g2, lam):
    w = lam * (1 - lam)
    return {
        "ordinary_x": -(lam**2 * e[:, None] * g).sum(0),
        "ordinary_x2": -((1 - lam) ** 2 * e2[:, None] * g2).sum(0),
        "cross_x": -(w * e2[:, None] * g).sum(0),
        "cross_x2": -(w * e[:, None] * g2).sum(0),
    }


def c_of(alpha):
    return alpha / (2 * (2 * alpha + 1))


def expected_loss(residuals, alpha):
    c = c_of(alpha)
    return float((1 - 2 * c) * residuals.pow(2).mean() / 2 + c * residuals.mean() ** 2)


def test_reference_solutions_pass():
    assert ch04.check_terms_from_gradients(terms_from_gradients)
    assert ch04.check_mixing_constant(c_of)
    assert ch04.check_expected_loss(expected_loss)
    assert ch04.check_terms_from_gradients(terms_from_gradients, strict=True).passed
    assert ch04.check_mixing_constant(c_of, strict=True).passed
    assert ch04.check_expected_loss(expected_loss, strict=True).passed


def test_library_functions_are_shortcuts():
    assert_shortcut(ch04.check_mixing_constant, mixing_constant, "mixlib.gradients.mixing_constant")
    assert_shortcut(ch04.check_expected_loss, expected_mmix_loss, "mixlib.gradients.expected_mmix_loss")


def test_reference_terms_agree_with_gradient_terms_on_a_network():
    """The checker's formula is the library's decomposition, given per-example gradients."""
    torch.manual_seed(0)
    features = nn.Sequential(nn.Linear(2, 5), nn.Tanh(), nn.Linear(5, 3), nn.Tanh()).double()
    head = nn.Linear(3, 1).double()
    x, x2 = torch.randn(6, 2, dtype=torch.float64), torch.randn(6, 2, dtype=torch.float64)
    y, y2 = torch.randn(6, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    params = list(features.parameters())

    def per_example(inputs):
        rows = [torch.cat([p.reshape(-1) for p in torch.autograd.grad(head(features(xi[None]))[0, 0], params)])
                for xi in inputs]
        return torch.stack(rows)

    with torch.no_grad():
        e, e2 = y - head(features(x))[:, 0], y2 - head(features(x2))[:, 0]
    mine = ch04._terms_from_gradients_reference(e, e2, per_example(x), per_example(x2), 0.35)
    lib = gradient_terms(features, head, x, x2, y, y2, 0.35)
    for key in FOUR_TERM_KEYS:
        assert torch.allclose(mine[key], lib[key], atol=1e-12), key


# --- exercise 1: the four terms ----------------------------------------------------------------------


def ft_plus_sign(e, e2, g, g2, lam):
    return {k: -v for k, v in terms_from_gradients(e, e2, g, g2, lam).items()}


def ft_own_residual(e, e2, g, g2, lam):
    out = terms_from_gradients(e, e2, g, g2, lam)
    w = lam * (1 - lam)
    out["cross_x"] = -(w * e[:, None] * g).sum(0)
    out["cross_x2"] = -(w * e2[:, None] * g2).sum(0)
    return out


def ft_swapped_keys(e, e2, g, g2, lam):
    out = terms_from_gradients(e, e2, g, g2, lam)
    out["cross_x"], out["cross_x2"] = out["cross_x2"], out["cross_x"]
    return out


def ft_lam_not_squared(e, e2, g, g2, lam):
    out = terms_from_gradients(e, e2, g, g2, lam)
    out["ordinary_x"] = -(lam * e[:, None] * g).sum(0)
    out["ordinary_x2"] = -((1 - lam) * e2[:, None] * g2).sum(0)
    return out


def ft_weights_exchanged(e, e2, g, g2, lam):
    out = terms_from_gradients(e, e2, g, g2, lam)
    out["ordinary_x"] = -((1 - lam) ** 2 * e[:, None] * g).sum(0)
    out["ordinary_x2"] = -(lam**2 * e2[:, None] * g2).sum(0)
    return out


def ft_mean(e, e2, g, g2, lam):
    return {k: v / len(e) for k, v in terms_from_gradients(e, e2, g, g2, lam).items()}


def ft_not_summed(e, e2, g, g2, lam):
    return {k: -(lam**2 * e[:, None] * g) for k in FOUR_TERM_KEYS}


def ft_missing_key(e, e2, g, g2, lam):
    out = terms_from_gradients(e, e2, g, g2, lam)
    del out["cross_x2"]
    return out


def ft_tuple(e, e2, g, g2, lam):
    return tuple(terms_from_gradients(e, e2, g, g2, lam).values())


def ft_one_term_off(e, e2, g, g2, lam):
    out = terms_from_gradients(e, e2, g, g2, lam)
    out["cross_x2"] = 2 * out["cross_x2"]
    return out


def ft_crashes(e, e2, g, g2, lam):
    return e @ g2.T @ g


def ft_stub(e, e2, g, g2, lam):
    raise NotImplementedError


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (ft_plus_sign, "wrong sign"),
        (ft_own_residual, "PARTNER's residual"),
        (ft_swapped_keys, "exchanged: cross_x is the term whose DIRECTION"),
        (ft_lam_not_squared, "weighted by lam and \\(1-lam\\)"),
        (ft_weights_exchanged, "weights exchanged"),
        (ft_mean, "SUM over the batch"),
        (ft_not_summed, "one row per example"),
        (ft_missing_key, "lacks the key\\(s\\) cross_x2"),
        (ft_tuple, "return a dict"),
        (ft_one_term_off, "cross_x2 do not match"),
        (ft_crashes, "RuntimeError"),
        (ft_stub, "Not attempted yet"),
        ("terms_from_gradients", "pass your function"),
    ],
)
def test_terms_from_gradients_checker_rejects_typical_mistakes_with_a_specific_hint(answer, hint):
    assert_rejected(ch04.check_terms_from_gradients, answer, hint)


# --- exercise 2: c = E[lam (1 - lam)] ------------------------------------------------------------


def c_independent(alpha):
    return 0.25


def c_plus_var(alpha):
    return 0.25 + 1 / (4 * (2 * alpha + 1))


def c_variance(alpha):
    return 1 / (4 * (2 * alpha + 1))


def c_no_half(alpha):
    return alpha / (2 * alpha + 1)


def c_variance_no_plus_one(alpha):
    return 0.25 - alpha**2 / ((2 * alpha) ** 2 * (2 * alpha))


def c_monte_carlo(alpha):
    lam = np.random.default_rng(0).beta(alpha, alpha, size=20_000)
    return float((lam * (1 - lam)).mean())


def c_tensor(alpha):
    return torch.tensor([c_of(alpha), c_of(alpha)])


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (c_independent, "not independent"),
        (c_plus_var, "subtract it instead"),
        (c_variance, "Var\\(lam\\) itself"),
        (c_no_half, "factor 1/2"),
        (c_variance_no_plus_one, "dropped the \\+1"),
        (c_monte_carlo, "Monte Carlo estimate"),
        (c_tensor, "single number"),
        (mixing_constant(2.0), "pass your function"),
    ],
)
def test_mixing_constant_checker_rejects_typical_mistakes_with_a_specific_hint(answer, hint):
    assert_rejected(ch04.check_mixing_constant, answer, hint)


# --- exercise 3: the expected loss ---------------------------------------------------------------


def el_no_penalty(e, alpha):
    return float((1 - 2 * c_of(alpha)) * e.pow(2).mean() / 2)


def el_erm(e, alpha):
    return float(e.pow(2).mean() / 2)


def el_no_half(e, alpha):
    return 2 * expected_loss(e, alpha)


def el_half_on_penalty_only(e, alpha):
    c = c_of(alpha)
    return float((1 - 2 * c) * e.pow(2).mean() + c * e.mean() ** 2)


def el_quarter(e, alpha):
    return float(0.5 * e.pow(2).mean() / 2 + 0.25 * e.mean() ** 2)


def el_unscaled_erm(e, alpha):
    return float(e.pow(2).mean() / 2 + c_of(alpha) * e.mean() ** 2)


def el_sum(e, alpha):
    return len(e) * expected_loss(e, alpha)


def el_monte_carlo(e, alpha):
    rng = np.random.default_rng(0)
    lam = torch.from_numpy(rng.beta(alpha, alpha, size=(4000, 1)))
    perms = torch.stack([torch.from_numpy(rng.permutation(len(e))) for _ in range(4000)])
    return float((0.5 * (lam * e + (1 - lam) * e[perms]) ** 2).mean())


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (el_no_penalty, "left out the penalty"),
        (el_erm, "do not average to mean\\(e\\^2\\)"),
        (el_no_half, "forgot the factor 1/2"),
        (el_half_on_penalty_only, "applies to the whole square"),
        (el_quarter, "c = 1/4"),
        (el_unscaled_erm, "ERM part is scaled"),
        (el_sum, "not the sum"),
        (el_monte_carlo, "Monte Carlo estimate"),
        (lambda e, alpha: e, "single number"),
    ],
)
def test_expected_loss_checker_rejects_typical_mistakes_with_a_specific_hint(answer, hint):
    assert_rejected(ch04.check_expected_loss, answer, hint)


# --- more wrong answers, each with the hint it must get ----------------------------------------------


def ft_cross_sign(e, e2, g, g2, lam):
    out = terms_from_gradients(e, e2, g, g2, lam)
    return {**out, "cross_x": -out["cross_x"], "cross_x2": -out["cross_x2"]}


def ft_ordinary_sign(e, e2, g, g2, lam):
    out = terms_from_gradients(e, e2, g, g2, lam)
    return {**out, "ordinary_x": -out["ordinary_x"], "ordinary_x2": -out["ordinary_x2"]}


def ft_doubled_cross(e, e2, g, g2, lam):
    out = terms_from_gradients(e, e2, g, g2, lam)
    return {**out, "cross_x": 2 * out["cross_x"], "cross_x2": 2 * out["cross_x2"]}


def ft_cross_weight_everywhere(e, e2, g, g2, lam):
    w = lam * (1 - lam)
    out = terms_from_gradients(e, e2, g, g2, lam)
    return {**out, "ordinary_x": -(w * e[:, None] * g).sum(0), "ordinary_x2": -(w * e2[:, None] * g2).sum(0)}


def ft_ordinary_partner_residual(e, e2, g, g2, lam):
    out = terms_from_gradients(e, e2, g, g2, lam)
    return {**out, "ordinary_x": -(lam**2 * e2[:, None] * g).sum(0),
            "ordinary_x2": -((1 - lam) ** 2 * e[:, None] * g2).sum(0)}


def ft_numpy(e, e2, g, g2, lam):
    return {k: v.numpy() for k, v in terms_from_gradients(e, e2, g, g2, lam).items()}


def ft_floats(e, e2, g, g2, lam):
    return {k: float(v.sum()) for k, v in terms_from_gradients(e, e2, g, g2, lam).items()}


def ft_mutates_g(e, e2, g, g2, lam):
    g *= lam
    return terms_from_gradients(e, e2, g / lam, g2, lam)


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (ft_cross_sign, "cross terms have the wrong sign"),
        (ft_ordinary_sign, "ordinary terms have the wrong sign"),
        (ft_doubled_cross, "cross terms are doubled"),
        (ft_cross_weight_everywhere, "weighted by lam \\(1-lam\\), the cross terms' weight"),
        (ft_ordinary_partner_residual, "ordinary terms use the partner's residual"),
        (ft_floats, "ordinary_x should be a tensor, but you returned float"),
        (ft_mutates_g, "changed its argument `g` in place"),
    ],
)
def test_terms_from_gradients_checker_rejects_more_wrong_answers(answer, hint):
    assert_rejected(ch04.check_terms_from_gradients, answer, hint)


def test_terms_from_gradients_accepts_numpy_arrays():
    assert ch04.check_terms_from_gradients(ft_numpy)


def c_alpha_plus_one(alpha):
    return 0.25 - 1 / (4 * (alpha + 1))


def c_numerator_one(alpha):
    return 1 / (2 * (2 * alpha + 1))


def c_denominator_alpha_plus_one(alpha):
    return alpha / (2 * (alpha + 1))


def c_string(alpha):
    return f"{alpha / (2 * (2 * alpha + 1))}"


def c_rounded(alpha):
    return round(alpha / (2 * (2 * alpha + 1)), 2)


def c_torch_beta_sample(alpha):
    g = torch.Generator().manual_seed(1)
    a = torch._standard_gamma(torch.full((50_000,), float(alpha)), generator=g)
    b = torch._standard_gamma(torch.full((50_000,), float(alpha)), generator=g)
    lam = a / (a + b)
    return (lam * (1 - lam)).mean()


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (c_alpha_plus_one, "not alpha \\+ 1"),
        (c_numerator_one, "your numerator is 1"),
        (c_denominator_alpha_plus_one, "the denominator has 2 alpha \\+ 1"),
        (c_string, "should be a number, but you returned str"),
        (c_rounded, "close to but not exactly"),
        (c_torch_beta_sample, "Monte Carlo estimate"),
    ],
)
def test_mixing_constant_checker_rejects_more_wrong_answers(answer, hint):
    assert_rejected(ch04.check_mixing_constant, answer, hint)


def test_mixing_constant_accepts_numpy_and_zero_d_tensors():
    assert ch04.check_mixing_constant(lambda a: np.float64(c_of(a)))
    assert ch04.check_mixing_constant(lambda a: torch.tensor(c_of(a), dtype=torch.float64))


def el_penalty_not_squared(e, alpha):
    c = c_of(alpha)
    return float((1 - 2 * c) * e.pow(2).mean() / 2 + c * e.mean())


def el_variance_penalty(e, alpha):
    c = c_of(alpha)
    return float((1 - 2 * c) * e.pow(2).mean() / 2 + c * e.var(unbiased=False))


def el_minus_penalty(e, alpha):
    c = c_of(alpha)
    return float((1 - 2 * c) * e.pow(2).mean() / 2 - c * e.mean() ** 2)


def el_two_c(e, alpha):
    c = c_of(alpha)
    return float((1 - 2 * c) * e.pow(2).mean() / 2 + 2 * c * e.mean() ** 2)


def el_mutates(e, alpha):
    value = expected_loss(e, alpha)
    e.pow_(2)
    return value


def el_tensor_with_grad(e, alpha):
    e = e.clone().requires_grad_(True)
    c = c_of(alpha)
    return (1 - 2 * c) * e.pow(2).mean() / 2 + c * e.mean() ** 2


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (el_penalty_not_squared, "SQUARED mean residual"),
        (el_variance_penalty, "not on the variance"),
        (el_minus_penalty, "ADD c mean\\(e\\)\\^2"),
        (el_two_c, "not 2c mean\\(e\\)\\^2"),
        (el_mutates, "changed its argument `residuals` in place"),
    ],
)
def test_expected_loss_checker_rejects_more_wrong_answers(answer, hint):
    assert_rejected(ch04.check_expected_loss, answer, hint)


def test_expected_loss_accepts_a_tensor_that_carries_gradients():
    assert ch04.check_expected_loss(el_tensor_with_grad)


# --- exact but wrong formulas are not Monte Carlo estimates; coincidences at one alpha ---------------


def el_unbiased_variance(residuals, alpha):
    c = c_of(alpha)
    return float((1 - 2 * c) * (residuals.var() + residuals.mean() ** 2) / 2 + c * residuals.mean() ** 2)


def el_no_self_pairs(residuals, alpha):
    c, n = c_of(alpha), len(residuals)
    cross = (residuals.sum() ** 2 - residuals.pow(2).sum()) / (n * (n - 1))
    return float((1 - 2 * c) * residuals.pow(2).mean() / 2 + c * cross)


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (el_unbiased_variance, "unbiased variance"),
        (el_no_self_pairs, "with probability 1/n"),
    ],
)
def test_expected_loss_names_exact_mistakes_instead_of_a_monte_carlo_estimate(answer, hint):
    feedback = assert_rejected(ch04.check_expected_loss, answer, hint)
    assert "Monte Carlo" not in feedback.message


def c_zero_below_one(alpha):
    return c_of(alpha) if alpha >= 1 else 0.0


def c_dropped_plus_one(alpha):
    return 0.25 - 1 / (8 * alpha)


def test_mixing_constant_names_a_mistake_only_when_it_fits_every_alpha():
    feedback = assert_rejected(ch04.check_mixing_constant, c_zero_below_one, "no one usual mistake")
    assert "+1" not in feedback.message
    assert_rejected(ch04.check_mixing_constant, c_dropped_plus_one, r"every alpha tried .*dropped the \+1")
    assert_rejected(ch04.check_mixing_constant, lambda alpha: alpha / (2 * 2 * alpha + 1), r"4 alpha \+ 1")
