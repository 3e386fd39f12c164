import pytest
import torch
from torch.nn.utils import parametrize

from trainers.methods.rae_sn import NORMALISED_LAYERS

NAME = "rae-sn"


def test_build(skeleton):
    model = skeleton.check_registered(NAME)
    assert model.takes_lambda and not model.takes_mu


def test_bad_config(skeleton):
    skeleton.check_bad_config(NAME)


def test_train_steps(skeleton, digits_x):
    skeleton.check_train(skeleton.build(NAME), digits_x)


def test_decoder_layers_have_unit_spectral_norm(skeleton, digits_x):
    model = skeleton.build(NAME)
    skeleton.check_train(model, digits_x, steps=1)
    model.eval()
    layers = [m for m in model.decoder.modules() if isinstance(m, NORMALISED_LAYERS)]
    assert len(layers) == 3
    for layer in layers:
        sigma = torch.linalg.matrix_norm(layer.weight.detach().flatten(1), ord=2).item()
        # one power iteration per training forward: the estimate lags the last step slightly
        assert sigma == pytest.approx(1.0, abs=0.1)
    assert not any(parametrize.is_parametrized(m) for m in model.encoder.modules())
