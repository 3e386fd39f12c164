import math

import pytest
import torch

from evaluators import sampler_latent
from evaluators.metric_eccentricity import latent_covariance
from evaluators.metric_kid import mmd2_unbiased
from evaluators.registry import UnknownNameError
from evaluators.sampler_latent import SAMPLERS, SamplerUnavailableError


@pytest.fixture
def train_z(test_seed):
    g = torch.Generator().manual_seed(test_seed)
    a = torch.randn(4, 4, generator=g)
    return torch.randn(5000, 4, generator=g) @ a + torch.tensor([1.0, -2.0, 0.5, 3.0])


def test_registry_lists_valid_names():
    assert SAMPLERS.names() == ["flow", "generator", "gmm", "matched", "sphere", "standard", "two-stage"]
    with pytest.raises(UnknownNameError, match="valid samplers: flow, generator, gmm, matched, sphere, standard, two-stage"):
        sampler_latent.get("uniform")


@pytest.mark.parametrize("name", ["standard", "matched", "gmm", "sphere"])
def test_shape_dtype_and_reproducible(name, train_z, test_seed):
    s = sampler_latent.get(name)
    a = s(train_z, 300, torch.Generator().manual_seed(test_seed + 7))
    b = s(train_z, 300, torch.Generator().manual_seed(test_seed + 7))
    c = s(train_z, 300, torch.Generator().manual_seed(test_seed + 8))
    assert a.shape == (300, 4) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)


# 5 standard errors: a mean of n draws has sd sqrt(var / n); a sample covariance entry c_ij has sd
# sqrt((c_ii c_jj + c_ij^2) / n) <= sqrt(2 / n) max_i c_ii
def test_standard_is_standard_normal(train_z, test_seed):
    n = 20000
    z = sampler_latent.get("standard")(train_z, n, torch.Generator().manual_seed(test_seed)).double()
    assert z.mean(0).abs().max() < 5 * math.sqrt(1 / n)
    assert (latent_covariance(z) - torch.eye(4, dtype=torch.float64)).abs().max() < 5 * math.sqrt(2 / n)


def test_matched_reproduces_training_mean_and_covariance(train_z, test_seed):
    n = 40000
    z = sampler_latent.get("matched")(train_z, n, torch.Generator().manual_seed(test_seed))
    cz, ct = latent_covariance(z), latent_covariance(train_z)
    assert ((z.double().mean(0) - train_z.double().mean(0)).abs() < 5 * (ct.diagonal() / n).sqrt()).all()
    assert (cz - ct).abs().max() < 5 * math.sqrt(2 / n) * ct.diagonal().max()


def test_matched_handles_singular_covariance(test_seed):
    t = torch.randn(1000, 1).repeat(1, 3)  # rank 1
    z = sampler_latent.get("matched")(t, 500, torch.Generator().manual_seed(test_seed))
    assert torch.isfinite(z).all()
    assert torch.allclose(z[:, 0], z[:, 2], atol=1e-4)  # stays on the training data's line


def test_gmm_fits_well_separated_clusters_and_is_shuffled(test_seed):
    g = torch.Generator().manual_seed(test_seed)
    centres = torch.tensor([[-10.0, 0.0], [10.0, 0.0]])
    t = torch.cat(
        [centres[0] + torch.randn(1000, 2, generator=g), centres[1] + torch.randn(1000, 2, generator=g)]
    )
    z = sampler_latent.get("gmm")(t, 400, torch.Generator().manual_seed(test_seed + 1))
    # samples sit near the clusters (unit sd), never in the empty middle: |x| <= 4 is 6 sd from both centres,
    # P < 1e-6 over 400 samples; all of the first 40 from one cluster has P = 2^-39
    assert (z[:, 0].abs() > 4).all()
    assert (z[:40, 0] < 0).any() and (z[:40, 0] > 0).any()


def test_sphere_follows_algorithm_1():
    t = torch.randn(1000, 6)
    t = 2.0 * (t - t.mean(1, keepdim=True)) / (t - t.mean(1, keepdim=True)).norm(dim=1, keepdim=True)
    z = sampler_latent.get("sphere")(t, 300, torch.Generator().manual_seed(0))
    assert torch.allclose(z.mean(1), torch.zeros(300), atol=1e-5)  # centred over the entries
    assert torch.allclose(z.norm(dim=1), torch.full((300,), 2.0), atol=1e-5)  # radius of the training codes


class WithSampler(torch.nn.Module):
    def latent_sampler(self):
        return lambda n: torch.rand(n, 4) + 10.0


class WithoutSampler(torch.nn.Module):
    def latent_sampler(self):
        return None


def test_generator_uses_models_sampler_reproducibly_without_touching_global_rng(train_z):
    s = sampler_latent.get("generator")
    before = torch.get_rng_state()
    a = s(train_z, 50, torch.Generator().manual_seed(3), WithSampler())
    b = s(train_z, 50, torch.Generator().manual_seed(3), WithSampler())
    assert torch.equal(torch.get_rng_state(), before)
    assert a.shape == (50, 4) and torch.equal(a, b) and (a >= 10).all()


@pytest.mark.parametrize("model", [WithoutSampler(), torch.nn.Linear(2, 2), None])
def test_generator_unavailable_without_latent_sampler(model, train_z):
    with pytest.raises(SamplerUnavailableError, match="no latent sampler"):
        sampler_latent.get("generator")(train_z, 5, torch.Generator(), model)


def test_bad_inputs_rejected(train_z):
    with pytest.raises(ValueError, match="n must be"):
        sampler_latent.get("standard")(train_z, 0, torch.Generator())
    with pytest.raises(ValueError, match="train_z must"):
        sampler_latent.get("matched")(torch.zeros(5), 3, torch.Generator())


def _planted_mixture(n: int, g: torch.Generator) -> torch.Tensor:
    """Four tight Gaussians on the axes of a 4-d code space: far from any single Gaussian."""
    centres = torch.tensor([[3.0, 0, 0, 0], [-3.0, 0, 0, 0], [0, 3.0, 0, 0], [0, -3.0, 0, 0]])
    return centres[torch.randint(0, 4, (n,), generator=g)] + 0.5 * torch.randn(n, 4, generator=g)


def _mmd2(x: torch.Tensor, y: torch.Tensor) -> float:
    # unbiased MMD^2 with a unit-width Gaussian kernel
    def k(a, b):
        return torch.exp(-torch.cdist(a, b) ** 2 / 2)

    x, y = x.double(), y.double()
    return float(mmd2_unbiased(k(x, x), k(x, y), k(y, y)))


@pytest.mark.parametrize("name", ["flow", "two-stage"])
def test_ex_post_density_beats_standard_normal_on_a_planted_mixture(name, test_seed):
    g = torch.Generator().manual_seed(test_seed)
    train, truth = _planted_mixture(4000, g), _planted_mixture(1000, g)
    # the null spread: MMD^2 between the truth and further samples of it (sd ~3e-4 at n = 1000)
    null = torch.tensor([_mmd2(_planted_mixture(1000, g), truth) for _ in range(8)])
    before = torch.get_rng_state()
    z = sampler_latent.get(name)(train, 1000, torch.Generator().manual_seed(test_seed + 1))
    assert torch.equal(torch.get_rng_state(), before)  # fitted and drawn from the generator's seeds only
    assert z.shape == (1000, 4) and z.dtype == torch.float32
    standard = _mmd2(sampler_latent.get("standard")(train, 1000, torch.Generator().manual_seed(test_seed)), truth)
    # seen: N(0, I) 0.16, flow 0.006, two-stage 0.03, null 0.0000 +- 0.0003
    assert _mmd2(z, truth) < standard - 10 * float(null.std()) - float(null.mean().abs())
    assert _mmd2(z, truth) < standard / 2


def test_ex_post_samplers_are_reproducible():
    train = _planted_mixture(300, torch.Generator().manual_seed(0))
    for name in ("flow", "two-stage"):
        a, b = (sampler_latent.get(name)(train, 20, torch.Generator().manual_seed(5)) for _ in range(2))
        assert torch.equal(a, b)
