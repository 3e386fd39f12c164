"""WAE-MMD: deterministic encoder, lambda * unbiased MMD between the codes and N(0, I) samples under the
multi-scale inverse multiquadratic kernel (Tolstikhin et al. 2018, Algorithm 2 and sec. 4)."""

import torch

from trainers.losses import IMQ_SCALES, mmd_imq
from trainers.methods import register
from trainers.methods.base import AutoencoderMethod


@register("wae-mmd")
class WAEMMD(AutoencoderMethod):
    paper = "Tolstikhin et al. 2018, 'Wasserstein Auto-Encoders', Algorithm 2 (WAE-MMD, IMQ kernel)"
    takes_lambda = True

    def regulariser(self, z: torch.Tensor) -> torch.Tensor:
        # torch's global RNG, which the loop seeds and checkpoints, so a resumed run draws the same prior samples
        prior = torch.randn(z.shape, device=z.device, dtype=z.dtype)
        return mmd_imq(z, prior, IMQ_SCALES)
