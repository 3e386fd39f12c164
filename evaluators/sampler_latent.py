"""Latent samplers for generation: name -> sampler(train_z, n, generator, model=None) -> (n, d) float32 on CPU.

Every sampler draws only from ``generator`` (or a seed drawn from it), so a sample set is reproducible.
"""

from __future__ import annotations

from typing import Protocol

import torch

from evaluators.metric_eccentricity import latent_covariance
from evaluators.registry import Registry


class LatentSampler(Protocol):
    def __call__(
        self, train_z: torch.Tensor, n: int, generator: torch.Generator, model: object | None = None
    ) -> torch.Tensor: ...


class SamplerUnavailableError(ValueError):
    """The sampler does not apply to this model (e.g. ``generator`` for a model without its own latent sampler)."""


SAMPLERS: Registry[LatentSampler] = Registry("sampler")

GMM_COMPONENTS = 10


def get(name: str) -> LatentSampler:
    return SAMPLERS.get(name)


def _seed_from(generator: torch.Generator) -> int:
    return int(torch.randint(0, 2**31 - 1, (1,), generator=generator))


def _check(train_z: torch.Tensor, n: int) -> None:
    if train_z.ndim != 2 or train_z.shape[0] < 2:
        raise ValueError(f"train_z must have shape (n >= 2, d), got {tuple(train_z.shape)}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")


def gaussian_factor(cov: torch.Tensor) -> torch.Tensor:
    """A matrix L with L L^T = cov; eigen-decomposition, so a singular covariance is fine."""
    evals, evecs = torch.linalg.eigh(cov.to(torch.float64))
    return evecs * evals.clamp_min(0).sqrt()


@SAMPLERS.register("standard")
def sample_standard(
    train_z: torch.Tensor, n: int, generator: torch.Generator, model: object | None = None
) -> torch.Tensor:
    # 'standard' sampling: N(0, I) (first version, sec. 4 / Table 1)
    _check(train_z, n)
    return torch.randn(n, train_z.shape[1], generator=generator)


@SAMPLERS.register("matched")
def sample_matched(
    train_z: torch.Tensor, n: int, generator: torch.Generator, model: object | None = None
) -> torch.Tensor:
    # 'matched' sampling: Gaussian with the mean and covariance of the training encodings (sec. 4.3)
    _check(train_z, n)
    mean = train_z.detach().to(torch.float64).mean(dim=0)
    eps = torch.randn(n, train_z.shape[1], generator=generator, dtype=torch.float64)
    return (mean + eps @ gaussian_factor(latent_covariance(train_z)).T).float()


@SAMPLERS.register("gmm")
def sample_gmm(
    train_z: torch.Tensor, n: int, generator: torch.Generator, model: object | None = None
) -> torch.Tensor:
    # ex-post density: 10-component full-covariance GMM fitted on the training encodings (Ghose, FID table)
    from sklearn.mixture import GaussianMixture

    _check(train_z, n)
    z = train_z.detach().to(torch.float64).cpu().numpy()
    gmm = GaussianMixture(
        n_components=min(GMM_COMPONENTS, len(z)),
        covariance_type="full",
        reg_covar=1e-6,
        random_state=_seed_from(generator),
    ).fit(z)
    samples, _ = gmm.sample(n)
    # sklearn returns the samples grouped by component; shuffle so any prefix is a fair sample
    order = torch.randperm(n, generator=generator)
    return torch.from_numpy(samples).float()[order]


@SAMPLERS.register("sphere")
def sample_sphere(
    train_z: torch.Tensor, n: int, generator: torch.Generator, model: object | None = None
) -> torch.Tensor:
    """Spherical AE sampling (file 004, Algorithm 1): draw, centre each vector over its entries, project to the sphere.

    The sphere's radius is the mean norm of the training encodings (1 for a model whose latents lie on the unit sphere).
    """
    _check(train_z, n)
    z = torch.randn(n, train_z.shape[1], generator=generator, dtype=torch.float64)
    z = z - z.mean(dim=1, keepdim=True)  # Algorithm 1, step 2: centerization
    z = z / z.norm(dim=1, keepdim=True)  # step 3: spherization, eq. (3)
    radius = train_z.detach().to(torch.float64).norm(dim=1).mean()
    return (z * radius).float()


@SAMPLERS.register("generator")
def sample_generator(
    train_z: torch.Tensor, n: int, generator: torch.Generator, model: object | None = None
) -> torch.Tensor:
    """The method's own latent sampler (``model.latent_sampler()`` -> callable n -> latents, or None)."""
    _check(train_z, n)
    factory = getattr(model, "latent_sampler", None)
    draw = factory() if callable(factory) else None
    if draw is None:
        raise SamplerUnavailableError(f"model {type(model).__name__} has no latent sampler of its own")
    # the model's sampler uses the global RNG: seed it from `generator` without disturbing the caller's state
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(_seed_from(generator))
        z = draw(n)
    z = torch.as_tensor(z).detach().float().cpu()
    if z.shape != (n, train_z.shape[1]):
        raise ValueError(f"latent_sampler returned shape {tuple(z.shape)}, expected {(n, train_z.shape[1])}")
    return z


@SAMPLERS.register("flow")
def sample_flow(
    train_z: torch.Tensor, n: int, generator: torch.Generator, model: object | None = None
) -> torch.Tensor:
    # ex-post density: a masked autoregressive flow (zuko) fitted to the training encodings
    from evaluators.sampler_expost import fit_flow

    _check(train_z, n)
    return fit_flow(train_z, _seed_from(generator))(n, _seed_from(generator))


@SAMPLERS.register("two-stage")
def sample_two_stage(
    train_z: torch.Tensor, n: int, generator: torch.Generator, model: object | None = None
) -> torch.Tensor:
    # ex-post density: Dai & Wipf's second-stage VAE fitted to the training encodings (2-Stage VAE, sec. 4)
    from evaluators.sampler_expost import fit_two_stage

    _check(train_z, n)
    return fit_two_stage(train_z, _seed_from(generator))(n, _seed_from(generator))
