import numpy as np
import pytest
import torch

from evaluators import names
from evaluators.metric_crossrun import (
    align,
    compare_pair,
    crossrun_metrics,
    mean_angle_deg,
    rms_distance,
    rotate_run,
)


def anisotropic(n, d, seed):
    g = torch.Generator().manual_seed(seed)
    scales = torch.linspace(3.0, 0.5, d)  # distinct eigenvalues, so principal axes are well defined
    return torch.randn(n, d, generator=g) * scales


def test_planted_permutation_and_signs_recovered_exactly():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2000, 6)) * np.linspace(3, 1, 6)
    perm = np.array([2, 0, 5, 1, 4, 3])
    signs = np.array([1.0, -1.0, -1.0, 1.0, -1.0, 1.0])
    b = np.empty_like(a)
    b[:, perm] = a * signs  # column i of a appears, sign-flipped, as column perm[i] of b
    al = align(a, b)
    np.testing.assert_array_equal(al.perm, perm)
    np.testing.assert_array_equal(al.signs, signs)
    np.testing.assert_allclose(al.apply(b), a)


def test_identical_runs_give_zero_angle():
    tr, te = anisotropic(1000, 5, 0), anisotropic(300, 5, 1)
    p = compare_pair(rotate_run(tr, te), rotate_run(tr, te))
    assert p.angle_raw == pytest.approx(0.0, abs=1e-5) and p.angle_aligned == pytest.approx(0.0, abs=1e-5)
    assert p.rms_raw == pytest.approx(0.0, abs=1e-9) and p.cosine_aligned == pytest.approx(1.0)
    np.testing.assert_allclose(np.diag(p.corr_aligned), 1.0)


def test_rotated_and_shifted_copy_aligns_to_zero_angle():
    # a second run whose latent space is an orthogonal transform + shift of the first encodes the same images
    tr, te = anisotropic(2000, 6, 0), anisotropic(400, 6, 1)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=torch.Generator().manual_seed(5)))
    shift = torch.arange(6.0)
    p = compare_pair(rotate_run(tr, te), rotate_run(tr @ q + shift, te @ q + shift))
    assert p.angle_aligned == pytest.approx(0.0, abs=1e-4)
    assert p.rms_aligned == pytest.approx(0.0, abs=1e-4)  # float32 encodings


def test_independent_runs_are_about_90_degrees():
    runs = [(anisotropic(3000, 8, 10 * s), anisotropic(2000, 8, 10 * s + 1)) for s in range(4)]
    m, pairs = crossrun_metrics(runs)
    assert m[names.XRUN_PAIRS] == 6 and len(pairs) == 6
    assert 87 < m[names.XRUN_ANGLE_RAW] < 93
    assert 85 < m[names.XRUN_ANGLE_ALIGNED] < 93
    assert abs(m[names.XRUN_COSINE_RAW]) < 0.05
    assert m[names.XRUN_ANGLE_RAW_STD] < 3


def test_noisy_copies_are_closer_after_alignment():
    base_tr, base_te = anisotropic(3000, 6, 0), anisotropic(1000, 6, 1)
    g = torch.Generator().manual_seed(2)
    runs = []
    for _ in range(3):
        q, _r = torch.linalg.qr(torch.randn(6, 6, generator=g))
        runs.append(
            (
                base_tr @ q + 0.3 * torch.randn(3000, 6, generator=g),
                base_te @ q + 0.3 * torch.randn(1000, 6, generator=g),
            )
        )
    m, pairs = crossrun_metrics(runs)
    assert m[names.XRUN_ANGLE_ALIGNED] < 20 < m[names.XRUN_ANGLE_RAW]
    assert m[names.XRUN_RMS_ALIGNED] < m[names.XRUN_RMS_RAW]
    assert np.abs(np.diag(pairs[0].corr_aligned)).mean() > np.abs(np.diag(pairs[0].corr_raw)).mean()
    assert (
        np.diag(pairs[0].corr_aligned) > 0.7
    ).all()  # the smallest axis (scale 0.5) carries noise 0.3 per run


def test_elementary_statistics():
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    b = np.array([[0.0, 1.0], [0.0, 2.0]])
    assert mean_angle_deg(a, b) == pytest.approx(45.0)
    assert rms_distance(a, b) == pytest.approx(1.0)  # sqrt((2 + 0) / 2)


def test_needs_two_runs_of_same_images():
    run = (anisotropic(100, 3, 0), anisotropic(50, 3, 1))
    with pytest.raises(ValueError, match="at least 2"):
        crossrun_metrics([run])
    with pytest.raises(ValueError, match="same"):
        compare_pair(rotate_run(*run), rotate_run(anisotropic(100, 3, 0), anisotropic(40, 3, 1)))
