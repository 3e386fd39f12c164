import math

import pytest
import torch

from evaluators.metric_eccentricity import eccentricity, latent_covariance, spectrum


def test_isotropic_sample_has_eccentricity_near_zero(test_seed):
    n, d = 50_000, 8
    g = torch.Generator().manual_seed(test_seed)
    # the sample eigenvalues of N(0, I) spread around 1 with sd ~sqrt(d / n) (Marchenko-Pastur): measured mean
    # 0.0133, sd 0.0016 over 60 seeds, so twice sqrt(d / n) = 0.025 is 7 sd above the mean
    assert eccentricity(torch.randn(n, d, generator=g)) < 2 * math.sqrt(d / n)


def test_known_diagonal_covariance_matches_formula(test_seed):
    n = 200_000
    g = torch.Generator().manual_seed(test_seed + 1)
    var = torch.tensor([4.0, 2.0, 1.0, 0.5, 0.25, 0.25], dtype=torch.float64)
    z = torch.randn(n, 6, generator=g, dtype=torch.float64) * var.sqrt()
    expected = float(var.std(unbiased=False) / var.mean())
    # a sample variance has relative sd sqrt(2 / n) (0.3% here; the eccentricity's measured 0.18%): 6 of those
    assert eccentricity(z) == pytest.approx(expected, rel=6 * math.sqrt(2 / n))


def test_spectrum_sorted_decreasing_and_trace():
    z = torch.randn(1000, 5) * torch.tensor([3.0, 1.0, 2.0, 0.5, 1.5])
    ev = spectrum(latent_covariance(z))
    assert torch.all(ev[:-1] >= ev[1:])
    assert float(ev.sum()) == pytest.approx(float(torch.trace(latent_covariance(z))), rel=1e-9)


def test_rotation_invariant():
    z = torch.randn(5000, 4, dtype=torch.float64) * torch.tensor([2.0, 1.0, 1.0, 0.3], dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64))
    assert eccentricity(z @ q) == pytest.approx(eccentricity(z), rel=1e-9)
