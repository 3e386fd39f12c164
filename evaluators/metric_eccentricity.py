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


def eccentricity_debiased_from_spectrum(eigenvalues: torch.Tensor, dof: float) -> float:
    """The population eccentricity behind a sample covariance's spectrum with ``dof`` degrees of freedom (n - 1).

    Sample eigenvalues spread even when the population's are equal (Marchenko-Pastur): from N(0, I_d) codes the
    plain estimate reads about sqrt(d / n), 0.18 at d = 64 from 2,000 codes, a floor under any target. For Gaussian
    codes the sample covariance S is Wishart(Sigma, k) / k, so (with m_j = tr(Sigma^j) / d)
        E[tr(S^2)] / d = (1 + 1/k) m_2 + d m_1^2 / k,    E[(tr(S) / d)^2] = m_1^2 + 2 m_2 / (d k);
    solving the two for m_1^2 and m_2 gives the variance m_2 - m_1^2 of the population's eigenvalues, clipped at 0.
    """
    ev = eigenvalues.to(torch.float64)
    d, k = ev.numel(), float(dof)
    if k <= 2:
        raise ValueError(f"dof must be > 2, got {dof}")
    m1_sq_s, m2_s = float(ev.mean()) ** 2, float(ev.pow(2).mean())
    m2 = (m2_s - d * m1_sq_s / k) / (1 + 1 / k - 2 / k**2)
    m1_sq = m1_sq_s - 2 * m2 / (d * k)
    if not m1_sq > 0:
        return float("nan")
    return max(m2 - m1_sq, 0.0) ** 0.5 / m1_sq**0.5


def eccentricity_debiased(z: torch.Tensor) -> float:
    """Eccentricity of encodings ``z`` (n, d) with the finite-sample spread removed (see the spectrum version)."""
    return eccentricity_debiased_from_spectrum(spectrum(latent_covariance(z)), z.shape[0] - 1)


def principal_axes(train_z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean, eigenvectors as columns, eigenvalues) of the training encodings, eigenvalues decreasing (sec. 4.1)."""
    cov = latent_covariance(train_z)
    evals, evecs = torch.linalg.eigh(cov)
    return train_z.detach().to(torch.float64).mean(dim=0), evecs.flip(1), evals.flip(0)


def to_principal(z: torch.Tensor, mean: torch.Tensor, axes: torch.Tensor) -> torch.Tensor:
    # shift by the training mean and rotate onto the principal axes (sec. 4.1)
    return (z.detach().to(torch.float64) - mean) @ axes
