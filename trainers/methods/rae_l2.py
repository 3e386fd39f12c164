"""RAE-L2: lambda * ||z||^2 / 2 plus extra L2 weight decay on the decoder only (Ghosh et al. 2020 sec. 4,
L_REG = ||theta_decoder||^2; tabulated in Ghose 2020 Table 2.1)."""

import torch

from trainers.losses import rae_embedding_loss
from trainers.methods import register
from trainers.methods.base import AutoencoderMethod

# decoder-only L2 weight, added to the run's weight decay; a constant, not swept: pythae's RAE_L2 default reg_weight
DECODER_WEIGHT_DECAY = 1e-7


@register("rae-l2")
class RAEL2(AutoencoderMethod):
    paper = "Ghosh et al. 2020, 'From variational to deterministic autoencoders', sec. 4 (RAE-L2)"
    takes_lambda = True

    def regulariser(self, z: torch.Tensor) -> torch.Tensor:
        return rae_embedding_loss(z)

    def configure_optimizers(self, lr: float, weight_decay: float) -> list[torch.optim.Optimizer]:
        # Adam's weight_decay adds wd * theta to the gradient, i.e. the gradient of (wd / 2) ||theta||^2
        groups = [
            {"params": self.encoder.parameters(), "weight_decay": weight_decay},
            {"params": self.decoder.parameters(), "weight_decay": weight_decay + DECODER_WEIGHT_DECAY},
        ]
        return [torch.optim.Adam(groups, lr=lr)]
