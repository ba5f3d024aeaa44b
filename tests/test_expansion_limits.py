"""Tests for mixlib.expansion_limits: the wiggly interpolant and heads that are not affine."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mixlib.expansion_limits import WigglyInterpolant, commuting_gap, linearised_gradient_terms
from mixlib.gradients import FOUR_TERM_KEYS, gradient_terms
from mixlib.mixing import mix, mixed_squared_loss


def points(n: int = 9, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, generator=g) * 4 - 2
    return x, torch.sin(3 * x) + 0.1 * torch.randn(n, generator=g)


# --- WigglyInterpolant -----------------------------------------------------------------------------


@pytest.mark.parametrize("amplitude", [0.0, 1.0, 5.0])
def test_interpolant_hits_every_point_exactly(amplitude):
    x, y = points()
    features = WigglyInterpolant(x, y, amplitude=amplitude, wiggles=3)
    head = WigglyInterpolant.head()
    with torch.no_grad():
        out = features(x)
        assert out.shape == (len(x), 2)
        assert torch.equal(out[:, 0], y)
        assert torch.equal(head(out)[:, 0], y)
        assert torch.equal(features(x[:, None]), out)  # (B, 1) inputs too


def test_interpolant_sorts_knots_and_clamps_outside_the_range():
    x, y = points()
    features = WigglyInterpolant(x, y, amplitude=0.0)
    order = x.argsort()
    assert torch.equal(features.knots, x[order])
    with torch.no_grad():
        far = features(torch.tensor([-10.0, 10.0]))[:, 0]
    assert torch.equal(far, torch.stack([y[order[0]], y[order[-1]]]))


def test_zero_amplitude_is_the_piecewise_linear_interpolant():
    x, y = torch.tensor([0.0, 1.0, 3.0]), torch.tensor([0.0, 2.0, -2.0])
    features = WigglyInterpolant(x, y, amplitude=0.0)
    with torch.no_grad():
        out = features(torch.tensor([0.5, 2.0]))[:, 0]
    assert torch.allclose(out, torch.tensor([1.0, 0.0]))


def test_wiggle_moves_the_feature_between_the_knots():
    x, y = torch.tensor([0.0, 1.0]), torch.tensor([0.0, 0.0])
    features = WigglyInterpolant(x, y, amplitude=1.0, wiggles=1)
    with torch.no_grad():
        value = features(torch.tensor([0.25]))[0, 0]
    assert torch.isclose(value, torch.tensor(4 * 0.25 * 0.75))  # 4 t (1 - t) sin(pi / 2)


def test_manifold_mixup_is_blind_and_input_mixup_is_not():
    x, y = points(12)
    features = WigglyInterpolant(x, y, amplitude=2.0)
    head = WigglyInterpolant.head()
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(3))
    for lam in (0.2, 0.5, 0.9):
        terms = gradient_terms(features, head, x, x[perm], y, y[perm], lam)
        assert all(float(v.abs().max()) == 0.0 for v in terms.values())
        with torch.no_grad():
            mm = mixed_squared_loss(head(mix(features(x), lam, perm)), y, y[perm], lam)
        assert float(mm) < 1e-12
        loss_in = mixed_squared_loss(head(features(mix(x, lam, perm))), y, y[perm], lam)
        grads = torch.autograd.grad(loss_in, list(features.parameters()))
        assert float(loss_in.detach()) > 1e-3
        assert sum(float(g.norm()) for g in grads) > 1e-3


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"knots": torch.tensor([1.0]), "values": torch.tensor([1.0])}, ValueError, "at least 2"),
        ({"knots": torch.tensor([1.0, 1.0]), "values": torch.tensor([1.0, 2.0])}, ValueError, "distinct"),
        ({"knots": torch.tensor([1.0, 2.0]), "values": torch.tensor([1.0])}, ValueError, "one entry per knot"),
        ({"knots": torch.tensor([1, 2]), "values": torch.tensor([1.0, 2.0])}, TypeError, "floating-point"),
        ({"knots": torch.tensor([1.0, 2.0]), "values": torch.tensor([1.0, 2.0]), "wiggles": 0}, ValueError,
         "wiggles"),
        ({"knots": torch.tensor([1.0, 2.0]), "values": torch.tensor([1.0, 2.0]), "amplitude": "big"}, TypeError,
         "amplitude"),
    ],
)
def test_interpolant_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        WigglyInterpolant(**kwargs)


def test_interpolant_rejects_bad_input_shape():
    features = WigglyInterpolant(*points())
    with pytest.raises(ValueError, match="shape"):
        features(torch.zeros(3, 2))


# --- commuting_gap and linearised_gradient_terms ---------------------------------------------------------


def test_affine_heads_commute_nonlinear_ones_do_not():
    torch.manual_seed(0)
    u, v = torch.randn(6, 4, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64)
    lam = torch.rand(6, dtype=torch.float64)
    affine = nn.Linear(4, 3).double()
    assert torch.allclose(commuting_gap(affine, u, v, lam), torch.zeros(6, 3, dtype=torch.float64), atol=1e-12)
    curved = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 1)).double()
    assert float(commuting_gap(curved, u, v, lam).detach().abs().max()) > 1e-4
    assert torch.allclose(commuting_gap(curved, u, v, 1.0), torch.zeros(6, 1, dtype=torch.float64))


def test_commuting_gap_checks_its_arguments():
    head = nn.Linear(4, 1)
    with pytest.raises(ValueError, match="shape of u"):
        commuting_gap(head, torch.zeros(3, 4), torch.zeros(3, 5), 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        commuting_gap(head, torch.zeros(3, 4), torch.zeros(3, 4), 1.5)


def setup(seed: int = 0):
    torch.manual_seed(seed)
    features = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 5), nn.Tanh()).double()
    x, x2 = torch.randn(7, 3, dtype=torch.float64), torch.randn(7, 3, dtype=torch.float64)
    y, y2 = torch.randn(7, dtype=torch.float64), torch.randn(7, dtype=torch.float64)
    return features, x, x2, y, y2


@pytest.mark.parametrize("lam", [0.3, torch.linspace(0, 1, 7, dtype=torch.float64)])
def test_linearised_terms_equal_gradient_terms_for_an_affine_head(lam):
    features, x, x2, y, y2 = setup()
    head = nn.Linear(5, 1).double()
    ours = linearised_gradient_terms(features, head, x, x2, y, y2, lam)
    reference = gradient_terms(features, head, x, x2, y, y2, lam)
    assert list(ours) == list(reference)
    for key in reference:
        assert torch.allclose(ours[key], reference[key], atol=1e-12)
    assert torch.allclose(sum(ours[k] for k in FOUR_TERM_KEYS), ours["autograd"], atol=1e-12)


def test_linearised_terms_miss_part_of_the_gradient_for_a_nonlinear_head():
    features, x, x2, y, y2 = setup()
    head = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    terms = linearised_gradient_terms(features, head, x, x2, y, y2, 0.4)
    residual = (terms["autograd"] - sum(terms[k] for k in FOUR_TERM_KEYS)).norm() / terms["autograd"].norm()
    assert float(residual) > 1e-3
    # at lam = 1 nothing is mixed, and the formula is exact for any head
    ends = linearised_gradient_terms(features, head, x, x2, y, y2, 1.0)
    assert torch.allclose(sum(ends[k] for k in FOUR_TERM_KEYS), ends["autograd"], atol=1e-12)


def test_linearised_terms_check_their_arguments():
    features, x, x2, y, y2 = setup()
    with pytest.raises(ValueError, match="one output per example"):
        linearised_gradient_terms(features, nn.Linear(5, 2).double(), x, x2, y, y2, 0.5)
    with pytest.raises(ValueError, match="batch sizes differ"):
        linearised_gradient_terms(features, nn.Linear(5, 1).double(), x, x2[:3], y, y2, 0.5)
    with pytest.raises(ValueError, match="no parameters"):
        linearised_gradient_terms(nn.Identity(), nn.Linear(3, 1).double(), x, x2, y, y2, 0.5)
    with pytest.raises(TypeError, match="nn.Module"):
        linearised_gradient_terms(features, lambda z: z.sum(1), x, x2, y, y2, 0.5)
