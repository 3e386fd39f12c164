"""Li & Blair's CelebA encoder/decoder (appendix A.4) for 64x64x3 images.

A.4's encoder ends in FC_64 (its d); here the FC goes to ``encoder_out`` so a VAE can output mean and log-variance.
Convolutions use padding 1, so each k4 s2 layer halves (encoder 64->32->16->8->4) or doubles (decoder 8->64).
"""

from __future__ import annotations

from torch import nn

from trainers.networks import Architecture, register


def _down(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


def _up(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


def build(encoder_out: int, latent_dim: int) -> tuple[nn.Module, nn.Module]:
    encoder = nn.Sequential(
        *_down(3, 128),
        *_down(128, 256),
        *_down(256, 512),
        *_down(512, 1024),
        nn.Flatten(),
        nn.Linear(1024 * 4 * 4, encoder_out),
    )
    decoder = nn.Sequential(
        nn.Linear(latent_dim, 1024 * 8 * 8),
        nn.Unflatten(1, (1024, 8, 8)),
        *_up(1024, 512),
        *_up(512, 256),
        *_up(256, 128),
        nn.ConvTranspose2d(128, 3, 1, 1),
        nn.Sigmoid(),
    )
    return encoder, decoder


CELEBA = register(Architecture("celeba-conv", (3, 64, 64), build, "Li & Blair A.4, CelebA"))
