"""Eccentricity of a latent distribution (Li & Blair, sec. 4.3): std / mean of the covariance eigenvalues."""

from __future__ import annotations

import torch


def latent_covariance(z: torch.Tensor) -> torch.Tensor:
    """Unbiased covariance of encodings ``z`` of shape (n, d), computed in float64."""
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"z must have shape (n >= 2, d), got {tuple(z.shape)}")
    z = z.detach().to(torch.float64)
    zc = z - z.mean(dim=0, keepdim=True)
    return zc.T @ zc / (z.shape[0] - 1)


def spectrum(cov: torch.Tensor) -> torch.Tensor:
    """Eigenvalues of a covariance matrix, sorted in decreasing order."""
    return torch.linalg.eigvalsh(cov).flip(0)


def eccentricity_from_spectrum(eigenvalues: torch.Tensor) -> float:
    # population std (ddof 0) of the eigenvalues over their mean, as in sec. 4.3
    ev = eigenvalues.to(torch.float64)
    return float(ev.std(unbiased=False) / ev.mean())


def eccentricity(z: torch.Tensor) -> float:
    return eccentricity_from_spectrum(spectrum(latent_covariance(z)))


def principal_axes(train_z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean, eigenvectors as columns, eigenvalues) of the training encodings, eigenvalues decreasing (sec. 4.1)."""
    cov = latent_covariance(train_z)
    evals, evecs = torch.linalg.eigh(cov)
    return train_z.detach().to(torch.float64).mean(dim=0), evecs.flip(1), evals.flip(0)


def to_principal(z: torch.Tensor, mean: torch.Tensor, axes: torch.Tensor) -> torch.Tensor:
    # shift by the training mean and rotate onto the principal axes (sec. 4.1)
    return (z.detach().to(torch.float64) - mean) @ axes
