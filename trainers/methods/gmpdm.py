"""GMPDM: an autoencoder with batch norm on the latent and an adversarial interpolation regulariser (stage 1), then
a latent generator g mapping N(0, I) noise onto the encodings by a hinge-loss GAN (stage 2) (Geng et al. 2021).

Stage 1, per batch: the critic d minimises eq. (9),
    ||d(x)||^2 + ||d(gamma x + (1 - gamma) x_hat) - offset||^2 + ||d(x_alpha) - alpha - offset||^2,
with x_hat = G(E(x)), x_alpha = G(alpha E(x1) + (1 - alpha) E(x2)), alpha ~ U[0, 0.5]; the autoencoder minimises
eq. (10), ||x - x_hat||^2 + lambda (||d(x_alpha)||^2 + ||d(x_hat)||^2). Stage 2 trains g against a latent
discriminator D with eqs. (12)-(13) on the training encodings, once, after the last epoch.

Choices where the paper is silent: eq. (10)'s omega_1 = omega_2 = lambda (one swept weight); eq. (9)'s gamma and
lambda (here OFFSET, to keep it apart from our lambda) are constants below; the critic is the architecture's
encoder with its outputs averaged to a scalar, as in ACAI (Berthelot et al. 2019 sec. 3); x2 is the batch reversed;
stage 2's discriminator carries an R1 penalty (STAGE2_R1), so the fixed step budget ends near an equilibrium.
"""

from collections.abc import Callable

import torch
from torch import nn

from trainers.methods import register
from trainers.methods.base import DEFAULT_RECON, AutoencoderMethod, MethodOutput
from trainers.networks import Architecture

GAMMA = 0.2  # eq. (9)'s gamma, ACAI's value (Berthelot et al. 2019 sec. 3)
OFFSET = 0.1  # eq. (9)'s lambda: the critic target for x/x_hat blends; not given in the paper
ALPHA_MAX = 0.5  # alpha ~ U[0, 0.5] (Geng et al., below eq. 9)

# stage 2: fixed small budget, so it adds seconds, not epochs, to a run
STAGE2_STEPS = 1000
STAGE2_BATCH = 256
STAGE2_LR = 1e-3
STAGE2_BETAS = (0.5, 0.9)
STAGE2_HIDDEN = 64
# R1 penalty (gamma / 2) E ||grad D(real)||^2 on the latent discriminator (Mescheder et al. 2018 eq. 9): the
# unregularised hinge game need not converge, and over 16 seeds it left the generator's covariance off by up to 0.9
STAGE2_R1 = 1.0


def _mlp(d_in: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(d_in, STAGE2_HIDDEN),
        nn.LeakyReLU(0.2),
        nn.Linear(STAGE2_HIDDEN, STAGE2_HIDDEN),
        nn.LeakyReLU(0.2),
        nn.Linear(STAGE2_HIDDEN, d_out),
    )


@register("gmpdm")
class GMPDM(AutoencoderMethod):
    paper = "Geng et al. 2021, 'Generative Model without Prior Distribution Matching', eqs. (9)-(13)"
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
        self.latent_bn = nn.BatchNorm1d(latent_dim, affine=False)  # eq. (11)
        self.critic = arch.build(latent_dim, latent_dim)[0]
        self.generator = _mlp(latent_dim, latent_dim)
        self.latent_disc = _mlp(latent_dim, 1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.latent_bn(self.encoder(x))

    def critic_score(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(x).mean(dim=1)

    def configure_optimizers(self, lr: float, weight_decay: float) -> list[torch.optim.Optimizer]:
        autoencoder = [*self.encoder.parameters(), *self.decoder.parameters()]
        return [
            torch.optim.Adam(autoencoder, lr=lr, weight_decay=weight_decay),
            torch.optim.Adam(self.critic.parameters(), lr=lr, weight_decay=weight_decay),
        ]

    def train_step(self, x: torch.Tensor, optimizers: list[torch.optim.Optimizer]) -> MethodOutput:
        ae_opt, critic_opt = optimizers
        z = self.encode(x)
        self.last_z = z.detach()
        x_hat = self.decode(z)
        alpha = torch.rand(len(x), 1, device=x.device, dtype=x.dtype) * ALPHA_MAX
        x_alpha = self.decode(alpha * z + (1 - alpha) * z.flip(0))

        recon = self.recon_loss(x_hat, x)
        reg = self.critic_score(x_alpha).pow(2).mean() + self.critic_score(x_hat).pow(2).mean()  # eq. (10)
        loss = recon + self.lam * reg
        ae_opt.zero_grad(set_to_none=True)
        loss.backward()
        ae_opt.step()

        x_hat, x_alpha = x_hat.detach(), x_alpha.detach()
        blend = GAMMA * x + (1 - GAMMA) * x_hat
        critic_loss = (  # eq. (9)
            self.critic_score(x).pow(2).mean()
            + (self.critic_score(blend) - OFFSET).pow(2).mean()
            + (self.critic_score(x_alpha) - alpha.squeeze(1) - OFFSET).pow(2).mean()
        )
        critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        critic_opt.step()
        return MethodOutput(loss.detach(), recon.detach(), reg.detach())

    def finish_training(self, train_z: torch.Tensor) -> None:
        """Stage 2: fit g(noise) to the encodings with the hinge GAN of eqs. (12)-(13)."""
        train_z = train_z.detach().to(next(self.generator.parameters()).device)
        g_opt = torch.optim.Adam(self.generator.parameters(), lr=STAGE2_LR, betas=STAGE2_BETAS)
        d_opt = torch.optim.Adam(self.latent_disc.parameters(), lr=STAGE2_LR, betas=STAGE2_BETAS)
        batch = min(STAGE2_BATCH, len(train_z))
        # learning rates decay linearly to 0, so the adversarial game settles instead of ending mid-oscillation
        schedules = [
            torch.optim.lr_scheduler.LambdaLR(o, lambda t: 1 - t / STAGE2_STEPS) for o in (g_opt, d_opt)
        ]
        with torch.enable_grad():
            for _ in range(STAGE2_STEPS):
                real = train_z[torch.randint(len(train_z), (batch,), device=train_z.device)].requires_grad_(True)
                fake = self.generator(torch.randn_like(real))
                d_real = self.latent_disc(real)
                (grad_real,) = torch.autograd.grad(d_real.sum(), real, create_graph=True)
                d_loss = (  # eq. (12), plus R1
                    torch.relu(1 - d_real).mean()
                    + torch.relu(1 + self.latent_disc(fake.detach())).mean()
                    + STAGE2_R1 / 2 * grad_real.pow(2).sum(dim=1).mean()
                )
                d_opt.zero_grad(set_to_none=True)
                d_loss.backward()
                d_opt.step()
                g_loss = -self.latent_disc(fake).mean()  # eq. (13)
                g_opt.zero_grad(set_to_none=True)
                g_loss.backward()
                g_opt.step()
                for schedule in schedules:
                    schedule.step()

    def latent_sampler(self) -> Callable[[int], torch.Tensor]:
        def sample(n: int) -> torch.Tensor:
            device = next(self.generator.parameters()).device
            with torch.no_grad():
                return self.generator(torch.randn(n, self.latent_dim, device=device))

        return sample
