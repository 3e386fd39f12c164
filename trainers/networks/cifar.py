"""The entropic thesis's CIFAR-10 encoder/decoder (Ghose 2020 sec. 2.5.1, the RAE networks) for 32x32x3 images.

Encoder: Conv k4 s2 p1 with 128-256-512-1024 channels, each BN + ReLU (32->16->8->4->2), then FC to encoder_out.
Decoder: FC to 8x8x1024, ConvT k4 s2 p1 512-256 with BN + ReLU (8->16->32), then the terminal stride-1 k4 layer
to 3 channels. A k4 s1 layer cannot keep 32x32 with symmetric padding; we pad (1, 2) like TensorFlow's "same",
which the RAE code the thesis matches used. Sigmoid output, as our images are in [0, 1].
"""

from __future__ import annotations

from torch import nn

from trainers.networks import Architecture, register


def build(encoder_out: int, latent_dim: int) -> tuple[nn.Module, nn.Module]:
    down = [(3, 128), (128, 256), (256, 512), (512, 1024)]
    encoder = nn.Sequential(
        *[
            m
            for c_in, c_out in down
            for m in (nn.Conv2d(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))
        ],
        nn.Flatten(),
        nn.Linear(1024 * 2 * 2, encoder_out),
    )
    up = [(1024, 512), (512, 256)]
    decoder = nn.Sequential(
        nn.Linear(latent_dim, 1024 * 8 * 8),
        nn.Unflatten(1, (1024, 8, 8)),
        nn.BatchNorm2d(1024),
        nn.ReLU(inplace=True),
        *[
            m
            for c_in, c_out in up
            for m in (nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))
        ],
        nn.ZeroPad2d((1, 2, 1, 2)),
        nn.Conv2d(256, 3, 4, 1),
        nn.Sigmoid(),
    )
    return encoder, decoder


CIFAR = register(
    Architecture("cifar-conv", (3, 32, 32), build, "Ghose 2020 sec. 2.5.1 (RAE CIFAR-10 network)")
)
