"""Every registered method trains one real (tiny) epoch through trainers.loop.train on the offline digits."""

from __future__ import annotations

import math

import pytest

from evaluators import names
from trainers import methods
from trainers.config import TrainConfig
from trainers.loop import train

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.mark.parametrize("name", methods.METHODS.names())
def test_one_epoch_on_digits(name, test_seed):
    cls = methods.get(name)
    cfg = TrainConfig(
        method=name,
        dataset="digits",
        latent_dim=4,
        lam=0.1 if cls.takes_lambda else None,
        epochs=1,
        batch_size=50,
        max_train=200,
        eval_probe=100,
        device="cpu",
        seed=test_seed,
    )
    reports = []
    result = train(cfg, report=lambda metrics, state: reports.append(metrics))
    assert len(reports) == 1
    for key in (names.TRAIN_LOSS, names.TRAIN_RECON, names.EVAL_RECON_MSE, names.EVAL_ECCENTRICITY):
        assert math.isfinite(result.metrics[key]), (key, result.metrics[key])
    assert result.test_z.shape == (360, 4)
    sampler = result.model.latent_sampler()
    if sampler is not None:
        assert sampler(7).shape == (7, 4)
