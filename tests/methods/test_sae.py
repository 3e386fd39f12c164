import math

import torch

NAME = "sae"


def test_build(skeleton):
    model = skeleton.check_registered(NAME)
    assert not model.takes_lambda and not model.takes_mu


def test_bad_config(skeleton):
    skeleton.check_bad_config(NAME)


def test_train_steps(skeleton, digits_x):
    skeleton.check_train(skeleton.build(NAME), digits_x)


def test_codes_centred_on_sphere_of_radius_sqrt_d(skeleton, digits_x):
    model = skeleton.build(NAME, latent_dim=6).eval()
    with torch.no_grad():
        z = model.encode(digits_x)
    torch.testing.assert_close(z.mean(dim=1), torch.zeros(len(z)), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.norm(dim=1), torch.full((len(z),), math.sqrt(6)), atol=1e-5, rtol=1e-5)
