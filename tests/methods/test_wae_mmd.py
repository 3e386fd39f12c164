import torch

from trainers.losses import mmd_imq

NAME = "wae-mmd"


def test_build(skeleton):
    model = skeleton.check_registered(NAME)
    assert model.takes_lambda and not model.takes_mu


def test_bad_config(skeleton):
    skeleton.check_bad_config(NAME)


def test_train_steps(skeleton, digits_x):
    skeleton.check_train(skeleton.build(NAME), digits_x)


def test_mmd_small_for_same_distribution_larger_when_shifted():
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(300, 8, generator=gen), torch.randn(300, 8, generator=gen)
    same = mmd_imq(x, y).item()
    shifted = mmd_imq(x, y + 1.0).item()
    assert abs(same) < 0.02
    assert shifted > 20 * max(abs(same), 1e-3)


def test_prior_draws_follow_the_global_seed(skeleton, digits_x):
    model = skeleton.build(NAME)
    z = model.encode(digits_x).detach()
    torch.manual_seed(3)
    a = model.regulariser(z)
    torch.manual_seed(3)
    assert torch.equal(a, model.regulariser(z))
