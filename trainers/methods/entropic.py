"""Entropic autoencoder: batch norm without affine parameters after the encoder and lambda * (-H(z)), the
Kozachenko-Leonenko entropy of the batch of codes maximised (Ghose 2020 sec. 2.3, eq. 2.2)."""

import torch
from torch import nn

from trainers.losses import kozachenko_leonenko_entropy
from trainers.methods import register
from trainers.methods.base import DEFAULT_RECON, AutoencoderMethod
from trainers.networks import Architecture

# neighbours per code in the estimator; the thesis (additional results) finds 1 suffices
NEIGHBOURS = 1


@register("entropic")
class Entropic(AutoencoderMethod):
    paper = "Ghose 2020, 'Batch norm with entropic regularization', sec. 2.3 eq. (2.2)"
    takes_lambda = True

    def __init__(
        self,
        arch: Architecture,
        latent_dim: int,
        lam: float = 0.0,
        mu: float | None = None,
        recon: str = DEFAULT_RECON,
        recon_scale: float = 1.0,
    ):
        super().__init__(arch, latent_dim, lam, mu, recon, recon_scale)
        self.latent_bn = nn.BatchNorm1d(latent_dim, affine=False)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.latent_bn(self.encoder(x))

    def regulariser(self, z: torch.Tensor) -> torch.Tensor:
        return -kozachenko_leonenko_entropy(z, NEIGHBOURS)
