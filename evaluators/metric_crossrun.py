"""How canonical is the encoding? Compare principal-axis encodings of the same images from independent runs.

Li & Blair sec. 4.2 / Table 1 (mean angle, raw and aligned) and the first version's Table 2 (RMS distance, cosine).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from evaluators import names
from evaluators.metric_eccentricity import principal_axes, to_principal


@dataclass(frozen=True)
class RotatedRun:
    """One run's training and test encodings on its own principal axes (centred by the training mean)."""

    train_p: np.ndarray
    test_p: np.ndarray
    eigenvalues: np.ndarray


@dataclass(frozen=True)
class Alignment:
    """Run b's coordinates reordered and sign-flipped: ``aligned_b = b[:, perm] * signs``."""

    perm: np.ndarray
    signs: np.ndarray

    def apply(self, b: np.ndarray) -> np.ndarray:
        return b[:, self.perm] * self.signs


@dataclass(frozen=True)
class PairStats:
    angle_raw: float
    angle_aligned: float
    rms_raw: float
    rms_aligned: float
    cosine_raw: float
    cosine_aligned: float
    corr_raw: np.ndarray
    corr_aligned: np.ndarray
    alignment: Alignment


def rotate_run(train_z: torch.Tensor, test_z: torch.Tensor) -> RotatedRun:
    # sec. 4.1: shift by the training mean, rotate onto the training covariance's eigenvectors, decreasing order
    if train_z.shape[1] != test_z.shape[1]:
        raise ValueError(f"train/test latent dims differ: {train_z.shape[1]} vs {test_z.shape[1]}")
    mean, axes, evals = principal_axes(train_z)
    return RotatedRun(
        to_principal(train_z, mean, axes).numpy(), to_principal(test_z, mean, axes).numpy(), evals.numpy()
    )


def cross_covariance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(d, d) covariance between the coordinates of a and of b, rows of the same images."""
    ac, bc = a - a.mean(axis=0), b - b.mean(axis=0)
    return ac.T @ bc / (len(a) - 1)


def correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(d, d) correlation between coordinate i of a and coordinate j of b (Fig. 9 heatmaps)."""
    ac, bc = a - a.mean(axis=0), b - b.mean(axis=0)
    denom = np.outer(np.linalg.norm(ac, axis=0), np.linalg.norm(bc, axis=0))
    return ac.T @ bc / np.where(denom > 0, denom, 1.0)


def align(train_a: np.ndarray, train_b: np.ndarray) -> Alignment:
    # sec. 4.2: Hungarian permutation maximising Tr |training cross-covariance|, then signs making its diagonal positive
    c = cross_covariance(train_a, train_b)
    rows, perm = linear_sum_assignment(np.abs(c), maximize=True)
    diag = c[rows, perm]
    return Alignment(perm, np.where(diag < 0, -1.0, 1.0))


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    return np.clip((a * b).sum(axis=1) / np.maximum(na * nb, 1e-300), -1.0, 1.0)


def mean_angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    # Table 1: mean angle between the encodings of the same test image in the two runs
    return float(np.degrees(np.arccos(row_cosines(a, b))).mean())


def mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(row_cosines(a, b).mean())


def rms_distance(a: np.ndarray, b: np.ndarray) -> float:
    # first version, Table 2: root of the mean squared Euclidean distance between corresponding encodings
    return float(np.sqrt(((a - b) ** 2).sum(axis=1).mean()))


def compare_pair(a: RotatedRun, b: RotatedRun) -> PairStats:
    if a.test_p.shape != b.test_p.shape or a.train_p.shape != b.train_p.shape:
        raise ValueError("runs must encode the same training and test images with the same latent dimension")
    al = align(a.train_p, b.train_p)
    bt = al.apply(b.test_p)
    return PairStats(
        angle_raw=mean_angle_deg(a.test_p, b.test_p),
        angle_aligned=mean_angle_deg(a.test_p, bt),
        rms_raw=rms_distance(a.test_p, b.test_p),
        rms_aligned=rms_distance(a.test_p, bt),
        cosine_raw=mean_cosine(a.test_p, b.test_p),
        cosine_aligned=mean_cosine(a.test_p, bt),
        corr_raw=correlation(a.test_p, b.test_p),
        corr_aligned=correlation(a.test_p, bt),
        alignment=al,
    )


_SUMMARY = (
    ("angle_raw", names.XRUN_ANGLE_RAW, names.XRUN_ANGLE_RAW_STD),
    ("angle_aligned", names.XRUN_ANGLE_ALIGNED, names.XRUN_ANGLE_ALIGNED_STD),
    ("rms_raw", names.XRUN_RMS_RAW, names.XRUN_RMS_RAW_STD),
    ("rms_aligned", names.XRUN_RMS_ALIGNED, names.XRUN_RMS_ALIGNED_STD),
    ("cosine_raw", names.XRUN_COSINE_RAW, names.XRUN_COSINE_RAW_STD),
    ("cosine_aligned", names.XRUN_COSINE_ALIGNED, names.XRUN_COSINE_ALIGNED_STD),
)

SUMMARY_KEYS = tuple((mean_key, std_key) for _, mean_key, std_key in _SUMMARY)


def crossrun_metrics(
    runs: list[tuple[torch.Tensor, torch.Tensor]],
) -> tuple[dict[str, float], list[PairStats]]:
    """Mean and std (ddof 0) of each statistic over all pairs of runs (Table 1 averages the 6 pairs of 4 runs)."""
    if len(runs) < 2:
        raise ValueError(f"cross-run analysis needs at least 2 runs, got {len(runs)}")
    rotated = [rotate_run(tr, te) for tr, te in runs]
    pairs = [compare_pair(a, b) for a, b in itertools.combinations(rotated, 2)]
    metrics: dict[str, float] = {names.XRUN_PAIRS: float(len(pairs))}
    for attr, mean_key, std_key in _SUMMARY:
        values = np.array([getattr(p, attr) for p in pairs])
        metrics[mean_key] = float(values.mean())
        metrics[std_key] = float(values.std())
    return metrics, pairs
