"""mixlib.tuning: each arm's learning rate and stopping epoch, chosen on held-out training data."""

from __future__ import annotations

import pytest
import torch

import mixlib
from mixlib.data import corrupt_labels
from mixlib.recipe import Recipe
from mixlib.tuning import holdout_split, tune


@pytest.fixture(scope="module")
def noisy():
    return corrupt_labels(mixlib.two_moons(n=120, noise=0.2, seed=0), 0.3, seed=0)


def _build():
    return mixlib.mlp(2, [8], 2)


def test_holdout_split_keeps_the_training_labels_and_never_the_test_set(noisy):
    held = holdout_split(noisy, 0.25, seed=3)
    n = len(noisy.x_train)
    assert len(held.x_test) == round(0.25 * n) and len(held.x_train) + len(held.x_test) == n
    rows = {tuple(r.tolist()): int(y) for r, y in zip(noisy.x_train, noisy.y_train, strict=True)}
    for part_x, part_y in ((held.x_train, held.y_train), (held.x_test, held.y_test)):
        assert all(rows[tuple(r.tolist())] == int(y) for r, y in zip(part_x, part_y, strict=True))
    assert not {tuple(r.tolist()) for r in held.x_test} & {tuple(r.tolist()) for r in held.x_train}
    assert torch.equal(holdout_split(noisy, 0.25, seed=3).x_test, held.x_test)
    assert not torch.equal(holdout_split(noisy, 0.25, seed=4).x_test, held.x_test)
    with pytest.raises(ValueError, match="fraction"):
        holdout_split(noisy, 1.0)
    with pytest.raises(TypeError, match="data"):
        holdout_split(noisy.x_train)


@pytest.mark.parametrize("vectorize", [True, False], ids=["ensemble", "one fit per run"])
def test_the_choice_is_the_best_mean_held_out_score_of_separate_runs(noisy, vectorize):
    lrs, seeds = [1e-3, 3e-2], [0, 1]
    arm = {"method": "input", "alpha": 1.0}
    build = _build if vectorize else (lambda: torch.nn.Sequential(_build()))  # not stackable: fit per run
    choice = tune(build, noisy, arm, seeds=seeds, lrs=lrs, epochs=6, batch_size=16, fraction=0.25, split_seed=3)
    held = holdout_split(noisy, 0.25, seed=3)
    for lr in lrs:
        runs = []
        for seed in seeds:
            mixlib.seed_everything(seed)
            model = _build()
            runs.append(mixlib.fit(model, held.x_train, held.y_train, seed=seed, lr=lr, epochs=6, batch_size=16,
                                   x_test=held.x_test, y_test=held.y_test, eval_every=1, progress=False, **arm))
        mean = [sum(h.test_metric[e] for h in runs) / len(runs) for e in range(6)]
        assert choice.curves[lr] == pytest.approx(mean, abs=1.5 / len(held.x_test))
    best = max(score for curve in choice.curves.values() for score in curve)
    assert choice.score == best and choice.curves[choice.lr][choice.epoch - 1] == best
    assert choice.lr in lrs and 1 <= choice.epoch <= 6


def test_a_recipe_arm_and_regression_choose_the_smallest_error():
    data = mixlib.regression_1d(n=60, seed=0)
    choice = tune(lambda: mixlib.mlp(1, [8], 1), data, Recipe(method="input", alpha=1.0), seeds=[0, 1],
                  lrs=[1e-3, 1e-2], epochs=4, batch_size=16)
    worst = max(score for curve in choice.curves.values() for score in curve)
    assert choice.score == min(score for curve in choice.curves.values() for score in curve) < worst


def test_tune_refuses_what_it_sets_itself(noisy):
    with pytest.raises(ValueError, match="lr"):
        tune(_build, noisy, {"method": "erm", "lr": 1e-3}, seeds=[0])
    with pytest.raises(ValueError, match="epochs"):
        tune(_build, noisy, {"method": "erm"}, seeds=[0], eval_every=2)
    with pytest.raises(TypeError, match="lrs"):
        tune(_build, noisy, {"method": "erm"}, seeds=[0], lrs=[])
    with pytest.raises(ValueError, match="lrs"):
        tune(_build, noisy, {"method": "erm"}, seeds=[0], lrs=[0.0])
    with pytest.raises(TypeError, match="build"):
        tune(_build(), noisy, {"method": "erm"}, seeds=[0])
    with pytest.raises(ValueError, match="distinct"):
        tune(_build, noisy, {"method": "erm"}, seeds=[0, 0])
