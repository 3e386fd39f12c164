"""Eccentric autoencoder: L2 reconstruction + lambda * l_mu(z) (Li & Blair sec. 4, loss of sec. 3)."""

import torch

from trainers.losses import eccentric_loss
from trainers.methods import register
from trainers.methods.base import AutoencoderMethod


@register("eae")
class EAE(AutoencoderMethod):
    paper = "Li & Blair 2022, 'Eccentric Regularization', eq. (1) with M of sec. 2"
    takes_lambda = True
    takes_mu = True
    default_mu = 1.0

    def regulariser(self, z: torch.Tensor) -> torch.Tensor:
        return eccentric_loss(z, self.mu)
