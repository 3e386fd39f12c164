"""Spherical auto-encoder: centre each code over its coordinates, then project it onto a sphere; no regulariser
(Zhao, Zhu & Zhang 2019, eq. 10-11)."""

import math

import torch

from trainers.methods import register
from trainers.methods.base import AutoencoderMethod


def centre_and_spherize(z: torch.Tensor) -> torch.Tensor:
    """z_i - mean_j(z_i^j), scaled to norm sqrt(d)."""
    centred = z - z.mean(dim=1, keepdim=True)
    # radius sqrt(d) rather than eq. 10's unit sphere: our choice, so codes have the per-coordinate scale (about 1)
    # of the other methods' latents and the same samplers and metrics apply
    radius = math.sqrt(z.shape[1])
    return radius * centred / centred.norm(dim=1, keepdim=True).clamp_min(1e-12)


@register("sae")
class SAE(AutoencoderMethod):
    paper = "Zhao, Zhu & Zhang 2019, 'Latent variables on spheres', eq. (10) spherical auto-encoder"
    takes_lambda = False

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return centre_and_spherize(self.encoder(x))
