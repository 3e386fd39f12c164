"""Summaries over seeds, Welch's test against the best, outliers: planted answers and sampling-error bounds."""

import math

import numpy as np
import pytest
from scipy import stats

from evaluators.metric_uncertainty import (
    Summary,
    compare_to_best,
    format_summary,
    outlier_mask,
    summarize,
    summary_from_moments,
    t_half_width,
    welch_p,
    welch_p_against,
)


def test_summary_is_mean_sample_std_and_student_t_half_width():
    s = summarize([1.0, 2.0, 4.0])
    assert s.n == 3 and s.mean == pytest.approx(7 / 3)
    assert s.std == pytest.approx(np.std([1, 2, 4], ddof=1))
    assert s.ci95 == pytest.approx(4.302653 * s.std / math.sqrt(3), rel=1e-6)  # t_{0.975, 2}


def test_one_value_has_no_spread_and_no_value_has_no_mean():
    one = summarize([3.0, math.nan])
    assert (one.mean, one.n) == (3.0, 1) and math.isnan(one.std) and math.isnan(one.ci95)
    assert format_summary(one) == "3" and "±" not in format_summary(one)
    assert summarize([]).n == 0 and format_summary(summarize([])) == "-"
    assert format_summary(summarize([1.0, 3.0]), show_n=True).endswith("(n=2)")


def test_the_interval_covers_the_true_mean_at_its_nominal_rate(test_seed):
    # 2000 intervals from n = 3 normal draws: coverage within 4 binomial standard errors of 95%
    rng = np.random.default_rng(test_seed)
    hits = 0
    for _ in range(2000):
        s = summarize(rng.normal(5.0, 2.0, 3))
        hits += abs(s.mean - 5.0) <= s.ci95
    se = math.sqrt(0.95 * 0.05 / 2000)
    assert abs(hits / 2000 - 0.95) < 4 * se


def test_welch_from_summaries_matches_scipy_on_raw_values():
    a, b = [1.0, 2.0, 3.5, 2.2], [2.5, 3.9, 4.1]
    expected = stats.ttest_ind(a, b, equal_var=False).pvalue
    assert welch_p(summarize(a), summarize(b)) == pytest.approx(expected, rel=1e-9)
    assert math.isnan(welch_p(summarize([1.0]), summarize(b)))
    assert welch_p(Summary(1.0, 0.0, 0.0, 2), Summary(1.0, 0.0, 0.0, 3)) == 1.0
    assert welch_p(Summary(1.0, 0.0, 0.0, 2), Summary(2.0, 0.0, 0.0, 3)) == 0.0


def test_compare_to_best_marks_best_ties_worse_and_untested():
    best = summarize([1.0, 1.1, 0.9])
    tie = summarize([1.05, 1.2, 0.95])  # overlapping
    worse = summarize([5.0, 5.1, 4.9])  # 40 std away
    lone = summarize([0.5])  # the lowest mean, but one seed: it cannot be tested
    verdicts = [v for v, _ in compare_to_best([best, tie, worse, lone], "min")]
    assert verdicts == ["untested", "untested", "untested", "best"]
    verdicts = [v for v, _ in compare_to_best([best, tie, worse], "min")]
    assert verdicts == ["best", "tie", "worse"]
    assert [v for v, _ in compare_to_best([best, tie, worse], "max")][2] == "best"


def test_outliers_are_above_twice_the_median_and_never_a_lone_seed():
    assert outlier_mask([0.03, 0.028, 0.095]) == [False, False, True]
    assert outlier_mask([0.09]) == [False]
    assert outlier_mask([0.03, math.nan, 0.03]) == [False, False, False]


def test_summary_from_moments_and_half_width_edges():
    s = summary_from_moments(40.0, 3.0, 6)
    assert s.ci95 == pytest.approx(t_half_width(3.0, 6)) and s.n == 6
    assert math.isnan(summary_from_moments(40.0, 0.0, 1).ci95)


def test_welch_against_one_summary_at_once_is_welch_one_by_one(test_seed):
    rng = np.random.default_rng(test_seed)
    ref = summarize(rng.normal(size=4))
    rows = [summarize(rng.normal(rng.uniform(-1, 1), rng.uniform(0.1, 2), size=n)) for n in rng.integers(2, 9, 50)]
    rows += [summarize([1.0]), summarize([]), Summary(ref.mean, 0.0, 0.0, 3), Summary(ref.mean + 1, 0.0, 0.0, 3),
             Summary(ref.mean, math.nan, math.nan, 3)]
    got = welch_p_against(rows, ref)
    want = [welch_p(s, ref) for s in rows]
    assert got.tolist() == pytest.approx(want, rel=1e-12, nan_ok=True)
    assert np.isnan(welch_p_against(rows, summarize([1.0]))).all()  # a lone reference seed: nothing is tested
    flat = Summary(2.0, 0.0, 0.0, 2)
    assert welch_p_against([flat, Summary(3.0, 0.0, 0.0, 4)], flat).tolist() == [1.0, 0.0]


def test_bh_adjust_leaves_untested_p_out_of_the_family():
    from evaluators.metric_uncertainty import bh_adjust

    q = bh_adjust([0.01, math.nan, 0.04])
    assert math.isnan(q[1])
    np.testing.assert_allclose([q[0], q[2]], stats.false_discovery_control([0.01, 0.04], method="bh"))
    assert bh_adjust([]) == []
