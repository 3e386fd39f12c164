import math

import pytest
import torch

from evaluators.metric_eccentricity import (
    eccentricity,
    eccentricity_debiased,
    eccentricity_debiased_from_spectrum,
    latent_covariance,
    spectrum,
)


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


def _planted(ecc: float, d: int) -> torch.Tensor:
    """Eigenvalues 1 + ecc * (a linear ramp of population sd 1): std / mean = ecc exactly."""
    ramp = torch.linspace(-1, 1, d, dtype=torch.float64)
    return 1 + ecc * ramp / ramp.std(unbiased=False)


@pytest.mark.parametrize("truth", [0.0, 0.092, 0.19, 0.3])
def test_debiasing_removes_the_finite_sample_floor_at_d64(truth, test_seed):
    """Table 1's 0.092 and 0.19 lie below the ~sqrt(d / n) = 0.18 that 2,000 codes of a perfect sphere read at
    d = 64; the Wishart-moment correction recovers each planted eccentricity. Bounds: 4 standard errors of the mean
    over the replicates (measured sd per draw 0.005-0.009 for the nonzero truths), plus the clipping bias at 0."""
    d, n, reps = 64, 2000, 12
    g = torch.Generator().manual_seed(test_seed)
    scale = _planted(truth, d).sqrt()
    raw, fixed = [], []
    for _ in range(reps):
        z = torch.randn(n, d, generator=g, dtype=torch.float64) * scale
        raw.append(eccentricity(z))
        fixed.append(eccentricity_debiased(z))
    raw_t, fixed_t = torch.tensor(raw), torch.tensor(fixed)
    assert float(raw_t.mean()) > math.hypot(truth, 0.8 * math.sqrt(d / n))  # the plain estimate sits above its floor
    se = float(fixed_t.std()) / math.sqrt(reps)
    if truth == 0:
        assert float(fixed_t.mean()) < 0.04  # a sqrt clipped at 0: only noise is left, not the 0.18 floor
    else:
        assert abs(float(fixed_t.mean()) - truth) < 4 * se + 0.005, (truth, fixed)


def test_debiasing_needs_degrees_of_freedom():
    with pytest.raises(ValueError, match="dof must be > 2"):
        eccentricity_debiased_from_spectrum(torch.ones(4), 2)
