"""beta-VAE: Gaussian encoder, reparameterised sample, lambda * KL(q(z|x) || N(0, I)) (Kingma & Welling 2014 eq. 10,
weighted as in Higgins et al. 2017 eq. 4)."""

import torch

from trainers.losses import gaussian_kl
from trainers.methods import register
from trainers.methods.base import AutoencoderMethod, MethodOutput


@register("vae")
class VAE(AutoencoderMethod):
    paper = "Kingma & Welling 2014 (VAE), KL weighted by lambda as in Higgins et al. 2017 (beta-VAE)"
    takes_lambda = True
    encoder_out_factor = 2

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.posterior(x)[0]

    def compute_loss(self, x: torch.Tensor) -> MethodOutput:
        mean, logvar = self.posterior(x)
        self.last_z = mean.detach()  # the deterministic code, as encode() returns
        z = (
            mean + torch.randn_like(mean) * (0.5 * logvar).exp()
        )  # reparameterisation, Kingma & Welling sec. 2.4
        recon = self.recon_loss(self.decode(z), x)
        reg = gaussian_kl(mean, logvar)
        return MethodOutput(recon + self.lam * reg, recon, reg)
