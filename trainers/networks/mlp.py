"""A small MLP for tiny images: scikit-learn's 8x8 digits (1, 8, 8); fast enough for smoke tests on a CPU."""

from __future__ import annotations

from torch import nn

from trainers.networks import Architecture, register

HIDDEN = 128


def build(encoder_out: int, latent_dim: int) -> tuple[nn.Module, nn.Module]:
    encoder = nn.Sequential(
        nn.Flatten(),
        nn.Linear(64, HIDDEN),
        nn.ReLU(inplace=True),
        nn.Linear(HIDDEN, HIDDEN),
        nn.ReLU(inplace=True),
        nn.Linear(HIDDEN, encoder_out),
    )
    decoder = nn.Sequential(
        nn.Linear(latent_dim, HIDDEN),
        nn.ReLU(inplace=True),
        nn.Linear(HIDDEN, HIDDEN),
        nn.ReLU(inplace=True),
        nn.Linear(HIDDEN, 64),
        nn.Sigmoid(),
        nn.Unflatten(1, (1, 8, 8)),
    )
    return encoder, decoder


MLP_SMALL = register(Architecture("mlp-small", (1, 8, 8), build, "none: a small MLP for 8x8 digits"))
