"""FID-infinity (Chong & Forsyth 2020): the 1/n fit recovers planted lines, and on Gaussian features it removes
FID's known 1/n bias. Bounds come from planted answers or from sampling error, so they hold for any seed."""

import numpy as np
import pytest

from evaluators.metric_fid import FidStats, fid_from_features_and_stats, stats_from_features
from evaluators.metric_fid_infinity import (
    FID_INF_POINTS,
    fid_infinity_from_features,
    fid_infinity_sizes,
    fit_inverse_n,
    subset_fid,
)

SEEDS = (0, 1, 2)


def test_sizes_are_evenly_spaced_in_one_over_n():
    sizes = fid_infinity_sizes(10_000)
    assert len(sizes) == FID_INF_POINTS and sizes[0] == 2000 and sizes[-1] == 10_000
    steps = np.diff(1.0 / np.array(sizes))
    # rounding to integers moves 1/n by at most 0.5 / n^2
    assert np.allclose(steps, steps.mean(), atol=1.0 / sizes[0] ** 2)
    assert fid_infinity_sizes(10) == [2, 3, 4, 5, 6, 8, 10]  # small n: from 2, duplicates dropped
    with pytest.raises(ValueError, match="at least 10 samples"):
        fid_infinity_sizes(9)


@pytest.mark.parametrize("seed", SEEDS)
def test_fit_recovers_a_planted_line_within_its_noise(seed):
    a, b, delta = 7.5, 300.0, 0.05
    sizes = fid_infinity_sizes(5000)
    x = 1.0 / np.array(sizes)
    assert fit_inverse_n(sizes, a + b * x) == pytest.approx((a, b), rel=1e-9)
    noise = np.random.default_rng(seed).uniform(-delta, delta, len(sizes))
    intercept, _ = fit_inverse_n(sizes, a + b * x + noise)
    # the intercept is a fixed linear combination w of the FIDs (sum w = 1): noise within +-delta moves it by at
    # most delta * sum |w|
    design = np.stack([np.ones_like(x), x], 1)
    w = np.linalg.pinv(design)[0]
    assert abs(intercept - a) <= delta * np.abs(w).sum() + 1e-9


def test_largest_size_is_the_fid_of_all_features():
    rng = np.random.default_rng(5)
    f, ref = rng.standard_normal((300, 8)), stats_from_features(rng.standard_normal((500, 8)) + 0.3)
    res = fid_infinity_from_features(f, ref)
    assert res.sizes[-1] == 300 and res.fids[-1] == pytest.approx(fid_from_features_and_stats(f, ref), rel=1e-9)
    assert len(res.fids) == len(res.sizes) and res.sizes[0] == 60


@pytest.mark.parametrize("seed", SEEDS)
def test_fid_infinity_removes_the_one_over_n_bias_of_gaussian_features(seed):
    """n samples of N(0, I) against the exact N(0, I): true FID 0, and E FID_n = b / n with b = F + F(F+1)/4 to
    second order (||mean||^2 has mean F/n; Tr(S + I - 2 S^1/2) ~ Tr(E^2)/4 for S = I + E, whose Wishart mean is
    F(F+1)/n). Over 200 seeds (F = 32, n = 5000): n FID_n = 297 +- 18, n FID_inf = -1 +- 32, slope 297 +- 12."""
    dim, n = 32, 5000
    b = dim + dim * (dim + 1) / 4
    ref = FidStats(np.zeros(dim), np.eye(dim), 10**9)
    f = np.random.default_rng(seed).standard_normal((n, dim))
    fid_n = fid_from_features_and_stats(f, ref)
    res = fid_infinity_from_features(f, ref, seed=seed)
    assert fid_n * n == pytest.approx(b, rel=0.3)  # the planted bias is there (> 5 sd)
    assert res.slope == pytest.approx(b, rel=0.3)  # and the fit finds it (7 sd)
    assert abs(res.fid_inf) < fid_n  # closer to the true 0 than FID at all n samples
    assert abs(res.fid_inf) * n < 0.6 * b  # 5.5 sd


@pytest.mark.parametrize("n", [40, 400])  # n <= F: from f S f^T; n > F: from f S^1/2, subsets on both sides of F
def test_subset_fids_equal_plain_fids(n):
    rng = np.random.default_rng(n)
    dim = 64
    f = rng.standard_normal((n, dim)) @ rng.standard_normal((dim, dim)) / 8 + 0.5
    ref = stats_from_features(rng.standard_normal((300, dim)) * 1.5 + 0.2)
    fid = subset_fid(f, ref)
    for m in (2, 10, n // 2, n):
        idx = rng.choice(n, m, replace=False)
        assert fid(idx) == pytest.approx(fid_from_features_and_stats(f[idx], ref), rel=1e-8)


def test_bad_sizes_are_rejected():
    f, ref = np.zeros((20, 4)), FidStats(np.zeros(4), np.eye(4), 10)
    with pytest.raises(ValueError, match="at least 2 distinct subset sizes"):
        fid_infinity_from_features(f, ref, sizes=[5, 5])
    with pytest.raises(ValueError, match=r"in \[2, 20\]"):
        fid_infinity_from_features(f, ref, sizes=[5, 21])
