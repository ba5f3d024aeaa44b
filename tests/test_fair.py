"""mixlib.fair: chapter 6's arms, the stored-results format, and the one rule for every verdict."""

from __future__ import annotations

import math

import pytest

from mixlib import fair
from mixlib.stats import holm, over_draws, p_value
from mixlib.tuning import Scored


def _scored(accuracy):
    return Scored(1e-3, 10, 0.5, list(accuracy), [0.5] * len(accuracy), None, {1e-3: [0.5]}, [])


def _results(shifts, spread, draws=5, seeds=10):
    """ERM at about 0.9; each arm adds its shift, moved per draw by up to +-spread, plus seed noise."""
    offsets = [1.0, -1.0, 0.5, -0.5, 0.0]
    base = {d: [0.9 + 0.002 * ((d * 7 + s * 3) % 5 - 2) for s in range(seeds)] for d in range(draws)}
    out = {"ERM": {d: _scored(base[d]) for d in range(draws)}}
    for name, shift in shifts.items():
        out[name] = {d: _scored([a + shift + spread[name] * offsets[d] + 0.001 * ((s % 3) - 1)
                                 for s, a in enumerate(base[d])]) for d in range(draws)}
    return out


def test_the_verdicts_follow_one_corrected_rule():
    results = _results({"big": 0.05, "none": 0.0, "noisy": 0.004}, {"big": 0.002, "none": 0.002, "noisy": 0.03})
    claims = {name: (name, "ERM") for name in ("big", "none", "noisy")}
    verdicts = fair.judge(results, claims)
    assert verdicts["big"].verdict == "higher"
    assert verdicts["none"].verdict == "same"
    assert verdicts["noisy"].verdict == "undecided"
    # the reported p-values are Holm-adjusted over both tests of every claim
    stat = fair.contrast(results, "big", "ERM")
    assert verdicts["big"].stat == stat
    raw = p_value(stat)
    assert verdicts["big"].p_difference >= raw and verdicts["big"].p_difference <= 6 * raw


def test_a_claim_that_passes_alone_can_fail_in_a_family():
    results = _results({"edge": 0.012}, {"edge": 0.011})
    alone = fair.judge(results, {"edge": ("edge", "ERM")})
    stat = alone["edge"].stat
    assert stat.low > 0  # its own 95 % interval excludes zero
    many = fair.judge({**results, **{f"copy{i}": results["ERM"] for i in range(8)}},
                      {"edge": ("edge", "ERM"), **{f"copy{i}": (f"copy{i}", "ERM") for i in range(8)}})
    assert many["edge"].p_difference > alone["edge"].p_difference


def test_contrast_pairs_by_seed_within_draws():
    results = _results({"a": 0.01}, {"a": 0.004})
    stat = fair.contrast(results, "a", "ERM")
    per_draw = [[x - y for x, y in zip(results["a"][d].accuracy, results["ERM"][d].accuracy, strict=True)]
                for d in range(5)]
    assert stat == over_draws(per_draw) and stat.n == 5
    with pytest.raises(KeyError, match="no results for 'b'"):
        fair.contrast(results, "b", "ERM")


def test_label_smoothing_matches_the_mean_largest_entry():
    # Beta(2, 2): E[max(l, 1 - l)] = 1/2 + 2 * int_0^{1/2} (1/2 - l) 6 l (1 - l) dl = 11/16
    assert fair.largest_entry_smoothing(2.0) == pytest.approx((1 - 11 / 16) * 10 / 9)
    assert fair.largest_entry_smoothing(1.0) == pytest.approx((1 - 3 / 4) * 10 / 9)


def test_holm_is_what_judge_uses():
    assert holm({"a": 0.01, "b": 0.2}) == {"a": 0.02, "b": 0.2}


def test_results_round_trip(tmp_path, monkeypatch):
    monkeypatch.setattr(fair, "results_path", lambda name: tmp_path / f"{name}.json")
    results = {"ERM": {0: _scored([0.9, 0.8]), 3: _scored([0.7, 0.6])}}
    fair.save("x", results, {"note": 1})
    back, meta = fair.load("x")
    assert back == results and meta["note"] == 1 and "torch" in meta
    with pytest.raises(FileNotFoundError, match="make results"):
        fair.load("missing")


def test_every_arm_is_a_valid_recipe():
    import mixlib

    model = fair.build()
    for name, spec in fair.ARMS.items():
        recipe = mixlib.recipe.make_recipe(model, num_classes=10, **spec)
        assert recipe.method in ("erm", "input", "manifold", "target"), name
    assert math.isclose(fair.ARMS["label smoothing 0.35"]["label_smoothing"], fair.largest_entry_smoothing(2.0))
    with pytest.raises(ValueError, match="unknown arm"):
        fair.run_arm("nope", *fair.noisy_digits(0))


def test_a_non_inferiority_claim_joins_the_family():
    results = _results({"close": -0.002, "behind": -0.03}, {"close": 0.001, "behind": 0.002})
    plain = fair.judge(results, {"close": ("close", "ERM")})
    both = fair.judge(results, {"close": ("close", "ERM")},
                      at_least={"close not worse": ("close", "ERM"), "behind not worse": ("behind", "ERM")})
    assert both["close not worse"].verdict == "not worse" and math.isnan(both["close not worse"].p_difference)
    assert both["behind not worse"].verdict == "undecided"
    assert both["close"].p_same >= plain["close"].p_same  # a larger family, a stricter correction
