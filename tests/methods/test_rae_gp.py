import torch

from trainers.methods.rae_gp import decoder_gradient_penalty

NAME = "rae-gp"


def test_build(skeleton):
    model = skeleton.check_registered(NAME)
    assert model.takes_lambda and not model.takes_mu


def test_bad_config(skeleton):
    skeleton.check_bad_config(NAME)


def test_train_steps(skeleton, digits_x):
    skeleton.check_train(skeleton.build(NAME), digits_x)


def test_gradient_penalty_of_a_linear_decoder():
    w = torch.randn(3, 5, requires_grad=True)
    z = torch.randn(4, 3, requires_grad=True)
    gp = decoder_gradient_penalty(z @ w, z)
    # d sum(z w) / dz = w.sum(1) for every code
    torch.testing.assert_close(gp, w.detach().sum(dim=1).pow(2).sum())
    assert gp.requires_grad  # create_graph: the penalty is itself differentiable
