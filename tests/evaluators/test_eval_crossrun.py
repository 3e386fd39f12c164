import numpy as np
import pytest
import torch

from evaluators import names
from evaluators.metric_crossrun import (
    RotatedRun,
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


def test_planted_permutation_and_signs_recovered_exactly(test_seed):
    rng = np.random.default_rng(test_seed)
    a = rng.standard_normal((2000, 6)) * np.linspace(3, 1, 6)
    perm = np.array([2, 0, 5, 1, 4, 3])
    signs = np.array([1.0, -1.0, -1.0, 1.0, -1.0, 1.0])
    b = np.empty_like(a)
    b[:, perm] = a * signs  # column i of a appears, sign-flipped, as column perm[i] of b
    al = align(a, b)
    np.testing.assert_array_equal(al.perm, perm)
    np.testing.assert_array_equal(al.signs, signs)
    np.testing.assert_allclose(al.apply(b), a)


def test_identical_runs_give_zero_angle(test_seed):
    tr, te = anisotropic(1000, 5, test_seed), anisotropic(300, 5, test_seed + 1)
    p = compare_pair(rotate_run(tr, te), rotate_run(tr, te))
    assert p.angle_raw == pytest.approx(0.0, abs=1e-5) and p.angle_aligned == pytest.approx(0.0, abs=1e-5)
    assert p.rms_raw == pytest.approx(0.0, abs=1e-9) and p.cosine_aligned == pytest.approx(1.0)
    np.testing.assert_allclose(np.diag(p.corr_aligned), 1.0)


def test_rotated_and_shifted_copy_aligns_to_zero_angle(test_seed):
    # a second run whose latent space is an orthogonal transform + shift of the first encodes the same images
    tr, te = anisotropic(2000, 6, test_seed), anisotropic(400, 6, test_seed + 1)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=torch.Generator().manual_seed(test_seed + 5)))
    shift = torch.arange(6.0)
    p = compare_pair(rotate_run(tr, te), rotate_run(tr @ q + shift, te @ q + shift))
    assert p.angle_aligned == pytest.approx(0.0, abs=1e-4)
    assert p.rms_aligned == pytest.approx(0.0, abs=1e-4)  # float32 encodings


def test_independent_runs_are_about_90_degrees(test_seed):
    seeds = [test_seed + 10 * s for s in range(4)]
    runs = [(anisotropic(3000, 8, s), anisotropic(2000, 8, s + 1)) for s in seeds]
    m, pairs = crossrun_metrics(runs)
    assert m[names.XRUN_PAIRS] == 6 and len(pairs) == 6
    # 90 degrees and cosine 0 by symmetry; per-image angles have sd ~26 degrees and cosines ~0.42, so one pair's
    # mean over 2000 test images has standard error ~0.6 degrees and ~0.01: the bounds are 5 standard errors
    assert 87 < m[names.XRUN_ANGLE_RAW] < 93
    assert 87 < m[names.XRUN_ANGLE_ALIGNED] < 93  # the alignment, fitted on independent training codes, is noise
    assert abs(m[names.XRUN_COSINE_RAW]) < 0.05
    assert m[names.XRUN_ANGLE_RAW_STD] < 3


NOISE = 0.3  # per coordinate and run, the noise of the two tests below


def test_noisy_rotated_copies_align_to_the_angle_of_their_noise(test_seed):
    # three runs encode the same factors (distinct variances), each rotated and with its own noise; in the
    # factors' own coordinates run k's test codes are known, so a perfect alignment's statistics are known too
    base_tr, base_te = anisotropic(3000, 6, test_seed), anisotropic(1000, 6, test_seed + 1)
    g = torch.Generator().manual_seed(test_seed + 2)
    runs, truth = [], []
    for _ in range(3):
        q, _r = torch.linalg.qr(torch.randn(6, 6, generator=g))
        tr = base_tr + NOISE * torch.randn(3000, 6, generator=g)
        te = base_te + NOISE * torch.randn(1000, 6, generator=g)
        runs.append((tr @ q, te @ q))
        truth.append((te - tr.mean(0)).double().numpy())
    m, pairs = crossrun_metrics(runs)
    scales = torch.linspace(3.0, 0.5, 6).double().numpy()
    rho = scales**2 / (scales**2 + NOISE**2)  # correlation of one factor seen through two runs' noise
    for p, (i, j) in zip(pairs, [(0, 1), (0, 2), (1, 2)], strict=True):
        np.testing.assert_array_equal(p.alignment.perm, np.arange(6))  # variance order is the same in every run
        # with the order known, alignment only orients axes: the aligned diagonal is the raw one made positive
        np.testing.assert_allclose(np.diag(p.corr_aligned), np.abs(np.diag(p.corr_raw)), atol=1e-12)
        assert (np.diag(p.corr_aligned) > rho - 6 * (1 - rho**2) / np.sqrt(1000)).all()  # 6 standard errors
        # estimated axes are off by ~sqrt(l_i l_j / n) / (l_i - l_j) < 0.05 rad (3 degrees) for adjacent variances
        # l_i, l_j; that moves the mean angle by ~0.03 degrees (sd 0.02) and the RMS by ~0.3% (sd 0.2%)
        assert p.angle_aligned == pytest.approx(mean_angle_deg(truth[i], truth[j]), abs=0.5)
        assert p.rms_aligned == pytest.approx(rms_distance(truth[i], truth[j]), rel=0.03)
        # a flipped axis makes the raw statistics worse; with no flip they are the same numbers
        assert p.angle_aligned <= p.angle_raw and p.rms_aligned <= p.rms_raw
    assert m[names.XRUN_ANGLE_ALIGNED] == pytest.approx(np.mean([p.angle_aligned for p in pairs]))


def test_noisy_copies_are_closer_after_alignment(test_seed):
    # run b holds run a's principal coordinates reordered and sign-flipped (as another run's eigendecomposition
    # may order and orient them) plus noise: a planted permutation with no fixed point, so raw coordinate i of b
    # is an unrelated factor of a, and aligned, b differs from a by the noise alone
    rng = np.random.default_rng(test_seed)
    scales = np.linspace(3, 0.5, 6)
    perm = np.array([2, 0, 5, 1, 3, 4])
    signs = np.array([1.0, -1.0, -1.0, 1.0, -1.0, 1.0])
    a_tr, a_te = rng.standard_normal((3000, 6)) * scales, rng.standard_normal((1000, 6)) * scales
    noise_tr, noise_te = NOISE * rng.standard_normal((3000, 6)), NOISE * rng.standard_normal((1000, 6))
    b_tr, b_te = np.empty_like(a_tr), np.empty_like(a_te)
    b_tr[:, perm], b_te[:, perm] = (a_tr + noise_tr) * signs, (a_te + noise_te) * signs
    eigenvalues = scales**2  # not read by compare_pair
    p = compare_pair(RotatedRun(a_tr, a_te, eigenvalues), RotatedRun(b_tr, b_te, eigenvalues))
    np.testing.assert_array_equal(p.alignment.perm, perm)
    np.testing.assert_array_equal(p.alignment.signs, signs)
    assert p.angle_aligned == pytest.approx(mean_angle_deg(a_te, a_te + noise_te))
    assert p.rms_aligned == pytest.approx(rms_distance(a_te, a_te + noise_te))
    # raw, each coordinate is compared with an independent one: ~90 degrees, against a few for the noise
    assert p.angle_raw > p.angle_aligned + 45 and p.rms_raw > 2 * p.rms_aligned
    se = 1 / np.sqrt(len(a_te))  # standard error of a correlation near 0
    assert np.abs(np.diag(p.corr_raw)).max() < 6 * se
    rho = scales / np.sqrt(scales**2 + NOISE**2)  # correlation of a factor with itself plus noise
    assert (np.diag(p.corr_aligned) > rho - 6 * (1 - rho**2) * se).all()


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
