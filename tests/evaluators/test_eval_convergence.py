"""The convergence rule on planted loss curves: still falling, flat, rising, short and partly unknown histories."""

import math

import numpy as np
import pytest

from evaluators import names
from evaluators.metric_convergence import (
    CONVERGENCE_THRESHOLD,
    convergence_metrics,
    rel_improvement_tail,
    tail_epochs,
)


def test_tail_is_a_fifth_of_the_epochs_and_at_least_one():
    assert [tail_epochs(e) for e in (2, 3, 4, 7, 8, 10, 12, 13, 100)] == [1, 1, 1, 1, 2, 2, 2, 3, 20]


def test_a_still_falling_curve_is_not_converged():
    losses = 1.0 / np.arange(1, 21)  # 1/epoch: falls by (1/16 - 1/20) / (1/16) = 20 % over the last 4 epochs
    m = convergence_metrics(losses)
    assert m[names.TRAIN_REL_IMPROVEMENT_TAIL] == pytest.approx(0.2)
    assert m[names.TRAIN_CONVERGED] == 0.0


def test_a_flat_curve_is_converged():
    losses = [5.0, 2.0, 1.0, *([0.5] * 17)]
    assert convergence_metrics(losses) == {names.TRAIN_REL_IMPROVEMENT_TAIL: 0.0, names.TRAIN_CONVERGED: 1.0}
    # a fall just below the threshold still counts as converged, just above does not
    assert convergence_metrics([1.0, 1.0 - 0.9 * CONVERGENCE_THRESHOLD])[names.TRAIN_CONVERGED] == 1.0
    assert convergence_metrics([1.0, 1.0 - 1.1 * CONVERGENCE_THRESHOLD])[names.TRAIN_CONVERGED] == 0.0


def test_a_rising_loss_is_not_still_falling():
    m = convergence_metrics([1.0, 0.5, 0.6])
    assert m[names.TRAIN_REL_IMPROVEMENT_TAIL] == pytest.approx(-0.2) and m[names.TRAIN_CONVERGED] == 1.0


def test_negative_losses_use_the_magnitude():
    assert rel_improvement_tail([-1.0, -2.0]) == pytest.approx(1.0)  # fell from -1 to -2: still falling


def test_too_short_or_unknown_runs_are_not_judged():
    assert convergence_metrics([]) == {} and convergence_metrics([0.3]) == {}
    assert math.isnan(rel_improvement_tail([0.3]))
    # resumed from a checkpoint without history: judged only when the tail's first epoch is known
    assert convergence_metrics([math.nan, math.nan, math.nan, math.nan, 0.5]) == {}
    assert convergence_metrics([math.nan, math.nan, math.nan, 0.5, 0.5])[names.TRAIN_CONVERGED] == 1.0


def test_zero_start():
    assert rel_improvement_tail([0.0, 0.0]) == 0.0
    assert rel_improvement_tail([0.0, -1.0]) == math.inf
