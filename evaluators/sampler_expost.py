"""Ex-post density estimators fitted to a model's training codes, then sampled: the RAE paper's idea with stronger
densities than its GMM.

- ``fit_flow``: a masked autoregressive flow (Papamakarios et al. 2017) from zuko, fitted by maximum likelihood.
- ``fit_two_stage``: Dai & Wipf's (2019, sec. 4) second-stage VAE: a small Gaussian VAE on the codes, its decoder
  variance gamma learned; samples are the decoder's means of u ~ N(0, I).

Both fit on standardised codes (per-dimension mean and sd; the sampled codes are mapped back), draw every random
number from a seed, and return a callable n -> (n, d) float32 codes, so one fit serves every draw.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

FLOW_TRANSFORMS = 3
FLOW_HIDDEN = (64, 64)
TWO_STAGE_HIDDEN = 128
FIT_STEPS = 1000  # Adam steps of FIT_BATCH codes: ~5 s per fit on one free core
FIT_BATCH = 256
FIT_LR = 1e-3


def _standardise(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    z = z.detach().float().cpu()
    mean, sd = z.mean(0), z.std(0).clamp_min(1e-6)
    return (z - mean) / sd, mean, sd


def _fit(params, loss_of: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, steps: int) -> None:
    """Adam on minibatches of x (drawn from the global RNG, which the caller seeds)."""
    opt = torch.optim.Adam(params, lr=FIT_LR)
    for _ in range(steps):
        batch = x[torch.randint(0, len(x), (min(FIT_BATCH, len(x)),))]
        opt.zero_grad()
        loss_of(batch).backward()
        opt.step()


def fit_flow(train_z: torch.Tensor, seed: int, steps: int = FIT_STEPS) -> Callable[[int, int], torch.Tensor]:
    """A MAF fitted to the codes by maximum likelihood; returns (n, seed) -> codes sampled from it."""
    import zuko

    x, mean, sd = _standardise(train_z)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        flow = zuko.flows.MAF(features=x.shape[1], transforms=FLOW_TRANSFORMS, hidden_features=FLOW_HIDDEN)
        _fit(flow.parameters(), lambda b: -flow().log_prob(b).mean(), x, steps)
    flow.eval()

    def draw(n: int, draw_seed: int) -> torch.Tensor:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(draw_seed)
            return (flow().sample((n,)) * sd + mean).float()

    return draw


class SecondStageVAE(nn.Module):
    """Dai & Wipf's second stage: codes z -> q(u | z) = N(mu, diag sigma^2), u -> N(decoder(u), gamma I)."""

    def __init__(self, d: int, hidden: int = TWO_STAGE_HIDDEN):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 2 * d))
        self.decoder = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, d))
        # the decoder variance gamma, learned (Dai & Wipf sec. 4), started at 0.01: from 1 the standardised codes are
        # explained as noise alone and the fit stays at the collapsed optimum (KL = 0, samples all at the mean)
        self.log_gamma = nn.Parameter(torch.tensor(math.log(0.01)))

    def loss(self, z: torch.Tensor) -> torch.Tensor:
        mu, logvar = self.encoder(z).chunk(2, dim=1)
        u = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        d = z.shape[1]
        # negative ELBO per code: ||z - decoder(u)||^2 / (2 gamma) + d/2 log(2 pi gamma) + KL(q(u|z) || N(0, I))
        recon = ((z - self.decoder(u)) ** 2).sum(1) / (2 * self.log_gamma.exp())
        recon = recon + 0.5 * d * (self.log_gamma + math.log(2 * math.pi))
        kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(1)
        return (recon + kl).mean()


def fit_two_stage(train_z: torch.Tensor, seed: int, steps: int = FIT_STEPS) -> Callable[[int, int], torch.Tensor]:
    """A second-stage VAE fitted to the codes; returns (n, seed) -> decoder means of u ~ N(0, I)."""
    x, mean, sd = _standardise(train_z)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vae = SecondStageVAE(x.shape[1])
        _fit(vae.parameters(), vae.loss, x, steps)
    vae.eval()

    def draw(n: int, draw_seed: int) -> torch.Tensor:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(draw_seed)
            return (vae.decoder(torch.randn(n, x.shape[1])) * sd + mean).float()

    return draw
