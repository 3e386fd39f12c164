"""The interface every method implements: encode, decode, a regulariser and (optionally) its own step."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from trainers import optim
from trainers.networks import Architecture


class MethodOutput(NamedTuple):
    loss: torch.Tensor
    recon: torch.Tensor
    reg: torch.Tensor


def recon_loss(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    # L2 reconstruction (Li & Blair sec. 4): squared error summed over pixels, averaged over the batch (one op)
    return F.mse_loss(x_hat, x, reduction="sum") / x.shape[0]


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

    def __init__(self, arch: Architecture, latent_dim: int, lam: float = 0.0, mu: float | None = None):
        super().__init__()
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
        self.encoder, self.decoder = arch.build(latent_dim * self.encoder_out_factor, latent_dim)
        self.last_z: torch.Tensor | None = None

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic encoding used for evaluation, sampling and cross-run analysis."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def regulariser(self, z: torch.Tensor) -> torch.Tensor:
        return z.new_zeros(())

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
        recon = recon_loss(self.decode(z), x)
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
