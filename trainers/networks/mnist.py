"""The eccentric paper's MNIST encoder/decoder (Li & Blair appendix A.4) for 32x32x1 images.

Choices where A.4 is ambiguous: convolutions are unpadded, so the encoder maps 32->28->13->10->4; the
decoder's first fractionally-strided layer uses a 4x4 kernel (A.4 says 3x3) so the decoder mirrors the
encoder's geometry 4->10->13->28->32 and outputs 32x32 (a 3x3 start ends at 28x28).
"""

from __future__ import annotations

from torch import nn

from trainers.networks import Architecture, register


def _block(conv: nn.Module, channels: int) -> list[nn.Module]:
    return [conv, nn.BatchNorm2d(channels), nn.LeakyReLU(0.1, inplace=True)]


def build(encoder_out: int, latent_dim: int) -> tuple[nn.Module, nn.Module]:
    encoder = nn.Sequential(
        *_block(nn.Conv2d(1, 16, 5, 1), 16),
        *_block(nn.Conv2d(16, 24, 4, 2), 24),
        *_block(nn.Conv2d(24, 32, 4, 1), 32),
        *_block(nn.Conv2d(32, 48, 4, 2), 48),
        nn.Flatten(),
        nn.Linear(48 * 4 * 4, 64),
        nn.Linear(64, encoder_out),
    )
    decoder = nn.Sequential(
        nn.Unflatten(1, (latent_dim, 1, 1)),
        *_block(nn.ConvTranspose2d(latent_dim, 48, 4, 1), 48),
        *_block(nn.ConvTranspose2d(48, 32, 4, 2), 32),
        *_block(nn.ConvTranspose2d(32, 24, 4, 1), 24),
        *_block(nn.ConvTranspose2d(24, 16, 4, 2), 16),
        *_block(nn.ConvTranspose2d(16, 16, 5, 1), 16),
        *_block(nn.ConvTranspose2d(16, 16, 1, 1), 16),
        nn.ConvTranspose2d(16, 1, 1, 1),
        nn.Sigmoid(),
    )
    return encoder, decoder


MNIST = register(Architecture("mnist-conv", (1, 32, 32), build, "Li & Blair A.4, MNIST"))
