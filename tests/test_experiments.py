"""mixlib.experiments: seeded multi-method comparisons and their summaries."""

from __future__ import annotations

import math
import statistics

import pytest
import torch
from scipy import stats

import mixlib
from mixlib.experiments import PAPER_METHODS, Comparison, compare_methods
from mixlib.manifold import mlp
from mixlib.stats import Stat, summarize


def _data():
    return mixlib.two_moons(n=80, noise=0.1, seed=0)


def _build():
    return mlp(2, [16, 16], 2)


def _compare(**kwargs):
    kwargs.setdefault("seeds", (0, 1))
    return compare_methods(_build, _data(), epochs=3, batch_size=20, lr=1e-2, **kwargs)


def test_one_row_per_method_and_seed_with_test_accuracy():
    result = _compare()
    assert isinstance(result, Comparison)
    assert result.methods == list(PAPER_METHODS)
    assert [(r["method"], r["seed"]) for r in result.rows] == [
        (m, s) for m in PAPER_METHODS for s in (0, 1)
    ]
    assert result.metrics == ["test_accuracy", "test_nll", "test_ece"]
    assert all(0.0 <= r["test_accuracy"] <= 1.0 and r["test_nll"] > 0 and 0 <= r["test_ece"] <= 1
               for r in result.rows)
    assert set(result.models) == {(m, s) for m in PAPER_METHODS for s in (0, 1)}
    assert all(not model.training for model in result.models.values())
    assert len(result.histories) == 6


def test_results_are_repeatable_and_methods_share_initial_weights():
    first, second = _compare(), _compare()
    assert first.rows == second.rows
    # at a given seed every method starts from the same weights: check by rebuilding
    mixlib.seed_everything(1)
    init = torch.cat([p.ravel() for p in _build().parameters()])
    mixlib.seed_everything(1)
    again = torch.cat([p.ravel() for p in _build().parameters()])
    assert torch.equal(init, again)


def test_measure_adds_columns_and_is_called_on_each_trained_model():
    calls = []

    def measure(model, data):
        calls.append(model.training)
        return {"weight_norm": torch.cat([p.ravel() for p in model.parameters()]).norm(), "one": 1}

    result = _compare(measure=measure, seeds=(3,), keep_models=False)
    assert calls == [False, False, False]
    assert result.metrics == ["test_accuracy", "test_nll", "test_ece", "weight_norm", "one"]
    assert all(isinstance(r["weight_norm"], float) and r["one"] == 1.0 for r in result.rows)
    assert result.models == {}


def test_regression_reports_test_mse():
    data = mixlib.regression_1d(n=40, seed=0)
    result = compare_methods(lambda: mlp(1, [8], 1), data, seeds=(0,), epochs=2, batch_size=10,
                             methods={"ERM": {"method": "erm"}})
    assert result.metrics == ["test_mse"]
    assert result.rows[0]["test_mse"] > 0


def test_summarize_matches_the_textbook_formulas():
    xs = [0.91, 0.95, 0.93, 0.97]
    s = summarize(xs)
    assert s.n == 4
    assert math.isclose(s.mean, statistics.mean(xs))
    assert math.isclose(s.std, statistics.stdev(xs))
    assert math.isclose(s.ci95, stats.t.ppf(0.975, 3) * statistics.stdev(xs) / 2)
    assert s.format(2) == "0.94 ± 0.03"
    assert str(s) == s.format(3)
    one = summarize([2.0])
    assert one.mean == 2.0 and math.isnan(one.std) and math.isnan(one.ci95)
    with pytest.raises(ValueError, match="at least one"):
        summarize([])
    with pytest.raises(ValueError, match="finite"):
        summarize([1.0, float("nan")])
    with pytest.raises(ValueError, match="spread"):
        s.format(spread="sem")


def test_summary_values_and_table():
    result = _compare()
    summary = result.summary()
    for m in result.methods:
        vals = result.values(m, "test_accuracy")
        assert len(vals) == 2
        assert isinstance(summary[m]["test_accuracy"], Stat)
        assert math.isclose(summary[m]["test_accuracy"].mean, sum(vals) / 2)
    text = result.table(["test_accuracy"], labels={"test_accuracy": "test acc"}, digits=2)
    lines = text.splitlines()
    assert lines[0].split() == ["method", "test", "acc"]
    assert len(lines) == 2 + len(result.methods)
    assert all("±" in line for line in lines[1:-1])
    assert "over 2 seeds" in lines[-1]
    assert "95% CI" in result.table(spread="ci95")
    assert "Comparison(" in repr(result)
    with pytest.raises(ValueError, match="metric must be one of"):
        result.table(["nope"])
    with pytest.raises(ValueError, match="method must be one of"):
        result.values("nope", "test_accuracy")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"seeds": ()}, ValueError, "at least one seed"),
        ({"seeds": (0, 0)}, ValueError, "distinct"),
        ({"seeds": (-1,)}, ValueError, "seeds must be ints"),
        ({"methods": {}}, ValueError, "non-empty"),
        ({"methods": {"x": {"method": "cutmix"}}}, ValueError, "'method' in"),
        ({"methods": {"x": {"method": "erm", "seed": 3}}}, ValueError, "must not set"),
        ({"measure": 3}, TypeError, "measure must be callable"),
        ({"measure": lambda m, d: [1.0]}, TypeError, "mapping"),
        ({"measure": lambda m, d: {"seed": 1.0}}, ValueError, "reserved"),
        ({"method": "erm"}, ValueError, "compare_methods sets them"),
    ],
)
def test_bad_arguments_get_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        _compare(**kwargs)


def test_bad_build_and_data():
    with pytest.raises(TypeError, match="build must be a function"):
        compare_methods(_build(), _data())
    with pytest.raises(TypeError, match="data must be a mixlib Split"):
        compare_methods(_build, (torch.zeros(4, 2), torch.zeros(4)))
    with pytest.raises(TypeError, match="build\\(\\) must return an nn.Module"):
        compare_methods(lambda: "model", _data(), seeds=(0,))


def test_merge_puts_two_comparisons_in_one_table():
    erm = _compare(methods={"ERM": {"method": "erm"}}, seeds=(0,))
    mm = _compare(methods={"MM": {"method": "manifold", "alpha": 2.0}}, seeds=(0,))
    both = erm.merge(mm)
    assert both.methods == ["ERM", "MM"]
    assert set(both.models) == {("ERM", 0), ("MM", 0)}
    assert erm.methods == ["ERM"]  # the originals are unchanged
    with pytest.raises(ValueError, match="both comparisons"):
        both.merge(mm)
    with pytest.raises(TypeError, match="Comparison"):
        erm.merge([])


def test_a_method_may_be_a_recipe_and_trains_as_its_fields_do():
    from mixlib.recipe import Recipe

    as_fields = _compare(methods={"MM": {"method": "manifold", "alpha": 2.0, "layers": (1,)}})
    as_recipe = _compare(methods={"MM": Recipe(method="manifold", alpha=2.0, layers=(1,))})
    assert as_fields.rows == as_recipe.rows
    alone = _compare(methods={"MM": Recipe(method="manifold", alpha=2.0, layers=(1,))}, vectorize=False)
    assert as_recipe.values("MM", "test_nll") == pytest.approx(alone.values("MM", "test_nll"), rel=1e-4)
    with pytest.raises(ValueError, match="Recipe"):
        _compare(methods={"MM": "manifold"})


def test_temperature_control_returns_a_new_comparison_and_leaves_its_argument_alone():
    from mixlib.experiments import temperature_control

    runs = _compare()
    before = [dict(row) for row in runs.rows]
    scaled = temperature_control(runs, _data(), "ERM", "manifold mixup")
    assert runs.rows == before
    assert scaled.methods == ["ERM at manifold mixup's confidence"]
    assert scaled.values(scaled.methods[0], "test_accuracy") == runs.values("ERM", "test_accuracy")
    merged = runs.merge(scaled)
    assert merged.paired("ERM", "test_nll")[scaled.methods[0]].n == 2


def test_stat_interval_is_the_signed_mean_and_its_t_interval():
    stat = summarize([0.01, 0.03, 0.02, 0.04])
    assert stat.low == pytest.approx(stat.mean - stat.ci95) and stat.high == pytest.approx(stat.mean + stat.ci95)
    assert stat.interval() == f"{stat.mean:+.3f} [{stat.low:+.3f}, {stat.high:+.3f}]"
    assert stat.interval(1) == "+0.0 [+0.0, +0.0]"
    assert stat.excludes_zero() and not summarize([-1.0, 1.0, 0.5]).excludes_zero()
    with pytest.raises(ValueError, match="digits"):
        stat.interval(-1)


def test_target_only_mixing_is_an_arm_of_its_own_paired_with_the_others():
    data = mixlib.two_moons(n=60, seed=0)
    methods = {**PAPER_METHODS, "target-only mixing": {"method": "target", "alpha": 1.0}}
    kwargs = dict(seeds=[0, 1], methods=methods, epochs=3, batch_size=20)
    together = compare_methods(lambda: mlp(2, [8], 2), data, **kwargs)  # each method's seeds as one ensemble
    alone = compare_methods(lambda: mlp(2, [8], 2), data, vectorize=False, **kwargs)  # one fit call per seed
    assert together.methods == list(methods) and together.seeds("target-only mixing") == [0, 1]
    for seed in (0, 1):
        mine = together.models[("target-only mixing", seed)]
        for p, q in zip(mine.parameters(), alone.models[("target-only mixing", seed)].parameters(), strict=True):
            assert torch.allclose(p, q, atol=1e-5)
        # the same initial weights and mini-batches as the other arms, but a training of its own
        # (far beyond the 1e-5 by which an ensemble member may differ from its fit run)
        weights = torch.cat([p.detach().ravel() for p in mine.parameters()])
        for other in ("ERM", "input mixup"):
            theirs = torch.cat([p.detach().ravel() for p in together.models[(other, seed)].parameters()])
            assert (weights - theirs).abs().max() > 1e-2, f"target-only mixing trained like {other} at seed {seed}"
    assert set(together.paired("ERM", "test_nll")) == {"input mixup", "manifold mixup", "target-only mixing"}
