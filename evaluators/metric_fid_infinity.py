"""FID-infinity (Chong & Forsyth 2020, "Effectively Unbiased FID and Inception Score and where to find them",
sec. 3): FID of n samples is biased by about b / n, so FIDs of random subsets of the generated features at several
sizes are fitted as a + b / n and the intercept a, FID at n = infinity, is reported.

No network time: the subsets are drawn from features already extracted for FID.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from evaluators.metric_fid import FidStats, as_float64, psd_sqrt

FID_INF_POINTS = 15  # the paper's 15 sizes
# smallest subset n/5 (the paper: 5,000 to 50,000, n/10): our n is often below the 2048 features, where FID of a
# small subset departs from linear in 1/n, so the sizes stay nearer n
FID_INF_MIN_FRACTION = 0.2
FID_INF_MIN_SAMPLES = 10  # n/5 >= 2 samples, and sizes enough for a line


@dataclass(frozen=True)
class FidInfinity:
    fid_inf: float  # intercept of the fit: FID extrapolated to n = infinity
    slope: float  # b in FID_n = a + b / n
    sizes: tuple[int, ...]
    fids: tuple[float, ...]


def fid_infinity_sizes(
    n: int, points: int = FID_INF_POINTS, min_fraction: float = FID_INF_MIN_FRACTION
) -> list[int]:
    """Subset sizes from max(2, n * min_fraction) to n, evenly spaced in 1/n (the fit's x; the paper spaces them
    evenly in n, which crowds its points at small 1/n), rounded and deduplicated."""
    if n < FID_INF_MIN_SAMPLES:
        raise ValueError(f"FID-infinity needs at least {FID_INF_MIN_SAMPLES} samples, got {n}")
    if points < 2 or not 0 < min_fraction < 1:
        raise ValueError(f"need points >= 2 and 0 < min_fraction < 1, got {points} and {min_fraction}")
    n_min = max(2, round(n * min_fraction))
    return sorted({round(1.0 / v) for v in np.linspace(1.0 / n_min, 1.0 / n, points)})


def fit_inverse_n(sizes: Sequence[int], fids: Sequence[float]) -> tuple[float, float]:
    """Least-squares fit FID = a + b / n: (a, b)."""
    slope, intercept = np.polyfit(1.0 / np.asarray(sizes, np.float64), np.asarray(fids, np.float64), 1)
    return float(intercept), float(slope)


def subset_fid(features: np.ndarray, ref: FidStats) -> Callable[[np.ndarray], float]:
    """FID of subsets ``features[idx]`` against ``ref`` (as ``fid_from_features_and_stats`` gives), with the F x F
    work done once for all subsets. For a centred subset X of m rows, Tr (S S_ref)^{1/2} is the sum of the square
    roots of the eigenvalues of X S_ref X^T / (m - 1) (m x m). With n <= F that is a block of the n x n matrix
    f S_ref f^T, centred; else Y = f S_ref^{1/2} once, and the Gram matrix of the centred Y rows or Y^T Y (the
    smaller). A subset then costs m^2 F or m F^2, not m F^2 + 2 F^3 and an F x F eigensolve per FID."""
    n, dim = features.shape
    # FID does not change when both sets move by one vector: centring on the features' mean keeps the products
    # small, so centring each subset within them cancels less
    shift = features.mean(axis=0)
    features, ref_mu = features - shift, ref.mu - shift
    gram = (features @ ref.sigma) @ features.T if n <= dim else None
    y = features @ psd_sqrt(ref.sigma) if gram is None else None
    tr_ref = float(np.trace(ref.sigma))

    def fid(idx: np.ndarray) -> float:
        x = features[idx]
        m = len(idx)
        mu = x.mean(axis=0)
        diff = mu - ref_mu
        tr_gen = float(((x - mu) ** 2).sum()) / (m - 1)
        if gram is not None:
            g = gram[np.ix_(idx, idx)]
            r = g.mean(axis=0)
            prod = g - r[:, None] - r[None, :] + r.mean()
        else:
            yc = y[idx] - y[idx].mean(axis=0)
            prod = yc @ yc.T if m <= dim else yc.T @ yc
        eig = np.linalg.eigvalsh((prod + prod.T) / (2 * (m - 1)))
        return float(diff @ diff + tr_gen + tr_ref - 2.0 * np.sqrt(np.clip(eig, 0, None)).sum())

    return fid


def fid_infinity_from_features(
    features: np.ndarray | torch.Tensor,
    ref: FidStats,
    sizes: Sequence[int] | None = None,
    seed: int = 0,
) -> FidInfinity:
    """FID-infinity of generated features against reference statistics: FID of one random subset (without
    replacement) per size in ``sizes`` (default ``fid_infinity_sizes(n)``), fitted as a + b / n."""
    f = as_float64(features)
    n = len(f)
    sizes = fid_infinity_sizes(n) if sizes is None else sorted(set(sizes))
    if len(sizes) < 2 or sizes[0] < 2 or sizes[-1] > n:
        raise ValueError(f"need at least 2 distinct subset sizes in [2, {n}], got {sizes}")
    rng = np.random.default_rng(seed)
    fid = subset_fid(f, ref)
    fids = [fid(rng.choice(n, s, replace=False)) for s in sizes]
    intercept, slope = fit_inverse_n(sizes, fids)
    return FidInfinity(intercept, slope, tuple(sizes), tuple(fids))
