"""RAE-GP: lambda * ||z||^2 / 2 plus a fixed-weight decoder gradient penalty ||grad_z D(z)||^2 (Ghosh et al. 2020
sec. 4, L_REG = ||grad D(z)||^2; tabulated in Ghose 2020 Table 2.1)."""

import torch

from trainers.losses import rae_embedding_loss
from trainers.methods import register
from trainers.methods.base import AutoencoderMethod, MethodOutput

# weight of the gradient penalty; a constant, not swept (lambda weighs the code penalty): pythae's RAE_GP default
GRADIENT_PENALTY_WEIGHT = 1e-7


def decoder_gradient_penalty(x_hat: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """||d sum(D(z)) / dz||^2 per code, batch mean; create_graph so the penalty itself is trained."""
    (grad,) = torch.autograd.grad(x_hat, z, grad_outputs=torch.ones_like(x_hat), create_graph=True)
    return grad.pow(2).flatten(1).sum(dim=1).mean()


@register("rae-gp")
class RAEGP(AutoencoderMethod):
    paper = "Ghosh et al. 2020, 'From variational to deterministic autoencoders', sec. 4 (RAE-GP)"
    takes_lambda = True

    def regulariser(self, z: torch.Tensor) -> torch.Tensor:
        return rae_embedding_loss(z)

    def compute_loss(self, x: torch.Tensor) -> MethodOutput:
        z = self.encode(x)
        self.last_z = z.detach()
        x_hat = self.decode(z)
        recon = self.recon_loss(x_hat, x)
        reg = self.regulariser(z)
        gp = decoder_gradient_penalty(x_hat, z)
        # reg reports the lambda-weighted code penalty; the fixed-weight penalty enters the loss only
        return MethodOutput(recon + self.lam * reg + GRADIENT_PENALTY_WEIGHT * gp, recon, reg)
