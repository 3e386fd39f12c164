"""Was a trial's training loss still falling when it stopped? Epoch losses -> relative fall over the last fifth of
the epochs -> converged or not, recorded once per trial at the end of training."""

from __future__ import annotations

import math
from collections.abc import Sequence

from evaluators import names

TAIL_FRACTION = 0.2  # the last fifth of the epochs
# a loss still falling by more than 1 % over the last fifth of training would likely have gone on falling with more
# epochs, so the trial's numbers are of an unfinished model. A convention, not a measured noise floor: eae on digits
# (mlp-small, lr 1e-3 or 1e-4) still fell 10-17 % over the last fifth of 60 epochs, 0.5-3 % per epoch
CONVERGENCE_THRESHOLD = 0.01


def tail_epochs(epochs: int) -> int:
    """How many epochs the tail spans: a fifth of them, rounded, at least 1."""
    return max(1, round(epochs * TAIL_FRACTION))


def rel_improvement_tail(losses: Sequence[float]) -> float:
    """(loss[e0] - loss[last]) / |loss[e0]| with e0 = last - tail_epochs(len(losses)): positive while falling.
    NaN with fewer than 2 epochs or an endpoint unknown (NaN: a resumed run whose checkpoint had no history)."""
    if len(losses) < 2:
        return math.nan
    start, end = float(losses[-1 - tail_epochs(len(losses))]), float(losses[-1])
    if not (math.isfinite(start) and math.isfinite(end)):
        return math.nan
    if start == 0.0:
        return 0.0 if end == 0.0 else math.copysign(math.inf, start - end)
    return (start - end) / abs(start)


def convergence_metrics(
    losses: Sequence[float], threshold: float = CONVERGENCE_THRESHOLD
) -> dict[str, float]:
    """``train/rel_improvement_tail`` and ``train/converged`` (1.0: fell by at most ``threshold``, which includes a
    loss that rose; 0.0: still falling) from the per-epoch mean losses; {} when the run is too short to judge."""
    rel = rel_improvement_tail(losses)
    if math.isnan(rel):
        return {}
    return {names.TRAIN_REL_IMPROVEMENT_TAIL: rel, names.TRAIN_CONVERGED: float(rel <= threshold)}
