"""Regulariser losses shared by several methods."""

from __future__ import annotations

import torch


def eccentric_M(mu: float, d: int) -> float:
    """M = 2d (1 + 1/(2 mu (d-1))) / (2 mu - 1), Li & Blair sec. 2 (derived in appendix A.2)."""
    if not mu > 0.5:
        raise ValueError(f"mu must be > 0.5, got {mu}")
    if d < 2:
        raise ValueError(f"latent dimension d must be >= 2, got {d}")
    return 2.0 * d * (1.0 + 1.0 / (2.0 * mu * (d - 1))) / (2.0 * mu - 1.0)


def eccentric_loss(z: torch.Tensor, mu: float = 1.0) -> torch.Tensor:
    """l_mu of Li & Blair eq. (1): pairwise K_{mu,M} summed over all (i, j) and divided by n(n-1), as in A.3.

    Squared distances come from the Gram matrix (one matmul, O(n^2) memory like the reference) and are
    clamped at 0, so coincident points give log(1) = 0 and a finite gradient.
    """
    if z.ndim != 2:
        z = z.reshape(z.shape[0], -1)
    n, d = z.shape
    M = eccentric_M(mu, d)
    if n < 2:
        raise ValueError(f"eccentric_loss needs at least 2 points, got {n}")
    sq = (z * z).sum(dim=1)
    dist2 = (sq[:, None] + sq[None, :] - 2.0 * (z @ z.T)).clamp_min(0.0)
    repulsion = torch.log1p(dist2 / M).sum()
    return (n * sq.sum() - mu * M * repulsion) / (n * (n - 1))
