"""Chapter 7's experiment (:mod:`mixlib.fair_routes`), the realness proxy and simultaneous intervals."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats as sstats

from mixlib import fair, fair_routes, routes
from mixlib.flatness import chord_deviation
from mixlib.stats import simultaneous, summarize


def test_the_arms_are_chapter_6s_four_the_two_sweeps_and_the_bent_mixup():
    names = list(fair_routes.ARMS)
    assert names[:4] == ["ERM", "input mixup", "manifold mixup", "last layer"]
    for name in names[:4]:
        assert fair_routes.ARMS[name] == ("recipe", fair.ARMS[name])
    assert [fair_routes.ARMS[n] for n in names if n.startswith("reconstruction")] == [
        ("reconstruct", w) for w in fair_routes.WEIGHTS]
    assert [fair_routes.ARMS[n] for n in names if n.startswith("linearisation")] == [
        ("linearize", w) for w in fair_routes.WEIGHTS]
    assert fair_routes.ARMS[fair_routes.BENT] == ("interpolate", 1.0)
    assert len(fair_routes.WEIGHTS) >= 3


@pytest.fixture(scope="module")
def setup():
    torch.set_num_threads(1)
    return fair_routes.prepare(0)


def test_setup_trajectories_follow_the_fitting_rows(setup):
    from mixlib.tuning import holdout_split
    fitting = holdout_split(setup.data)
    upright = fair_routes.ANGLES.index(0)
    assert setup.trajectories.shape == (len(fitting.x_train), len(fair_routes.ANGLES), 64)
    assert torch.allclose(setup.trajectories[:, upright], fitting.x_train, atol=1e-6)
    assert setup.interpolator.size == len(fair.SEEDS)


def test_unknown_arms_and_a_wrong_interpolator_order_are_refused(setup):
    with pytest.raises(ValueError, match="unknown arm"):
        fair_routes.checkpoints("dropout", setup, 1e-3, 1)
    with pytest.raises(ValueError, match="once per learning rate"):
        fair_routes._training(fair_routes.BENT, setup, list(reversed(fair.SEEDS)))


def test_measure_is_the_flatness_functions_of_each_model(setup):
    models = fair_routes.checkpoints("reconstruction β=1", setup, 1e-3, 1)
    measured = fair_routes.measure(models[:2], setup, n_pairs=50)
    assert set(measured) == set(fair_routes.MEASURES) and all(len(v) == 2 for v in measured.values())
    pairs = routes.chord_pairs(len(setup.data.x_test), 50)
    x, x2 = setup.data.x_test[pairs[:, 0]], setup.data.x_test[pairs[:, 1]]
    for k, model in enumerate(models[:2]):
        with torch.no_grad():
            assert measured["bend"][k] == pytest.approx(float(chord_deviation(model.features, x, x2).mean()), rel=1e-5)
            assert measured["logit bend"][k] == pytest.approx(float(chord_deviation(model, x, x2).mean()), rel=1e-5)
        head, rest, full = (measured[m][k] for m in ("head bend", "rest bend", "bend"))
        assert math.hypot(head, rest) <= full * (1 + 1e-5) and full <= (head + rest) * (1 + 1e-5)
        assert 0 < measured["memorised"][k] < 1 and 0 < measured["accuracy"][k] <= 1


def test_simultaneous_intervals_are_bonferroni_t_intervals():
    stat = summarize([0.1, 0.3, 0.2, 0.5, 0.4])
    assert simultaneous(stat, 1).ci95 == pytest.approx(stat.ci95)
    wide = simultaneous(stat, 10)
    half = sstats.t.ppf(1 - 0.05 / 20, 4) * stat.std / math.sqrt(5)
    assert wide.ci95 == pytest.approx(half) and wide.ci95 > stat.ci95 and wide.mean == stat.mean
    for bad in (0, 2.0, True):
        with pytest.raises(ValueError, match="family"):
            simultaneous(stat, bad)
    with pytest.raises(ValueError, match="level"):
        simultaneous(stat, 3, level=1.5)


def test_tell_apart_is_chance_for_one_distribution_and_high_for_a_blur():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(200, 16, generator=g), torch.rand(200, 16, generator=g)
    assert abs(routes.tell_apart(a, b) - 0.5) < 0.1
    smooth = (b + b.roll(1, dims=1) + b.roll(-1, dims=1)) / 3  # neighbouring "pixels" averaged
    assert routes.tell_apart(a, smooth) > 0.9
    with pytest.raises(ValueError, match="same d"):
        routes.tell_apart(a, b[:, :8])
    with pytest.raises(ValueError, match="folds"):
        routes.tell_apart(a[:3], b, folds=5)


# ------------------------------------------------------------------------------------------------
# The stored results chapter 7 reads are what the code produces today (``make results`` rewrites them).

STORED, META = fair.load("fair_routes")
CHAPTER_6, _ = fair.load("fair_baseline")


def test_the_stored_routes_follow_the_current_protocol():
    assert META["draws"] == list(fair_routes.DRAWS) and META["seeds"] == list(fair.SEEDS)
    assert META["lrs"] == list(fair.LRS) and META["epochs"] == fair.EPOCHS and META["noise"] == fair.NOISE
    assert META["weights"] == list(fair_routes.WEIGHTS) and META["angles"] == list(fair_routes.ANGLES)
    assert set(STORED["scored"]) == {*fair_routes.ARMS, fair_routes.NOT_STOPPED}
    assert set(STORED["measures"]) == {*fair_routes.ARMS, fair_routes.NOT_STOPPED, "untrained"}
    assert set(STORED["matched"]) == {*fair_routes.ARMS, "untrained"}
    for by_draw in (*STORED["scored"].values(), *STORED["measures"].values(), *STORED["matched"].values()):
        assert set(by_draw) == set(fair_routes.DRAWS)


@pytest.mark.parametrize("arm", ["ERM", "input mixup", "manifold mixup", "last layer"])
def test_chapter_6s_arms_are_the_numbers_chapter_6_stored(arm):
    for draw in fair_routes.DRAWS:
        here, there = STORED["scored"][arm][draw], CHAPTER_6[arm][draw]
        assert (here.lr, here.epoch, here.accuracy, here.nll, here.memorised) == (
            there.lr, there.epoch, there.accuracy, there.nll, there.memorised)


def test_every_stored_model_was_measured_where_it_was_scored():
    for arm, by_draw in STORED["scored"].items():
        for draw, scored in by_draw.items():
            measured = STORED["measures"][arm][draw]
            assert measured["accuracy"] == scored.accuracy and measured["memorised"] == scored.memorised


@pytest.fixture(scope="module")
def last_draw():
    torch.set_num_threads(1)
    return fair_routes.prepare(fair_routes.DRAWS[-1])


@pytest.mark.parametrize("arm", ["reconstruction β=1", "linearisation γ=1", fair_routes.BENT])
def test_the_last_draw_of_each_route_reruns_to_the_stored_numbers(arm, last_draw):
    fresh, stored = fair_routes.run_arm(arm, last_draw), STORED["scored"][arm][last_draw.draw]
    assert (fresh.lr, fresh.epoch) == (stored.lr, stored.epoch)
    assert fresh.accuracy == pytest.approx(stored.accuracy, abs=1e-12)
    assert fresh.nll == pytest.approx(stored.nll, rel=1e-6)
    assert fresh.memorised == pytest.approx(stored.memorised, abs=1e-12)


@pytest.mark.parametrize("arm", [*fair_routes.ARMS, fair_routes.NOT_STOPPED])
def test_every_arm_remeasures_to_the_stored_flatness(arm, last_draw):
    draw = last_draw.draw
    if arm == fair_routes.NOT_STOPPED:
        fresh = fair_routes.not_stopped(last_draw, STORED["scored"]["ERM"][draw])[1]
    else:
        scored = STORED["scored"][arm][draw]
        fresh = fair_routes.measure(fair_routes.checkpoints(arm, last_draw, scored.lr, scored.epoch), last_draw)
    for measure in fair_routes.MEASURES:
        assert fresh[measure] == pytest.approx(STORED["measures"][arm][draw][measure], rel=1e-6, abs=1e-9), measure


@pytest.mark.parametrize("arm", ["manifold mixup", "linearisation γ=10"])
def test_the_matched_budget_remeasures_to_the_stored_flatness(arm, last_draw):
    erm = STORED["scored"]["ERM"][last_draw.draw]
    fresh = fair_routes.measure(fair_routes.matched(arm, last_draw, erm.lr, erm.epoch), last_draw)
    for measure in fair_routes.MEASURES:
        assert fresh[measure] == pytest.approx(STORED["matched"][arm][last_draw.draw][measure], rel=1e-6, abs=1e-9)


def test_a_tuned_weight_is_the_best_held_out_arm_of_each_draw():
    def scored(heldout):
        return fair.Scored(1e-3, 1, heldout, [heldout], [0.0], None, {}, [])

    table = {"a": {0: scored(0.5), 1: scored(0.7)}, "b": {0: scored(0.6), 1: scored(0.7)}}
    chosen = fair_routes.tuned_weight(table, ["a", "b"])
    assert chosen[0] is table["b"][0] and chosen[1] is table["a"][1]  # a tie goes to the first arm


def test_the_top_direction_of_a_class_spread_along_the_step():
    g = torch.Generator().manual_seed(0)
    step = torch.randn(8, generator=g)
    labels = torch.arange(60) % 3
    along = torch.randn(60, 1, generator=g) * step + 0.01 * torch.randn(60, 8, generator=g)
    share, cosine = fair_routes._top_direction(along, step.expand(60, 8), labels)
    assert share > 0.99 and cosine > 0.99
    round_cloud = torch.randn(600, 8, generator=g)
    share, _ = fair_routes._top_direction(round_cloud, step.expand(600, 8), torch.arange(600) % 3)
    assert share < 0.3
