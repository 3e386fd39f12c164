"""The Pareto front with uncertainty on planted configurations: a planted dominated one, a planted one worse by means
but not significantly (it stays on the front), directions, unplaced and untested configurations, the BH family."""

import math

import numpy as np
import pytest

from evaluators import names
from evaluators.metric_pareto import pareto_marks
from evaluators.metric_uncertainty import Summary, bh_adjust, summarize, t_half_width, welch_p

FRONT, DOMINATED, UNPLACED = names.PARETO_FRONT, names.PARETO_DOMINATED, names.PARETO_UNPLACED


def s(mean: float, std: float, n: int) -> Summary:
    return Summary(mean, std, t_half_width(std, n), n)


def test_a_planted_dominated_configuration_is_marked_with_its_dominator():
    # recon (lower better) and KID (lower better): A and B trade off, C is far worse than A on both
    recon = [s(1.0, 0.1, 5), s(2.0, 0.1, 5), s(3.0, 0.1, 5)]
    kid = [s(1.0, 0.1, 5), s(0.5, 0.1, 5), s(2.0, 0.1, 5)]
    marks = pareto_marks([recon, kid], ["min", "min"])
    assert [m.mark for m in marks] == [FRONT, FRONT, DOMINATED]
    assert marks[2].by == 0 and marks[2].q < 0.05 and marks[2].metric in (0, 1)


def test_a_configuration_worse_by_means_but_not_significantly_stays_on_the_front():
    recon = [s(1.0, 0.1, 5), s(1.05, 0.5, 3)]
    kid = [s(1.0, 0.1, 5), s(1.05, 0.5, 3)]
    assert welch_p(recon[0], recon[1]) > 0.5  # planted: far from significant
    assert [m.mark for m in pareto_marks([recon, kid], ["min", "min"])] == [FRONT, FRONT]


def test_better_on_one_metric_only_is_never_domination_however_significant():
    recon = [s(1.0, 0.01, 10), s(5.0, 0.01, 10)]
    kid = [s(2.0, 0.01, 10), s(1.0, 0.01, 10)]
    assert [m.mark for m in pareto_marks([recon, kid], ["min", "min"])] == [FRONT, FRONT]


def test_direction_per_metric_decides_which_mean_is_better():
    recon = [s(1.0, 0.1, 5), s(3.0, 0.1, 5)]
    cosine = [s(0.9, 0.01, 5), s(0.1, 0.01, 5)]  # higher is better
    assert [m.mark for m in pareto_marks([recon, cosine], ["min", "max"])] == [FRONT, DOMINATED]
    assert [m.mark for m in pareto_marks([recon, cosine], ["min", "min"])] == [FRONT, FRONT]


def test_a_configuration_without_a_value_is_unplaced_and_one_seed_cannot_be_dominated():
    recon = [s(1.0, 0.1, 5), Summary(math.nan, math.nan, math.nan, 0), Summary(9.0, math.nan, math.nan, 1)]
    kid = [s(1.0, 0.1, 5), s(0.1, 0.1, 5), Summary(9.0, math.nan, math.nan, 1)]
    marks = pareto_marks([recon, kid], ["min", "min"])
    assert [m.mark for m in marks] == [FRONT, UNPLACED, FRONT]  # the lone seed: untested, so not dominated


def test_significance_is_judged_by_the_bh_adjusted_p_over_every_test_made():
    # one candidate pair, two metrics: raw p just under 5% on the first, far from it on the second
    a_recon, b_recon = s(1.0, 0.1, 4), s(1.2, 0.1, 4)
    a_kid, b_kid = s(1.0, 1.0, 4), s(1.01, 1.0, 4)
    p_recon, p_kid = welch_p(a_recon, b_recon), welch_p(a_kid, b_kid)
    q_recon = bh_adjust([p_recon, p_kid])[0]
    assert p_recon < 0.05 <= q_recon  # planted: significant raw, not after the adjustment
    marks = pareto_marks([[a_recon, b_recon], [a_kid, b_kid]], ["min", "min"])
    assert [m.mark for m in marks] == [FRONT, FRONT]
    # a much clearer first metric survives the adjustment
    marks = pareto_marks([[a_recon, s(2.0, 0.1, 4)], [a_kid, b_kid]], ["min", "min"])
    assert [m.mark for m in marks] == [FRONT, DOMINATED] and marks[1].metric == 0


def test_three_metrics_and_seed_draws(test_seed):
    # seeds drawn from the stream: A and B trade recon for KID by >= 5 standard deviations, C is >= 20 worse than
    # either on every metric (the third metric ties A and B, which cannot reverse the first two)
    rng = np.random.default_rng(test_seed)
    truth = {"A": (1.0, 1.0, 1.0), "B": (2.0, 0.5, 1.0), "C": (4.0, 3.0, 3.0)}
    columns = [[summarize(rng.normal(t[k], 0.1, 5)) for t in truth.values()] for k in range(3)]
    marks = dict(zip(truth, pareto_marks(columns, ["min", "min", "min"]), strict=True))
    assert marks["C"].mark == DOMINATED and marks["C"].by in (0, 1)
    assert marks["A"].mark == marks["B"].mark == FRONT


def test_bad_arguments_name_what_is_wrong():
    with pytest.raises(ValueError, match="mode 'up'"):
        pareto_marks([[s(1, 1, 2)]], ["up"])
    with pytest.raises(ValueError, match="2 metric columns for 1 modes"):
        pareto_marks([[s(1, 1, 2)], [s(1, 1, 2)]], ["min"])
