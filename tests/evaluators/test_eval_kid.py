"""KID on planted feature sets: torch-fidelity's own numbers, ~0 within its std for one distribution, far from 0
for a shifted one. Bounds come from the estimator's sampling error, so they hold for any seed."""

import numpy as np
import pytest
import torch
from torch_fidelity.metric_kid import kid_features_to_metric

from evaluators.metric_kid import KID_SUBSET_SIZE, kid_from_features, kid_subset_size

SEEDS = (0, 1, 2)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def gaussian(rng, n, dim=16, shift=0.0):
    return rng.standard_normal((n, dim)) + shift


@pytest.mark.parametrize(("n1", "n2", "size"), [(300, 400, 150), (120, 50, 50)])
def test_kid_equals_torch_fidelity_on_the_same_features(n1, n2, size):
    rng = np.random.default_rng(n1)
    a, b = gaussian(rng, n1), np.abs(gaussian(rng, n2, shift=0.3))
    tf = kid_features_to_metric(
        torch.from_numpy(a), torch.from_numpy(b), kid_subsets=20, kid_subset_size=size, rng_seed=7, verbose=False
    )
    ours = kid_from_features(a, b, subsets=20, subset_size=size, seed=7, dtype=torch.float64)
    assert ours.kid_mean == pytest.approx(tf["kernel_inception_distance_mean"], rel=1e-10, abs=1e-14)
    assert ours.kid_std == pytest.approx(tf["kernel_inception_distance_std"], rel=1e-10, abs=1e-14)
    assert (ours.subsets, ours.subset_size) == (20, size)
    # float32 kernels (the default, as torch-fidelity's float32 Inception features give) with float64 sums
    f32 = kid_from_features(a, b, subsets=20, subset_size=size, seed=7)
    assert f32.kid_mean == pytest.approx(ours.kid_mean, rel=1e-5, abs=1e-7)


def test_tf32_matmul_precision_falls_back_to_float64():
    rng = np.random.default_rng(3)
    a, b = gaussian(rng, 100), gaussian(rng, 100, shift=0.1)
    exact = kid_from_features(a, b, subsets=5, dtype=torch.float64)
    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("medium")  # may route float32 matmuls through bf16/TF32
        assert kid_from_features(a, b, subsets=5).kid_mean == exact.kid_mean
    finally:
        torch.set_float32_matmul_precision(before)


@pytest.mark.parametrize("seed", SEEDS)
def test_kid_of_one_distribution_is_zero_within_its_std(seed):
    rng = np.random.default_rng(seed)
    kid = kid_from_features(gaussian(rng, 400), gaussian(rng, 400), seed=seed)
    assert kid.subset_size == 200 and kid.kid_std > 0
    # unbiased: the mean over 100 subsets (~ the full-sample U-statistic) errs by well under one subset's std,
    # so 3 std is a ~5-sigma bound (over 40 seeds |mean| / std had sd 0.6)
    assert abs(kid.kid_mean) < 3 * kid.kid_std


@pytest.mark.parametrize("seed", SEEDS)
def test_kid_of_a_shifted_distribution_is_many_stds_above_zero(seed):
    rng = np.random.default_rng(seed)
    kid = kid_from_features(gaussian(rng, 400), gaussian(rng, 400, shift=1.0), seed=seed)
    # a unit shift in 16 dimensions: mean / std was 23 +- 3 over 20 seeds
    assert kid.kid_mean > 10 * kid.kid_std > 0


def test_subset_size_rule():
    assert kid_subset_size(10_000, 50_000) == KID_SUBSET_SIZE == 1000  # torch-fidelity's choice
    assert kid_subset_size(2000, 2000) == 1000
    assert kid_subset_size(300, 5000) == 150  # half the smaller set
    assert kid_subset_size(3, 3) == 2


def test_subsets_as_large_as_both_sets_have_no_spread():
    """Why the default subset is at most half of each set: with whole sets every subset is the same set."""
    rng = np.random.default_rng(4)
    a, b = gaussian(rng, 60), gaussian(rng, 60, shift=0.2)
    whole = kid_from_features(a, b, subsets=10, subset_size=60, dtype=torch.float64)
    assert whole.kid_std == pytest.approx(0.0, abs=1e-12)
    assert kid_from_features(a, b, subsets=10, dtype=torch.float64).kid_std > 0


def test_bad_inputs_name_the_problem():
    a = np.zeros((10, 4))
    with pytest.raises(ValueError, match="one F"):
        kid_from_features(a, np.zeros((10, 5)))
    with pytest.raises(ValueError, match=r"subset_size must be in \[2, 10\]"):
        kid_from_features(a, a, subset_size=11)
    with pytest.raises(ValueError, match="subsets must be >= 1"):
        kid_from_features(a, a, subsets=0)
