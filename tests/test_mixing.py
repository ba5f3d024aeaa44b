"""Tests for mixlib.mixing: lambda sampling, pairing, mixup and the mixed losses."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from mixlib.mixing import (
    mix,
    mixed_cross_entropy,
    mixed_squared_loss,
    mixup,
    one_hot,
    random_pairing,
    sample_lambda,
    soft_cross_entropy,
)

SETTINGS = settings(max_examples=60, deadline=None)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- sample_lambda -------------------------------------------------------------------------------


def test_sample_lambda_scalar_is_float_in_unit_interval():
    lam = sample_lambda(2.0, generator=gen())
    assert isinstance(lam, float)
    assert 0.0 <= lam <= 1.0


def test_sample_lambda_tensor_shape_and_dtype():
    lam = sample_lambda(0.5, size=(3, 4), generator=gen())
    assert lam.shape == (3, 4)
    assert lam.dtype == torch.float32
    assert bool(((lam >= 0) & (lam <= 1)).all())
    assert sample_lambda(1.0, size=5, generator=gen()).shape == (5,)


def test_sample_lambda_is_repeatable_with_a_seeded_generator():
    assert sample_lambda(2.0, generator=gen(7)) == sample_lambda(2.0, generator=gen(7))
    assert torch.equal(sample_lambda(2.0, 10, gen(7)), sample_lambda(2.0, 10, gen(7)))
    assert sample_lambda(2.0, generator=gen(7)) != sample_lambda(2.0, generator=gen(8))


def test_sample_lambda_uses_torch_global_rng_without_generator():
    torch.manual_seed(3)
    first = sample_lambda(2.0, size=4)
    torch.manual_seed(3)
    assert torch.equal(first, sample_lambda(2.0, size=4))


@pytest.mark.parametrize("alpha", [0.2, 1.0, 2.0])
def test_sample_lambda_matches_beta_moments(alpha):
    draws = sample_lambda(alpha, size=200_000, generator=gen(1)).double()
    # Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1)).
    assert draws.mean().item() == pytest.approx(0.5, abs=3e-3)
    assert draws.var().item() == pytest.approx(1 / (4 * (2 * alpha + 1)), rel=1e-2)


@pytest.mark.parametrize("alpha", [0, -1.0, float("nan"), float("inf")])
def test_sample_lambda_rejects_bad_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        sample_lambda(alpha)


# --- random_pairing ------------------------------------------------------------------------------


def test_random_pairing_is_a_permutation():
    perm = random_pairing(50, gen())
    assert perm.dtype == torch.long
    assert torch.equal(perm.sort().values, torch.arange(50))


def test_random_pairing_self_pairs_with_probability_one_over_n():
    g = gen(2)
    n, draws = 4, 8000
    self_pairs = sum(int(random_pairing(n, g)[0] == 0) for _ in range(draws))
    assert self_pairs / draws == pytest.approx(1 / n, abs=0.02)


def test_random_pairing_rejects_bad_n():
    with pytest.raises(ValueError, match="n"):
        random_pairing(0)


# --- mixup ---------------------------------------------------------------------------------------


def test_mixup_by_hand():
    x = torch.tensor([[0.0, 2.0], [4.0, 6.0], [8.0, 10.0]])
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    perm = torch.tensor([2, 0, 1])
    mx, my = mixup(x, y, 0.25, perm)
    # row 0 mixes with row 2: 0.25 * [0, 2] + 0.75 * [8, 10]
    assert torch.allclose(mx, torch.tensor([[6.0, 8.0], [1.0, 3.0], [5.0, 7.0]]))
    assert torch.allclose(my, torch.tensor([[0.25, 0.75], [0.75, 0.25], [0.0, 1.0]]))


def test_mixup_per_example_lam_broadcasts_over_x_and_y_separately():
    torch.manual_seed(0)
    x, y = torch.randn(4, 3, 5, 5), torch.rand(4, 7)
    lam, perm = torch.rand(4), torch.randperm(4)
    mx, my = mixup(x, y, lam, perm)
    assert torch.allclose(mx, lam[:, None, None, None] * x + (1 - lam[:, None, None, None]) * x[perm])
    assert torch.allclose(my, lam[:, None] * y + (1 - lam[:, None]) * y[perm])


def test_mixup_accepts_regression_targets_of_shape_b():
    x, y = torch.randn(5, 2), torch.randn(5)
    perm = random_pairing(5, gen())
    _, my = mixup(x, y, 0.3, perm)
    assert torch.allclose(my, 0.3 * y + 0.7 * y[perm])


def test_mixup_is_differentiable_in_x_and_lam():
    x = torch.randn(6, 3, requires_grad=True)
    lam = torch.rand(6, requires_grad=True)
    perm = random_pairing(6, gen())
    mx, _ = mixup(x, torch.rand(6, 2), lam, perm)
    mx.sum().backward()
    assert torch.allclose(lam.grad, (x - x[perm]).sum(dim=1).detach())
    assert x.grad is not None


@pytest.mark.parametrize("perm", [[2, 0, 4, 1, 3], [0, 0, 1, 4, 4]], ids=["permutation", "repeats"])
@pytest.mark.parametrize("per_example", [False, True])
def test_mix_gradients_match_the_formula(perm, per_example):
    perm = torch.tensor(perm)
    t = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    lam = torch.rand(5, dtype=torch.float64, requires_grad=True) if per_example else 0.3
    weight = lam[:, None, None] if per_example else lam
    upstream = torch.randn(5, 2, 3, dtype=torch.float64)
    expected = torch.autograd.grad(((weight * t + (1 - weight) * t[perm]) * upstream).sum(), t)[0]
    assert torch.allclose(torch.autograd.grad((mix(t, lam, perm) * upstream).sum(), t)[0], expected)
    assert torch.autograd.gradcheck(lambda u: mix(u, lam, perm), (t,))
    assert torch.autograd.gradgradcheck(lambda u: mix(u, lam, perm), (t,))
    if per_example:
        assert torch.autograd.gradcheck(lambda w: mix(t, w, perm), (lam,))


def test_mix_is_the_input_half_of_mixup():
    x, y = torch.randn(5, 3), torch.rand(5, 2)
    perm = random_pairing(5, gen())
    assert torch.equal(mix(x, 0.4, perm), mixup(x, y, 0.4, perm)[0])


batches = st.integers(1, 8).flatmap(
    lambda b: st.tuples(
        st.lists(st.floats(-1e3, 1e3, width=32), min_size=b * 3, max_size=b * 3),
        st.permutations(list(range(b))),
        st.floats(0.0, 1.0),
        st.lists(st.floats(0.0, 1.0), min_size=b, max_size=b),
    )
)


@SETTINGS
@given(batches, st.booleans())
def test_mixup_is_a_convex_combination(batch, per_example):
    values, perm, lam, lams = batch
    x = torch.tensor(values).reshape(len(perm), 3)
    perm = torch.tensor(perm)
    weight = torch.tensor(lams) if per_example else lam
    mx, my = mixup(x, x.clone(), weight, perm)
    low, high = torch.minimum(x, x[perm]), torch.maximum(x, x[perm])
    slack = 1e-6 * (1 + high.abs())
    assert bool(((mx >= low - slack) & (mx <= high + slack)).all())
    assert torch.equal(mx, my)


@SETTINGS
@given(batches)
def test_mixup_endpoints(batch):
    values, perm, _, _ = batch
    x = torch.tensor(values).reshape(len(perm), 3)
    y = torch.tensor(values[::-1]).reshape(len(perm), 3)
    perm = torch.tensor(perm)
    mx, my = mixup(x, y, 1.0, perm)
    assert torch.equal(mx, x) and torch.equal(my, y)
    mx, my = mixup(x, y, 0.0, perm)
    assert torch.equal(mx, x[perm]) and torch.equal(my, y[perm])
    ones, zeros = torch.ones(len(perm)), torch.zeros(len(perm))
    assert torch.equal(mixup(x, y, ones, perm)[0], x)
    assert torch.equal(mixup(x, y, zeros, perm)[0], x[perm])


def _xy(b: int = 4):
    return torch.randn(b, 3), torch.rand(b, 2), random_pairing(b, gen())


@pytest.mark.parametrize("lam", [-0.1, 1.5, float("nan")])
def test_mixup_rejects_lam_outside_unit_interval(lam):
    x, y, perm = _xy()
    with pytest.raises(ValueError, match="lam"):
        mixup(x, y, lam, perm)
    with pytest.raises(ValueError, match="lam"):
        mixup(x, y, torch.full((4,), lam), perm)


def test_mixup_rejects_lam_of_wrong_shape():
    x, y, perm = _xy()
    with pytest.raises(ValueError, match="lam"):
        mixup(x, y, torch.rand(3), perm)


def test_mixup_rejects_mismatched_batches():
    x, y, perm = _xy()
    with pytest.raises(ValueError, match="batch sizes differ: x has 4, y has 3"):
        mixup(x, y[:3], 0.5, perm)


def test_mixup_rejects_integer_tensors():
    x, y, perm = _xy()
    with pytest.raises(TypeError, match="x must be a floating-point"):
        mixup(x.long(), y, 0.5, perm)
    with pytest.raises(TypeError, match="y must be a floating-point.*one_hot"):
        mixup(x, torch.tensor([0, 1, 1, 0]), 0.5, perm)


def test_mixup_rejects_nan():
    x, y, perm = _xy()
    x_nan = x.clone()
    x_nan[2, 1] = float("nan")
    with pytest.raises(ValueError, match="x contains NaN"):
        mixup(x_nan, y, 0.5, perm)
    y_nan = y.clone()
    y_nan[0, 0] = float("nan")
    with pytest.raises(ValueError, match="y contains NaN"):
        mixup(x, y_nan, 0.5, perm)


def test_mixup_rejects_infinities_and_names_them():
    # +inf and -inf sum to NaN; the check must say inf, not NaN.
    x, y, perm = _xy()
    x[0, 0], x[1, 0] = float("inf"), float("-inf")
    with pytest.raises(ValueError, match="x contains an infinite value"):
        mixup(x, y, 0.5, perm)
    x[1, 0] = 0.0
    with pytest.raises(ValueError, match="t contains an infinite value"):
        mix(x, 0.5, perm)


def test_losses_reject_infinite_logits_instead_of_returning_nan():
    logits, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    logits[1, 2] = float("inf")
    with pytest.raises(ValueError, match="logits contains an infinite value"):
        mixed_cross_entropy(logits, y, y, 0.5)
    with pytest.raises(ValueError, match="logits contains an infinite value"):
        soft_cross_entropy(logits, one_hot(y, 3))
    with pytest.raises(ValueError, match="pred contains an infinite value"):
        mixed_squared_loss(logits, logits.clone().fill_(0), logits.clone().fill_(0), 0.5)


def test_mixup_rejects_bad_perm():
    x, y, perm = _xy()
    with pytest.raises(TypeError, match="perm"):
        mixup(x, y, 0.5, perm.float())
    with pytest.raises(ValueError, match="perm"):
        mixup(x, y, 0.5, perm[:3])
    with pytest.raises(ValueError, match="perm"):
        mixup(x, y, 0.5, torch.tensor([0, 1, 2, 4]))
    with pytest.raises(ValueError, match="perm"):
        mixup(x, y, 0.5, torch.tensor([0, 1, 2, -1]))


# --- one-hot and losses --------------------------------------------------------------------------


def test_one_hot():
    assert torch.equal(one_hot(torch.tensor([2, 0]), 3), torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]))
    assert one_hot(torch.tensor([1], dtype=torch.int32), 2).dtype == torch.float32
    with pytest.raises(ValueError, match="labels"):
        one_hot(torch.tensor([3]), 3)
    with pytest.raises(TypeError, match="labels"):
        one_hot(torch.tensor([1.0]), 3)


def test_soft_cross_entropy_matches_torch():
    torch.manual_seed(0)
    logits, labels = torch.randn(6, 4), torch.randint(0, 4, (6,))
    assert torch.allclose(soft_cross_entropy(logits, one_hot(labels, 4)), F.cross_entropy(logits, labels))
    probs = torch.softmax(torch.randn(6, 4), dim=1)
    for reduction in ("mean", "sum", "none"):
        expected = F.cross_entropy(logits, probs, reduction=reduction)
        assert torch.allclose(soft_cross_entropy(logits, probs, reduction), expected)


def test_soft_cross_entropy_by_hand():
    # Uniform logits over 4 classes: CE = log 4 whatever the target.
    assert soft_cross_entropy(torch.zeros(1, 4), torch.tensor([[0.5, 0.5, 0.0, 0.0]])).item() == pytest.approx(
        math.log(4)
    )


def test_soft_cross_entropy_errors():
    with pytest.raises(ValueError, match="target"):
        soft_cross_entropy(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="target must hold probability rows that sum to one, got a row summing to 2"):
        soft_cross_entropy(torch.zeros(2, 3), torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]]))
    with pytest.raises(ValueError, match="reduction"):
        soft_cross_entropy(torch.zeros(2, 3), torch.zeros(2, 3), reduction="average")
    with pytest.raises(ValueError, match="logits contains NaN"):
        soft_cross_entropy(torch.full((2, 3), float("nan")), torch.zeros(2, 3))


@SETTINGS
@given(st.integers(1, 6), st.integers(2, 5), st.floats(0.0, 1.0), st.booleans(), st.integers(0, 2**31))
def test_mixing_losses_equals_mixing_labels(b, c, lam, per_example, seed):
    """Cross-entropy is linear in the target, so mixing two losses is mixing the one-hot labels."""
    g = gen(seed)
    logits = torch.randn(b, c, generator=g, dtype=torch.float64)
    y = torch.randint(0, c, (b,), generator=g)
    perm = random_pairing(b, g)
    weight = torch.rand(b, generator=g, dtype=torch.float64) if per_example else lam
    _, mixed_target = mixup(logits, one_hot(y, c, torch.float64), weight, perm)
    for reduction in ("mean", "sum", "none"):
        expected = soft_cross_entropy(logits, mixed_target, reduction)
        assert torch.allclose(mixed_cross_entropy(logits, y, y[perm], weight, reduction), expected)


def test_mixed_cross_entropy_by_definition():
    torch.manual_seed(0)
    logits, y, y2 = torch.randn(5, 3), torch.randint(0, 3, (5,)), torch.randint(0, 3, (5,))
    expected = 0.3 * F.cross_entropy(logits, y) + 0.7 * F.cross_entropy(logits, y2)
    assert torch.allclose(mixed_cross_entropy(logits, y, y2, 0.3), expected)


def test_mixed_cross_entropy_errors():
    logits, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    with pytest.raises(TypeError, match="y2"):
        mixed_cross_entropy(logits, y, y.float(), 0.5)
    with pytest.raises(ValueError, match="y2"):
        mixed_cross_entropy(logits, y, y + 1, 0.5)
    with pytest.raises(ValueError, match="lam"):
        mixed_cross_entropy(logits, y, y, 2.0)
    with pytest.raises(ValueError, match="batch sizes differ"):
        mixed_cross_entropy(logits, y, y[:3], 0.5)
    with pytest.raises(TypeError, match="logits"):
        mixed_cross_entropy(logits.long(), y, y, 0.5)
    with pytest.raises(ValueError, match=r"y must be class indices in \[0, 2\], got values from -100 to 2"):
        mixed_cross_entropy(logits, torch.tensor([0, 1, 2, -100]), y, 0.5)  # -100: nll_loss's ignore_index
    logits[2, 1] = float("nan")
    for reduction in ("mean", "none"):
        with pytest.raises(ValueError, match="logits contains NaN"):
            mixed_cross_entropy(logits, y, y, 0.5, reduction)


def test_mixed_squared_loss_by_hand():
    pred = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    y = torch.tensor([[1.0, 2.0], [2.0, 0.0]])
    y2 = torch.tensor([[3.0, 2.0], [0.0, 0.0]])
    # target at lam = 0.5: [[2, 2], [1, 0]]; residuals [[1, 2], [1, 0]]; halves of squared norms 2.5, 0.5
    assert torch.allclose(mixed_squared_loss(pred, y, y2, 0.5, "none"), torch.tensor([2.5, 0.5]))
    assert mixed_squared_loss(pred, y, y2, 0.5).item() == pytest.approx(1.5)
    assert mixed_squared_loss(pred, y, y2, 0.5, "sum").item() == pytest.approx(3.0)
    per_example = mixed_squared_loss(pred, y, y2, torch.tensor([1.0, 0.0]), "none")
    assert torch.allclose(per_example, torch.tensor([2.0, 0.0]))


def test_mixed_squared_loss_accepts_b_targets_for_b1_predictions():
    pred, y, y2 = torch.randn(4, 1), torch.randn(4), torch.randn(4)
    expected = 0.5 * (0.2 * y + 0.8 * y2 - pred[:, 0]) ** 2
    assert torch.allclose(mixed_squared_loss(pred, y, y2, 0.2, "none"), expected)


def test_mixed_squared_loss_rejects_an_empty_batch():
    empty = torch.zeros(0, 2)
    with pytest.raises(ValueError, match="pred must hold at least one example"):
        mixed_squared_loss(empty, empty, empty, 0.5)


def test_mix_is_the_formula_and_its_gradient_is_autograds():
    t = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    lam, perm = torch.rand(5, 1, dtype=torch.float64), torch.tensor([4, 0, 0, 2, 1])
    assert torch.equal(mix(t, lam, perm), lam * t + (1 - lam) * t[perm])
    assert mix(t, lam, perm).grad_fn.name() == "AddBackward0"  # plain autograd, no custom Function


def test_mixed_squared_loss_errors():
    pred = torch.randn(4, 2)
    with pytest.raises(ValueError, match="y2"):
        mixed_squared_loss(pred, torch.randn(4, 2), torch.randn(4, 3), 0.5)
    with pytest.raises(TypeError, match="y"):
        mixed_squared_loss(pred, torch.ones(4, 2, dtype=torch.long), torch.randn(4, 2), 0.5)
    with pytest.raises(ValueError, match="lam"):
        mixed_squared_loss(pred, pred, pred, -0.5)
