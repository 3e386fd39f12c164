"""The shared skeleton of every method's tests: build, bad config rejected, a few steps on tiny data, shapes."""

from __future__ import annotations

import math

import pytest
import torch

from trainers import datasets, methods, networks
from trainers.methods.base import AutoencoderMethod

LATENT_DIM = 4


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    # the test machine's cores are shared; one thread per test process avoids oversubscription
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def digits_x() -> torch.Tensor:
    return datasets.load("digits").train_x[:64].float() / 255.0


class Skeleton:
    def __init__(self, seed: int):
        self.seed = seed  # every model a test builds starts from the same weights

    def build(self, name: str, lam: float | None = None, latent_dim: int = LATENT_DIM, arch: str = "mlp-small"):
        cls = methods.get(name)
        if lam is None:
            lam = 0.5 if cls.takes_lambda else 0.0
        torch.manual_seed(self.seed)
        return cls(networks.get(arch), latent_dim, lam)

    def check_registered(self, name: str) -> AutoencoderMethod:
        model = self.build(name)
        assert methods.get(name) is type(model) and model.name == name
        assert model.paper, f"{name} must cite its paper"
        return model

    def check_bad_config(self, name: str) -> None:
        cls = methods.get(name)
        arch = networks.get("mlp-small")
        with pytest.raises(ValueError, match="latent_dim"):
            cls(arch, 1, 0.0)
        with pytest.raises(ValueError, match="lambda"):
            cls(arch, LATENT_DIM, -1.0)
        if not cls.takes_lambda:
            with pytest.raises(ValueError, match="takes no lambda"):
                cls(arch, LATENT_DIM, 0.5)
        if not cls.takes_mu:
            with pytest.raises(ValueError, match="takes no mu"):
                cls(arch, LATENT_DIM, 0.0, mu=2.0)

    def check_train(self, model: AutoencoderMethod, x: torch.Tensor, steps: int = 3) -> list:
        """A few optimiser steps: finite outputs, parameters move, encode/decode shapes."""
        optimizers = model.configure_optimizers(1e-3, 1e-6)
        before = [p.detach().clone() for p in model.encoder.parameters()]
        model.train()
        outs = [model.train_step(x, optimizers) for _ in range(steps)]
        for out in outs:
            assert all(math.isfinite(float(v.detach())) for v in out), out
        assert any(not torch.equal(b, p) for b, p in zip(before, model.encoder.parameters(), strict=True))
        model.eval()
        with torch.no_grad():
            z = model.encode(x)
            assert z.shape == (len(x), model.latent_dim)
            assert model.decode(z).shape == x.shape
        return outs


@pytest.fixture
def skeleton(test_seed) -> Skeleton:
    return Skeleton(test_seed)
