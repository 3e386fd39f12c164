"""Architecture registry: name -> factory(latent_out, latent_dim) building (encoder, decoder) for one image shape."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from evaluators.registry import Registry


@dataclass(frozen=True)
class Architecture:
    name: str
    image_shape: tuple[int, int, int]
    # build(encoder_out_features, latent_dim) -> (encoder, decoder); encoder_out may be 2d (VAE mean + logvar)
    build: Callable[[int, int], tuple[nn.Module, nn.Module]]
    paper: str


ARCHITECTURES: Registry[Architecture] = Registry("architecture")


def register(arch: Architecture) -> Architecture:
    return ARCHITECTURES.register(arch.name)(arch)


def get(name: str) -> Architecture:
    return ARCHITECTURES.get(name)


from trainers.networks import celeba, cifar, mlp, mnist  # noqa: E402,F401  (registration)
