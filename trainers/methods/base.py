"""The interface every method implements: encode, decode, a regulariser and (optionally) its own step."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Literal, NamedTuple, get_args

import torch
from torch import nn
from torch.nn import functional as F

from trainers import optim
from trainers.networks import Architecture


class MethodOutput(NamedTuple):
    loss: torch.Tensor
    recon: torch.Tensor
    reg: torch.Tensor


# What lambda is weighed against: the units of the reconstruction term (README, "What lambda multiplies").
#   mean:      squared error averaged over every pixel and image, torch's default; Li & Blair's lambda grids
#              (Table 1: VAE beta 1e-3 -> eccentricity 0.25, WAE 0.1 -> 0.19) are only reachable in these units
#   sum:       squared error summed over an image's pixels, averaged over the batch: c(x, y) = ||x - y||^2 per
#              item, Tolstikhin et al. 2018 (WAE) sec. 4, whose code weighs it by 0.05 against lambda = 100
#   batch-sum: summed over pixels and over the minibatch, Ghose 2020 eq. (2.2) (sum_i ||x_i - D(z_i)||^2)
ReconReduction = Literal["mean", "sum", "batch-sum"]
RECON_REDUCTIONS: tuple[str, ...] = get_args(ReconReduction)
DEFAULT_RECON: ReconReduction = "mean"


def recon_loss(x_hat: torch.Tensor, x: torch.Tensor, reduction: str = DEFAULT_RECON, scale: float = 1.0) -> torch.Tensor:
    """``scale`` x the L2 reconstruction error in the units ``reduction`` names (see RECON_REDUCTIONS)."""
    if reduction == "mean":
        loss = F.mse_loss(x_hat, x)
    elif reduction == "sum":
        loss = F.mse_loss(x_hat, x, reduction="sum") / x.shape[0]
    elif reduction == "batch-sum":
        loss = F.mse_loss(x_hat, x, reduction="sum")
    else:
        raise ValueError(f"recon reduction {reduction!r} is not one of {', '.join(RECON_REDUCTIONS)}")
    return loss if scale == 1.0 else loss * scale


class AutoencoderMethod(nn.Module):
    """An autoencoder plus its latent regulariser. Subclasses set the class flags and override ``regulariser``.

    ``compute_loss`` keeps the detached training latent of the last batch in ``last_z``, which the lambda
    controller (trainers/control.py) reads after each step; a method that overrides ``compute_loss`` or
    ``train_step`` without calling the base ``compute_loss`` must set ``self.last_z`` itself.
    """

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    takes_lambda: ClassVar[bool] = True
    takes_mu: ClassVar[bool] = False
    default_mu: ClassVar[float | None] = None
    encoder_out_factor: ClassVar[int] = 1

    def __init__(
        self,
        arch: Architecture,
        latent_dim: int,
        lam: float = 0.0,
        mu: float | None = None,
        recon: str = DEFAULT_RECON,
        recon_scale: float = 1.0,
    ):
        super().__init__()
        if recon not in RECON_REDUCTIONS:
            raise ValueError(f"recon must be one of {', '.join(RECON_REDUCTIONS)}, got {recon!r}")
        if not recon_scale > 0:
            raise ValueError(f"recon_scale must be > 0, got {recon_scale}")
        if latent_dim < 2:
            raise ValueError(f"latent_dim must be >= 2, got {latent_dim}")
        if lam < 0:
            raise ValueError(f"lambda must be >= 0, got {lam}")
        if not self.takes_lambda and lam != 0:
            raise ValueError(f"method {self.name!r} takes no lambda, got lambda={lam}")
        if not self.takes_mu and mu is not None:
            raise ValueError(f"method {self.name!r} takes no mu, got mu={mu}")
        self.arch = arch
        self.latent_dim = latent_dim
        self.lam = float(lam)
        self.mu = mu if mu is not None else self.default_mu
        self.recon = recon
        self.recon_scale = float(recon_scale)
        self.encoder, self.decoder = arch.build(latent_dim * self.encoder_out_factor, latent_dim)
        self.last_z: torch.Tensor | None = None

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic encoding used for evaluation, sampling and cross-run analysis."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def regulariser(self, z: torch.Tensor) -> torch.Tensor:
        return z.new_zeros(())

    def recon_loss(self, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction term lambda is weighed against, in this model's convention."""
        return recon_loss(x_hat, x, self.recon, self.recon_scale)

    def training_latent(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)

    @classmethod
    def amp_safe(cls) -> bool:
        """True when the method's loss and step are the base ones, whose regulariser runs in fp32 under autocast."""
        base = AutoencoderMethod
        return cls.compute_loss is base.compute_loss and cls.train_step is base.train_step

    def compute_loss(self, x: torch.Tensor) -> MethodOutput:
        z = self.training_latent(x)
        self.last_z = z.detach()
        recon = self.recon_loss(self.decode(z), x)
        if torch.is_autocast_enabled(z.device.type):
            # pairwise distances and logs in bf16 would swamp the regulariser in rounding: fp32 here
            with torch.autocast(z.device.type, enabled=False):
                reg = self.regulariser(z.float())
        else:
            reg = self.regulariser(z)
        return MethodOutput(recon + self.lam * reg, recon, reg)

    def configure_optimizers(self, lr: float, weight_decay: float) -> list[torch.optim.Optimizer]:
        # one fused kernel over one flat buffer per step (trainers/optim.py, benchmarks/trainer_throughput.py)
        return [optim.adam(self.parameters(), lr=lr, weight_decay=weight_decay)]

    def train_step(self, x: torch.Tensor, optimizers: list[torch.optim.Optimizer]) -> MethodOutput:
        (opt,) = optimizers
        opt.zero_grad(set_to_none=True)
        out = self.compute_loss(x)
        out.loss.backward()
        opt.step()
        return out

    def finish_training(self, train_z: torch.Tensor) -> None:
        """Called once after the last epoch with the training set's encodings; methods with a second stage
        (e.g. a latent generator) train it here."""

    def latent_sampler(self) -> Callable[[int], torch.Tensor] | None:
        """A learned sampler ``n -> (n, latent_dim)`` latents, or None when the method has none of its own."""
        return None
