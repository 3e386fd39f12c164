import torch

from trainers.losses import gaussian_kl

NAME = "vae"


def test_build(skeleton):
    model = skeleton.check_registered(NAME)
    assert model.takes_lambda and not model.takes_mu and model.encoder_out_factor == 2


def test_bad_config(skeleton):
    skeleton.check_bad_config(NAME)


def test_train_steps(skeleton, digits_x):
    skeleton.check_train(skeleton.build(NAME), digits_x)


def test_kl_zero_at_prior():
    assert gaussian_kl(torch.zeros(5, 3), torch.zeros(5, 3)).item() == 0.0
    assert gaussian_kl(torch.ones(5, 3), torch.zeros(5, 3)).item() == 1.5  # 0.5 * mean^2 summed over 3 dims


def test_kl_term_zero_when_encoder_outputs_prior(skeleton, digits_x):
    model = skeleton.build(NAME)
    last = model.encoder[-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)  # mean 0, log-variance 0: q(z|x) = N(0, I)
    assert model.compute_loss(digits_x).reg.item() == 0.0


def test_encode_is_the_mean(skeleton, digits_x):
    model = skeleton.build(NAME).eval()
    with torch.no_grad():
        assert torch.equal(model.encode(digits_x), model.encoder(digits_x)[:, : model.latent_dim])
