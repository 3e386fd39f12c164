import math

import pytest
import torch

from trainers.losses import kozachenko_leonenko_entropy

NAME = "entropic"


def test_build(skeleton):
    model = skeleton.check_registered(NAME)
    assert model.takes_lambda and not model.takes_mu
    assert not model.latent_bn.affine


def test_bad_config(skeleton):
    skeleton.check_bad_config(NAME)


def test_train_steps(skeleton, digits_x):
    outs = skeleton.check_train(skeleton.build(NAME), digits_x)
    assert all(out.reg < 0 for out in outs)  # reg = -H, and the codes' entropy is positive here


def test_codes_are_batch_normalised(skeleton, digits_x):
    model = skeleton.build(NAME).train()
    z = model.encode(digits_x)
    torch.testing.assert_close(z.mean(dim=0), torch.zeros(z.shape[1]), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.var(dim=0, unbiased=False), torch.ones(z.shape[1]), atol=0.05, rtol=0)  # BN eps


def test_kozachenko_leonenko_matches_gaussian_entropy():
    gen = torch.Generator().manual_seed(0)
    d = 4
    a = torch.randn(d, d, generator=gen)
    cov = a @ a.T + torch.eye(d)
    z = torch.randn(2000, d, generator=gen) @ torch.linalg.cholesky(cov).T
    exact = 0.5 * d * math.log(2 * math.pi * math.e) + 0.5 * torch.logdet(cov).item()
    assert kozachenko_leonenko_entropy(z).item() == pytest.approx(exact, rel=0.05)


def test_kozachenko_leonenko_rejects_bad_k():
    with pytest.raises(ValueError, match="k"):
        kozachenko_leonenko_entropy(torch.randn(5, 2), k=5)
