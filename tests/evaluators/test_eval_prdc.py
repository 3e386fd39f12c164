"""Precision/recall/F-score and density/coverage on planted feature sets: torch-fidelity's own numbers on the same
features, and the planted answers (one distribution, disjoint ones, a generator that dropped half the modes).

Bounds: over 30 seeds of 500 vs 500 points in 8 dimensions, one distribution gave precision 0.869 +- 0.012, recall
0.879 +- 0.016, density 0.99 +- 0.05, coverage 0.967 +- 0.009; five of ten modes gave precision 0.855 +- 0.021,
recall 0.42 +- 0.03, coverage 0.49 +- 0.03. Every bound below is at least 4.5 of those standard deviations away."""

import math

import numpy as np
import pytest
import torch
from torch_fidelity.metric_prc import prc_features_to_metric

from evaluators.metric_prdc import DC_NEIGHBORHOOD, PRC_NEIGHBORHOOD, knn_radii, prdc_from_features

N, DIM = 500, 8


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def expected_coverage(n_real: int, n_gen: int, k: int) -> float:
    # Naeem et al. 2020, sec. 3: E[coverage] for one distribution, 1 - prod_{i=1..k} (N - i) / (M + N - i)
    return 1.0 - math.prod((n_real - i) / (n_gen + n_real - i) for i in range(1, k + 1))


def mixture(rng, n, centres, modes):
    return centres[rng.integers(0, modes, n)] + rng.standard_normal((n, centres.shape[1]))


@pytest.mark.parametrize("ties", [False, True])
def test_precision_recall_equal_torch_fidelity_generated_first(test_seed, ties):
    rng = np.random.default_rng(test_seed)
    gen, real = rng.standard_normal((300, DIM)), rng.standard_normal((400, DIM)) * 1.3 + 0.2
    if ties:  # copies: distances of exactly 0 sit on the balls' closed boundary
        gen[:50] = real[:50]
    tf = prc_features_to_metric(
        torch.from_numpy(gen), torch.from_numpy(real),
        prc_neighborhood=3, prc_batch_size=10000, save_cpu_ram=False, verbose=False,
    )  # fmt: skip
    ours = prdc_from_features(gen, real)
    # torch-fidelity 0.4: features_1 is generated (input1), features_2 real; one sample may flip on round-off
    assert ours.precision == pytest.approx(tf["precision"], abs=1.5 / len(gen))
    assert ours.recall == pytest.approx(tf["recall"], abs=1.5 / len(real))
    assert ours.f_score == pytest.approx(tf["f_score"], abs=3 / len(gen))
    assert ours.precision != pytest.approx(ours.recall, abs=0.05)  # the order matters on these sets


def test_one_distribution_is_near_one(test_seed):
    rng = np.random.default_rng(test_seed)
    r = prdc_from_features(rng.standard_normal((N, DIM)), rng.standard_normal((N, DIM)))
    assert r.precision > 0.8 and r.recall > 0.8 and r.f_score > 0.8
    assert abs(r.density - 1.0) < 0.3  # E[density] = 1 (Naeem et al. sec. 3)
    assert abs(r.coverage - expected_coverage(N, N, DC_NEIGHBORHOOD)) < 0.05
    assert (r.n_generated, r.n_reference) == (N, N)


def test_disjoint_distributions_are_zero(test_seed):
    rng = np.random.default_rng(test_seed)
    r = prdc_from_features(rng.standard_normal((N, DIM)) + 100.0, rng.standard_normal((N, DIM)))
    assert (r.precision, r.recall, r.f_score, r.density, r.coverage) == (0.0, 0.0, 0.0, 0.0, 0.0)


def test_dropped_modes_keep_precision_and_lose_recall_and_coverage(test_seed):
    rng = np.random.default_rng(test_seed)
    centres = np.random.default_rng(99).standard_normal((10, DIM)) * 10  # ten well-separated modes
    real, gen = mixture(rng, N, centres, 10), mixture(rng, N, centres, 5)
    r = prdc_from_features(gen, real)
    assert r.precision > 0.75  # every sample is realistic ...
    assert r.recall < 0.6 and r.recall < r.precision - 0.25  # ... but half the data is never produced
    assert abs(r.coverage - expected_coverage(N, N, DC_NEIGHBORHOOD) / 2) < 0.12
    full = prdc_from_features(mixture(rng, N, centres, 10), real)
    assert full.recall > r.recall + 0.25 and full.coverage > r.coverage + 0.3


def test_reference_radii_reused_give_the_same_result(test_seed):
    rng = np.random.default_rng(test_seed)
    gen, real = rng.standard_normal((200, DIM)), rng.standard_normal((3000, DIM))
    radii = knn_radii(torch.from_numpy(real).double(), (PRC_NEIGHBORHOOD, DC_NEIGHBORHOOD))
    # 3000 reference rows: the distance blocks are chunked, and the result does not depend on it
    assert prdc_from_features(gen, real, ref_radii=radii) == prdc_from_features(gen, real)


def test_bad_input_is_refused():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="k = 5 needs more than 5 samples"):
        prdc_from_features(rng.standard_normal((20, 4)), rng.standard_normal((5, 4)))
    with pytest.raises(ValueError, match="share F"):
        prdc_from_features(rng.standard_normal((20, 4)), rng.standard_normal((20, 3)))
    with pytest.raises(ValueError, match="neighbourhoods must be >= 1"):
        prdc_from_features(rng.standard_normal((20, 4)), rng.standard_normal((20, 4)), prc_k=0)
