"""The extra terms of the last-layer squared loss and the hard-label targets of a mixed point."""

import pytest
import torch

from mixlib.recipe import target_of_mix, terms_loss


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(12, 5, generator=g, dtype=torch.float64), torch.randn(12, 5, generator=g, dtype=torch.float64)


def _perm_rows(perm):
    return lambda t: t[perm]


def test_mean_plus_fluctuation_is_the_whole_loss(batch):
    out, target = batch
    perm, lam = torch.randperm(12, generator=torch.Generator().manual_seed(1)), 0.3
    parts = {t: terms_loss(out, target, lam, _perm_rows(perm), t, None)
             for t in ("ordinary", "mean", "fluctuation", "all")}
    # all = ordinary + cross = (ordinary + mean penalty) + (ordinary + cross - mean penalty) - ordinary
    torch.testing.assert_close(parts["mean"] + parts["fluctuation"] - parts["ordinary"], parts["all"])
    e = target - out
    torch.testing.assert_close(parts["mean"] - parts["ordinary"], lam * (1 - lam) * e.mean(0).pow(2).sum())


def test_expected_is_the_average_over_lambda_and_pairings(batch):
    out, target = batch
    alpha, g = 2.0, torch.Generator().manual_seed(2)
    beta = torch.distributions.Beta(alpha, alpha)
    torch.manual_seed(3)
    total, draws = 0.0, 20000
    for _ in range(draws):
        perm = torch.randperm(12, generator=g)
        total += float(terms_loss(out, target, float(beta.sample()), _perm_rows(perm), "all", None))
    expected = float(terms_loss(out, target, 0.0, None, "expected", None, alpha))
    assert abs(total / draws - expected) < 0.01 * expected
    assert expected != pytest.approx(float(terms_loss(out, target, 0.5, _perm_rows(torch.arange(12)), "all", None)))


def test_targets_of_a_mixed_point():
    t = torch.eye(3)
    perm = torch.tensor([2, 0, 1])
    assert torch.equal(target_of_mix(t, 0.7, perm, "own"), t)
    assert torch.equal(target_of_mix(t, 0.7, perm, "dominant"), t)
    assert torch.equal(target_of_mix(t, 0.3, perm, "dominant"), t[perm])
    torch.testing.assert_close(target_of_mix(t, 0.3, perm, "mixed"), 0.3 * t + 0.7 * t[perm])
    stacked = torch.stack([t, t])  # two members, one lambda each
    lam = torch.tensor([0.8, 0.2]).reshape(2, 1, 1)
    both = target_of_mix(stacked, lam, torch.stack([perm, perm]), "dominant")
    assert torch.equal(both[0], t) and torch.equal(both[1], t[perm])
