"""mixlib.tuning: each arm's learning rate and stopping epoch, chosen on held-out training data."""

from __future__ import annotations

import pytest
import torch

import mixlib
from mixlib.data import corrupt_labels
from mixlib.recipe import Recipe
from mixlib.tuning import crossfit_nll, holdout_split, tune, tune_and_score


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


@pytest.mark.parametrize("vectorize", [True, False], ids=["ensemble", "one fit per run"])
def test_tune_and_score_measures_each_seed_at_the_chosen_epoch(vectorize):
    clean = mixlib.two_moons(n=160, noise=0.2, seed=1)
    noisy = corrupt_labels(clean, 0.3, seed=1)
    lrs, seeds, epochs = [3e-3, 3e-2], [0, 1, 2], 8
    arm = {"method": "input", "alpha": 1.0}
    build = _build if vectorize else (lambda: torch.nn.Sequential(_build()))
    scored = tune_and_score(build, noisy, arm, seeds=seeds, lrs=lrs, epochs=epochs, clean_labels=clean.y_train,
                            batch_size=16, fraction=0.25, split_seed=3)
    # the choice is tune's choice: the same held-out curves, the same (lr, epoch)
    choice = tune(_build, noisy, arm, seeds=seeds, lrs=lrs, epochs=epochs, batch_size=16, fraction=0.25, split_seed=3)
    assert (scored.lr, scored.epoch) == (choice.lr, choice.epoch)
    for lr in lrs:
        assert scored.curves[lr] == pytest.approx(choice.curves[lr], abs=1.5 / 40)
    # each seed is measured as a separate run stopped at that epoch would be
    held = holdout_split(noisy, 0.25, seed=3)
    wrong_rows = held.y_train != holdout_split(clean, 0.25, seed=3).y_train
    assert wrong_rows.any()
    for k, seed in enumerate(seeds):
        mixlib.seed_everything(seed)
        model = _build()
        mixlib.fit(model, held.x_train, held.y_train, seed=seed, lr=scored.lr, epochs=scored.epoch, batch_size=16,
                   progress=False, **arm)
        with torch.no_grad():
            out = model(noisy.x_test)
            fitted = (model(held.x_train[wrong_rows]).argmax(1) == held.y_train[wrong_rows]).double().mean()
        assert scored.accuracy[k] == pytest.approx((out.argmax(1) == noisy.y_test).double().mean().item(), abs=1e-9)
        assert scored.nll[k] == pytest.approx(crossfit_nll(out, noisy.y_test, 3), rel=1e-4)
        assert scored.memorised[k] == pytest.approx(float(fitted), abs=1e-9)
        assert scored.trajectory[k][scored.epoch - 1] == scored.accuracy[k] and len(scored.trajectory[k]) == epochs


def test_tune_and_score_never_looks_at_the_test_labels():
    noisy = corrupt_labels(mixlib.two_moons(n=120, noise=0.2, seed=2), 0.3, seed=2)
    shuffled = type(noisy)(noisy.x_train, noisy.y_train, noisy.x_test, noisy.y_test.flip(0), noisy.num_classes)
    a, b = (tune_and_score(_build, d, {"method": "erm"}, seeds=[0, 1], lrs=[1e-2, 3e-2], epochs=5, batch_size=16)
            for d in (noisy, shuffled))
    assert (a.lr, a.epoch, a.curves) == (b.lr, b.epoch, b.curves) and a.accuracy != b.accuracy
    with pytest.raises(ValueError, match="clean_labels"):
        tune_and_score(_build, noisy, {"method": "erm"}, seeds=[0], clean_labels=noisy.y_train[:5])
    with pytest.raises(ValueError, match="sets \\['lr'\\] itself"):
        tune_and_score(_build, noisy, {"method": "erm", "lr": 1e-3}, seeds=[0])


def test_crossfit_nll_fits_each_half_on_the_other():
    g = torch.Generator().manual_seed(0)
    logits, labels = 3 * torch.randn(50, 4, generator=g), torch.randint(4, (50,), generator=g)
    order = torch.randperm(50, generator=torch.Generator().manual_seed(7))
    a, b = order[:25], order[25:]
    t_b, t_a = mixlib.metrics.temperature_for_nll(logits[b], labels[b]), mixlib.metrics.temperature_for_nll(
        logits[a], labels[a])
    expected = (mixlib.metrics.nll(logits[a] / t_b, labels[a]) + mixlib.metrics.nll(logits[b] / t_a, labels[b])) / 2
    assert crossfit_nll(logits, labels, 7) == pytest.approx(expected)
    # never better than the in-sample optimum, which fits the temperature on the rows it scores
    best = mixlib.metrics.nll(logits / mixlib.metrics.temperature_for_nll(logits, labels), labels)
    assert crossfit_nll(logits, labels, 7) >= best - 1e-12
