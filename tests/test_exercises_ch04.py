"""Chapter 4 checkers accept the reference solutions and reject typical wrong answers with a hint."""

from __future__ import annotations

import math
import re

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


def expected_loss_others(residuals, alpha):
    n, c = len(residuals), c_of(alpha)
    mean_sq, mean = residuals.pow(2).mean(), residuals.mean()
    cross = (n * mean**2 - mean_sq) / (n - 1)  # e_i times the mean of the OTHER residuals, averaged
    return float((1 - 2 * c) * mean_sq / 2 + c * cross)


def test_reference_solutions_pass():
    assert ch04.check_terms_from_gradients(terms_from_gradients)
    assert ch04.check_mixing_constant(c_of)
    assert ch04.check_expected_loss_others(expected_loss_others)
    assert ch04.check_terms_from_gradients(terms_from_gradients, strict=True).passed
    assert ch04.check_mixing_constant(c_of, strict=True).passed
    assert ch04.check_expected_loss_others(expected_loss_others, strict=True).passed


def test_library_functions_are_shortcuts():
    assert_shortcut(ch04.check_mixing_constant, mixing_constant, "mixlib.gradients.mixing_constant")
    assert_shortcut(ch04.check_terms_from_gradients, lambda e, e2, g, g2, lam: ch04._terms(e, e2, g, g2, lam),
                    "mixlib.exercises.ch04._terms")
    assert_shortcut(ch04.check_expected_loss_others, lambda e, alpha: ch04._expected_others(e, alpha),
                    "mixlib.exercises.ch04._expected_others")


def test_library_building_blocks_are_not_shortcuts():
    """Using the library's c, or the uniform-pairing loss as a starting point, is the learner's own work."""
    def with_library_c(residuals, alpha):
        n, c = len(residuals), mixing_constant(alpha)
        mean_sq, mean = residuals.pow(2).mean(), residuals.mean()
        return float((1 - 2 * c) * mean_sq / 2 + c * (n * mean**2 - mean_sq) / (n - 1))

    def from_the_uniform_loss(residuals, alpha):
        n = len(residuals)
        variance = residuals.var(unbiased=False)
        return expected_mmix_loss(residuals, alpha) - mixing_constant(alpha) * float(variance) / (n - 1)

    assert ch04.check_expected_loss_others(with_library_c).passed
    assert ch04.check_expected_loss_others(from_the_uniform_loss).passed


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
    gen = torch.Generator().manual_seed(1)
    a = torch._standard_gamma(torch.full((50_000,), float(alpha)), generator=gen)
    b = torch._standard_gamma(torch.full((50_000,), float(alpha)), generator=gen)
    lam = a / (a + b)
    return (lam * (1 - lam)).mean()


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (c_alpha_plus_one, "not alpha \\+ 1"),
        (c_numerator_one, "your numerator is 1"),
        (c_denominator_alpha_plus_one, "denominator has alpha \\+ 1"),
        (c_string, "should be a number, but you returned str"),
        (c_rounded, "a rounded number"),
        (c_torch_beta_sample, "Monte Carlo estimate"),
    ],
)
def test_mixing_constant_checker_rejects_more_wrong_answers(answer, hint):
    assert_rejected(ch04.check_mixing_constant, answer, hint)


def test_mixing_constant_accepts_numpy_and_zero_d_tensors():
    assert ch04.check_mixing_constant(lambda a: np.float64(c_of(a)))
    assert ch04.check_mixing_constant(lambda a: torch.tensor(c_of(a), dtype=torch.float64))


# --- coincidences at one alpha --------------------------------------------------------------------


def c_zero_below_one(alpha):
    return c_of(alpha) if alpha >= 1 else 0.0


def c_dropped_plus_one(alpha):
    return 0.25 - 1 / (8 * alpha)


def test_mixing_constant_names_a_mistake_only_when_it_fits_every_alpha():
    feedback = assert_rejected(ch04.check_mixing_constant, c_zero_below_one, "no one usual mistake")
    assert "+1" not in feedback.message
    assert_rejected(ch04.check_mixing_constant, c_dropped_plus_one, r"every alpha tried .*dropped the \+1")
    assert_rejected(ch04.check_mixing_constant, lambda alpha: alpha / (2 * 2 * alpha + 1), r"4 alpha \+ 1")


# --- exercise 3: the expected loss when no example is its own partner ---------------------------------


def eo_uniform_partner(residuals, alpha):  # the chapter's theorem, copied: self-pairs allowed
    c = c_of(alpha)
    return float((1 - 2 * c) * residuals.pow(2).mean() / 2 + c * residuals.mean() ** 2)


def eo_penalty_only(residuals, alpha):  # only the penalty on the mean rescaled by n / (n - 1)
    n, c = len(residuals), c_of(alpha)
    return float((1 - 2 * c) * residuals.pow(2).mean() / 2 + c * n / (n - 1) * residuals.mean() ** 2)


def eo_divides_by_n(residuals, alpha):  # off by one: the partner drawn from n, not n - 1, examples
    n, c = len(residuals), c_of(alpha)
    others = (residuals.sum() - residuals) / n
    return float((1 - 2 * c) * residuals.pow(2).mean() / 2 + c * (residuals * others).mean())


def eo_adds_self(residuals, alpha):  # a sign slip: the example's own residual added, not taken away
    n, c = len(residuals), c_of(alpha)
    others = (residuals.sum() + residuals) / (n - 1)
    return float((1 - 2 * c) * residuals.pow(2).mean() / 2 + c * (residuals * others).mean())


def eo_no_half(residuals, alpha):
    return 2 * expected_loss_others(residuals, alpha)


def eo_sum(residuals, alpha):
    return len(residuals) * expected_loss_others(residuals, alpha)


def eo_quarter(residuals, alpha):  # E[lam (1 - lam)] taken as E[lam] E[1 - lam]
    n, c = len(residuals), 0.25
    mean_sq, mean = residuals.pow(2).mean(), residuals.mean()
    return float((1 - 2 * c) * mean_sq / 2 + c * (n * mean**2 - mean_sq) / (n - 1))


def eo_unscaled_erm(residuals, alpha):
    n, c = len(residuals), c_of(alpha)
    mean_sq, mean = residuals.pow(2).mean(), residuals.mean()
    return float(mean_sq / 2 + c * (n * mean**2 - mean_sq) / (n - 1))


def eo_two_c(residuals, alpha):
    n, c = len(residuals), c_of(alpha)
    mean_sq, mean = residuals.pow(2).mean(), residuals.mean()
    return float((1 - 2 * c) * mean_sq / 2 + 2 * c * (n * mean**2 - mean_sq) / (n - 1))


def eo_monte_carlo(residuals, alpha):  # torchvision's rule, sampled: roll a shuffled batch
    rng = np.random.default_rng(0)
    n = len(residuals)
    lam = torch.from_numpy(rng.beta(alpha, alpha, size=(20_000, 1)))
    order = torch.from_numpy(np.argsort(rng.random((20_000, n)), axis=1))
    partner = torch.empty_like(order).scatter_(1, order, order.roll(1, 1))
    return float((0.5 * (lam * residuals + (1 - lam) * residuals[partner]) ** 2).mean())


def eo_vector(residuals, alpha):
    return 0.5 * residuals**2


def eo_mutates(residuals, alpha):
    value = expected_loss_others(residuals, alpha)
    residuals -= residuals.mean()
    return value


def eo_stub(residuals, alpha):
    ...


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (eo_uniform_partner, "partner drawn from all n examples"),
        (eo_penalty_only, "mean SQUARED residual"),
        (eo_divides_by_n, "divided by n where"),
        (eo_adds_self, "SUBTRACTS e_i"),
        (eo_no_half, "factor 1/2"),
        (eo_sum, "not the sum"),
        (eo_quarter, "c = 1/4"),
        (eo_unscaled_erm, "ERM part is scaled"),
        (eo_two_c, "carries c, not 2c"),
        (eo_monte_carlo, "Monte Carlo estimate"),
        (eo_vector, "single number"),
        (eo_mutates, "changed its argument `residuals` in place"),
        (eo_stub, "Not attempted yet"),
    ],
)
def test_expected_loss_others_checker_rejects_typical_mistakes_with_a_specific_hint(answer, hint):
    assert_rejected(ch04.check_expected_loss_others, answer, hint)


def test_expected_loss_others_mistakes_are_told_apart():
    """On every case the checker uses, the known mistakes give distinct values, none of them the answer."""
    for n, m2, m1, c in [(12, 1.7, 0.6, 0.2), (5, 2.9, -1.2, c_of(0.4))]:
        right = ch04._others_value(m2, m1, n, c)
        values = [right, *ch04._others_mistakes(m2, m1, n, c).values()]
        assert all(abs(a - b) > 1e-6 for i, a in enumerate(values) for b in values[i + 1:])


def _exact_over_shuffles(residuals, alpha, rule):
    """The expected loss of a shuffled batch paired by `rule` ("roll" or "flip"), every shuffle enumerated."""
    import itertools

    n, c = len(residuals), c_of(alpha)
    cross = []
    for order in itertools.permutations(range(n)):
        order = torch.tensor(order)
        moved = order.roll(1) if rule == "roll" else order.flip(0)
        partner = torch.empty_like(order).scatter_(0, order, moved)
        cross.append(float((residuals * residuals[partner]).mean()))
    return (1 - 2 * c) * float(residuals.pow(2).mean()) / 2 + c * sum(cross) / len(cross)


def test_expected_loss_others_statement_holds_for_the_roll_at_any_n_and_the_flip_only_at_even_n():
    """The exercise names torchvision's roll (any n) and timm's flip for an even n only: in an odd batch the
    flip pairs the middle example with itself, and the checker's answer would be wrong for it."""
    gen = torch.Generator().manual_seed(3)
    for n in (4, 5, 6):
        e = 0.4 + torch.randn(n, generator=gen, dtype=torch.float64)
        answer = ch04._expected_others(e, 2.0)
        assert math.isclose(_exact_over_shuffles(e, 2.0, "roll"), answer, rel_tol=1e-12)
        flip = _exact_over_shuffles(e, 2.0, "flip")
        assert math.isclose(flip, answer, rel_tol=1e-12) == (n % 2 == 0)


def test_expected_loss_others_hints_give_no_formula_before_the_last_stage():
    from mixlib.exercises import hint_stage

    for answer in (eo_uniform_partner, eo_penalty_only, eo_divides_by_n, eo_adds_self, eo_quarter):
        for stage in (1, 2):
            with hint_stage(stage):
                message = ch04.check_expected_loss_others(answer).message
            assert "(n mean(e) - e_i)" not in message and "(n mean(e)^2" not in message, message
        with hint_stage(3):
            assert "=" in ch04.check_expected_loss_others(answer).message


@pytest.mark.parametrize(("check", "answer"), [
    *[(ch04.check_terms_from_gradients, a) for a in (
        ft_plus_sign, ft_own_residual, ft_swapped_keys, ft_lam_not_squared, ft_weights_exchanged, ft_mean,
        ft_one_term_off, ft_cross_sign, ft_ordinary_sign, ft_doubled_cross, ft_cross_weight_everywhere,
        ft_ordinary_partner_residual)],
    *[(ch04.check_mixing_constant, a) for a in (
        c_independent, c_plus_var, c_variance, c_no_half, c_variance_no_plus_one, c_alpha_plus_one,
        c_numerator_one, c_denominator_alpha_plus_one, c_zero_below_one, lambda alpha: alpha / (4 * alpha + 1))],
    *[(ch04.check_expected_loss_others, a) for a in (
        eo_uniform_partner, eo_penalty_only, eo_divides_by_n, eo_adds_self, eo_no_half, eo_sum, eo_quarter,
        eo_unscaled_erm, eo_two_c)],
])
def test_only_the_last_hint_stage_shows_code(check, answer):
    """The nudge and the named mistake give no code and no finished formula; the third stage may."""
    from mixlib.exercises import hint_stage

    code = re.compile(r"\.sum\(|\.mean\(|torch\.|\*\*| \* |alpha / \(2|\(n mean\(e\) - e_i\)|\(n mean\(e\)\^2")
    for stage in (1, 2):
        with hint_stage(stage):
            message = check(answer).message
        assert not code.search(message), (stage, message)
