"""RAE-SN: lambda * ||z||^2 / 2 with spectral normalisation on the decoder's linear and convolutional layers
(Ghosh et al. 2020 sec. 4, after Miyato et al. 2018; tabulated in Ghose 2020 Table 2.1)."""

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from trainers.losses import rae_embedding_loss
from trainers.methods import register
from trainers.methods.base import DEFAULT_RECON, AutoencoderMethod
from trainers.networks import Architecture

NORMALISED_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d)


@register("rae-sn")
class RAESN(AutoencoderMethod):
    paper = "Ghosh et al. 2020, 'From variational to deterministic autoencoders', sec. 4 (RAE-SN)"
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
        layers = [m for m in self.decoder.modules() if isinstance(m, NORMALISED_LAYERS)]
        if not layers:
            raise ValueError(f"architecture {arch.name!r} has no linear or conv decoder layer to normalise")
        for layer in layers:
            spectral_norm(layer)

    def regulariser(self, z: torch.Tensor) -> torch.Tensor:
        return rae_embedding_loss(z)
