"""Draw-level intervals, p-values, equivalence tests and Holm's adjustment, against scipy."""

import math

import pytest
from scipy import stats

from mixlib.stats import equivalence_p, holm, over_draws, p_value, summarize


def test_over_draws_is_the_t_interval_of_the_draw_means():
    draws = [[0.01, 0.03, 0.02], [0.05, 0.04], [0.0, -0.01, 0.01, 0.0]]
    stat = over_draws(draws)
    means = [0.02, 0.045, 0.0]
    assert stat.n == 3 and math.isclose(stat.mean, sum(means) / 3)
    half = stats.t.ppf(0.975, 2) * stats.tstd(means) / math.sqrt(3)
    assert math.isclose(stat.ci95, half)
    with pytest.raises(ValueError, match="two data draws"):
        over_draws([[0.1, 0.2]])
    with pytest.raises(ValueError, match=r"differences\[1\] is empty"):
        over_draws([[0.1], []])


def test_p_value_matches_scipy_one_sample_t_test():
    values = [0.012, -0.004, 0.021, 0.008, 0.015, 0.003]
    assert math.isclose(p_value(summarize(values)), stats.ttest_1samp(values, 0.0).pvalue)


def test_equivalence_rejects_only_when_the_interval_sits_inside_the_margin():
    tight = summarize([0.001, -0.002, 0.0, 0.002, -0.001, 0.001, 0.0, -0.001])
    assert equivalence_p(tight, 0.01) < 0.001
    wide = summarize([0.03, -0.04, 0.02, -0.03, 0.05, -0.02])
    assert equivalence_p(wide, 0.01) > 0.3
    shifted = summarize([0.02, 0.021, 0.019, 0.02, 0.022])  # precise, but outside the margin
    assert equivalence_p(shifted, 0.01) > 0.99
    # TOST at level a agrees with the (1 - 2a) interval lying inside the margin
    values = [0.004, -0.003, 0.006, 0.001, -0.002, 0.005, 0.0, 0.003]
    s = summarize(values)
    half90 = stats.t.ppf(0.95, len(values) - 1) * s.std / math.sqrt(len(values))
    inside = -0.01 < s.mean - half90 and s.mean + half90 < 0.01
    assert (equivalence_p(s, 0.01) < 0.05) == inside
    with pytest.raises(ValueError, match="margin"):
        equivalence_p(s, 0)


def test_holm_step_down():
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.5})
    assert adjusted == pytest.approx({"a": 0.04, "b": 0.09, "c": 0.09, "d": 0.5})
    assert holm({"only": 0.02}) == {"only": 0.02}
    with pytest.raises(ValueError, match="p-value 'x'"):
        holm({"x": 1.5})


def test_non_inferiority_is_one_side_of_tost():
    from mixlib.stats import noninferiority_p
    s = summarize([0.004, -0.003, 0.006, 0.001, -0.002, 0.005, 0.0, 0.003])
    se = s.std / math.sqrt(s.n)
    assert math.isclose(noninferiority_p(s, 0.01), stats.t.sf((s.mean + 0.01) / se, s.n - 1))
    assert noninferiority_p(s, 0.01) <= equivalence_p(s, 0.01)
    behind = summarize([-0.03, -0.031, -0.029, -0.03])
    assert noninferiority_p(behind, 0.01) > 0.99
