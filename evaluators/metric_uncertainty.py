"""Uncertainty of a figure over seeds: summaries (mean, std, Student-t 95% half-width, n), Welch's test against the
best configuration from summaries alone, and outlier seeds. Pure functions of numbers, no I/O."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
TIE_ALPHA = 0.05  # Welch's t-test level at which a configuration counts as distinguishable from the best
OUTLIER_FACTOR = 2.0  # a seed above this multiple of its configuration's median (recon MSE) is an outlier


@dataclass(frozen=True)
class Summary:
    """Mean, sample std (ddof 1), Student-t half-width of the 95% interval of the mean, and n; NaN where undefined
    (std and ci95 need n >= 2, the mean n >= 1)."""

    mean: float
    std: float
    ci95: float
    n: int


def t_half_width(std: float, n: int, confidence: float = CONFIDENCE) -> float:
    """Half-width of the two-sided Student-t interval of a mean of n values with sample std ``std``."""
    if n < 2 or math.isnan(std):
        return math.nan
    return float(stats.t.ppf(0.5 + confidence / 2, n - 1) * std / math.sqrt(n))


def summarize(values: Iterable[float]) -> Summary:
    """Summary of the finite values (NaN and inf are dropped, so a missing seed never poisons the mean)."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    n = len(x)
    if n == 0:
        return Summary(math.nan, math.nan, math.nan, 0)
    std = float(x.std(ddof=1)) if n > 1 else math.nan
    return Summary(float(x.mean()), std, t_half_width(std, n), n)


def summary_from_moments(mean: float, std: float, n: int) -> Summary:
    """A Summary of a statistic given as mean and std over n values (cross-run pairs, say)."""
    std = std if n > 1 else math.nan
    return Summary(mean, std, t_half_width(std, n), n)


def welch_p(a: Summary, b: Summary) -> float:
    """Two-sided p-value of Welch's t-test that a and b have equal means, from their summaries; NaN if either n < 2."""
    if a.n < 2 or b.n < 2 or math.isnan(a.std) or math.isnan(b.std):
        return math.nan
    va, vb = a.std**2 / a.n, b.std**2 / b.n
    if va + vb == 0:  # both without spread: equal means are the same, different ones are not
        return 1.0 if a.mean == b.mean else 0.0
    t = (a.mean - b.mean) / math.sqrt(va + vb)
    dof = (va + vb) ** 2 / ((va**2 / (a.n - 1) if va else 0.0) + (vb**2 / (b.n - 1) if vb else 0.0))
    return float(2 * stats.t.sf(abs(t), dof))


def best_index(summaries: Sequence[Summary], mode: str = "min") -> int | None:
    """Index of the best mean (lowest for mode 'min'), or None when no summary has a mean."""
    means = [(s.mean, i) for i, s in enumerate(summaries) if not math.isnan(s.mean)]
    if not means:
        return None
    return (min(means) if mode == "min" else max(means))[1]


def welch_p_against(summaries: Sequence[Summary], ref: Summary) -> np.ndarray:
    """welch_p(s, ref) for every s at once (a leaderboard compares thousands of rows to its best)."""
    mean, std, n = (np.array([getattr(s, k) for s in summaries], dtype=np.float64) for k in ("mean", "std", "n"))
    p = np.full(len(summaries), np.nan)
    if ref.n < 2 or math.isnan(ref.std):
        return p
    vb = ref.std**2 / ref.n
    with np.errstate(divide="ignore", invalid="ignore"):
        va = std**2 / n
        total = va + vb
        ok = (n >= 2) & ~np.isnan(std)
        flat = ok & (total == 0)  # both without spread: equal means are the same, different ones are not
        p[flat] = np.where(mean[flat] == ref.mean, 1.0, 0.0)
        spread = ok & (total > 0)
        t = (mean - ref.mean) / np.sqrt(total)
        dof = total**2 / (np.where(va > 0, va**2 / (n - 1), 0.0) + (vb**2 / (ref.n - 1) if vb else 0.0))
        p[spread] = 2 * stats.t.sf(np.abs(t[spread]), dof[spread])
    return p


def compare_to_best(summaries: Sequence[Summary], mode: str = "min", alpha: float = TIE_ALPHA) -> list[tuple[str, float]]:
    """Per summary: ('best' | 'tie' | 'worse' | 'untested', Welch p against the best). 'tie': indistinguishable from
    the best at level alpha; 'untested': fewer than 2 values on either side, so no test is possible."""
    best = best_index(summaries, mode)
    if best is None:
        return [("untested", math.nan)] * len(summaries)
    out: list[tuple[str, float]] = []
    for i, (s, p) in enumerate(zip(summaries, welch_p_against(summaries, summaries[best]).tolist(), strict=True)):
        if math.isnan(s.mean):
            out.append(("untested", math.nan))
        elif i == best:
            out.append(("best", 1.0))
        else:
            out.append(("untested" if math.isnan(p) else "tie" if p >= alpha else "worse", p))
    return out


def bh_adjust(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (q) of a family of tests; an untested (NaN) p stays NaN and is not
    counted in the family. q < alpha across the family keeps the false discovery rate at alpha."""
    tested = [i for i, p in enumerate(p_values) if not math.isnan(p)]
    q = [math.nan] * len(p_values)
    if tested:
        for i, v in zip(tested, stats.false_discovery_control([p_values[i] for i in tested], method="bh"), strict=True):
            q[i] = float(v)
    return q


def outlier_mask(values: Sequence[float], factor: float = OUTLIER_FACTOR) -> list[bool]:
    """Values above ``factor`` times the median of the finite values (a positive error metric such as recon MSE);
    needs at least 2 finite values, so a lone seed is never an outlier."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if len(finite) < 2:
        return [False] * len(values)
    median = float(np.median(finite))
    return [v is not None and math.isfinite(v) and v > factor * median for v in values]


def format_summary(s: Summary, digits: int = 4, show_n: bool = False) -> str:
    """'mean ± ci95' (with ' (n=k)' when asked); a single value shows no ±, never '± 0'; no value shows '-'."""
    if s.n == 0 or math.isnan(s.mean):
        return "-"
    text = f"{s.mean:.{digits}g}" if math.isnan(s.ci95) else f"{s.mean:.{digits}g} ± {s.ci95:.2g}"
    return f"{text} (n={s.n})" if show_n else text


@dataclass(frozen=True)
class Difference:
    """b - a from two summaries: the difference of means, the Welch-Satterthwaite 95% half-width and Welch's
    two-sided p (NaN where either side has fewer than 2 values)."""

    delta: float
    ci95: float
    p: float


def welch_difference(a: Summary, b: Summary, confidence: float = CONFIDENCE) -> Difference:
    delta = b.mean - a.mean
    p = welch_p(a, b)
    if math.isnan(p):
        return Difference(delta, math.nan, math.nan)
    va, vb = a.std**2 / a.n, b.std**2 / b.n
    if va + vb == 0:
        return Difference(delta, 0.0, p)
    dof = (va + vb) ** 2 / ((va**2 / (a.n - 1) if va else 0.0) + (vb**2 / (b.n - 1) if vb else 0.0))
    return Difference(delta, float(stats.t.ppf(0.5 + confidence / 2, dof) * math.sqrt(va + vb)), p)
