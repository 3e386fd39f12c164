"""A Pareto front with uncertainty, from configurations' summaries over seeds. Pure functions of numbers, no I/O.

Configuration i is dominated by j only where j's mean is better than i's on every chosen metric and j is significantly
better on at least one: Welch's t-test of the two summaries, its p adjusted by Benjamini-Hochberg over every
(pair, metric) test made, q < alpha. A configuration better by means alone but not significantly stays on the front:
with few seeds the data cannot tell the two apart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evaluators import names
from evaluators.metric_uncertainty import TIE_ALPHA, Summary, bh_adjust, welch_p_against

MODES = ("min", "max")


@dataclass(frozen=True)
class ParetoMark:
    """A configuration's place: ``mark`` (front, dominated, unplaced); for a dominated one, ``by`` (the index of the
    configuration with the strongest evidence), the ``metric`` (index) that decided and its BH-adjusted ``q``."""

    mark: str
    by: int | None = None
    metric: int | None = None
    q: float = math.nan


def _better(a: np.ndarray, b: np.ndarray, mode: str) -> np.ndarray:
    return a < b if mode == "min" else a > b


def pareto_marks(
    columns: Sequence[Sequence[Summary]], modes: Sequence[str], alpha: float = TIE_ALPHA
) -> list[ParetoMark]:
    """``columns[k][i]``: configuration i's summary on metric k, where ``modes[k]`` says which way is better.

    A configuration without a mean on every metric is unplaced: it neither dominates nor is dominated."""
    if len(columns) != len(modes) or not columns:
        raise ValueError(f"pareto_marks: {len(columns)} metric columns for {len(modes)} modes (need as many, >= 1)")
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise ValueError(f"pareto_marks: mode {bad[0]!r}; choose one of {', '.join(MODES)}")
    n = len(columns[0])
    if any(len(c) != n for c in columns):
        raise ValueError("pareto_marks: every metric column needs one summary per configuration")
    means = np.array([[s.mean for s in col] for col in columns], dtype=np.float64).reshape(len(columns), n)
    placed = ~np.isnan(means).any(axis=0)
    # beats[j, i]: j's mean is better than i's on every metric (both placed)
    beats = placed[:, None] & placed[None, :]
    for k, mode in enumerate(modes):
        beats &= _better(means[k][:, None], means[k][None, :], mode)
    tests: list[tuple[int, int, int]] = []  # (dominated candidate i, dominator j, metric k)
    p_values: list[float] = []
    for j in np.flatnonzero(beats.any(axis=1)):
        candidates = np.flatnonzero(beats[j])
        for k, col in enumerate(columns):
            p = welch_p_against([col[i] for i in candidates], col[j])
            tests += [(int(i), int(j), k) for i in candidates]
            p_values += p.tolist()
    strongest: dict[int, tuple[float, int, int]] = {}
    for (i, j, k), q in zip(tests, bh_adjust(p_values), strict=True):
        if q < alpha and (i not in strongest or q < strongest[i][0]):
            strongest[i] = (q, j, k)
    out = []
    for i in range(n):
        if not placed[i]:
            out.append(ParetoMark(names.PARETO_UNPLACED))
        elif i in strongest:
            q, j, k = strongest[i]
            out.append(ParetoMark(names.PARETO_DOMINATED, by=j, metric=k, q=q))
        else:
            out.append(ParetoMark(names.PARETO_FRONT))
    return out
