import torch

from trainers import methods, networks

NAME = "gmpdm"


def test_build(skeleton):
    model = skeleton.check_registered(NAME)
    assert model.takes_lambda and not model.takes_mu


def test_bad_config(skeleton):
    skeleton.check_bad_config(NAME)


def test_train_steps(skeleton, digits_x):
    model = skeleton.build(NAME)
    critic_before = [p.detach().clone() for p in model.critic.parameters()]
    skeleton.check_train(model, digits_x)
    assert any(not torch.equal(b, p) for b, p in zip(critic_before, model.critic.parameters(), strict=True))
    assert len(model.configure_optimizers(1e-3, 0.0)) == 2


def test_codes_are_batch_normalised(skeleton, digits_x):
    z = skeleton.build(NAME).train().encode(digits_x)
    torch.testing.assert_close(z.mean(dim=0), torch.zeros(z.shape[1]), atol=1e-5, rtol=0)


def _errors(model, z):
    s = model.latent_sampler()(4000)
    return (s.mean(0) - z.mean(0)).abs().max().item(), (torch.cov(s.T) - torch.cov(z.T)).abs().max().item()


def test_stage2_generator_matches_encoding_moments():
    torch.manual_seed(0)
    model = methods.get(NAME)(networks.get("mlp-small"), 2, 1.0)
    chol = torch.linalg.cholesky(torch.tensor([[1.0, 0.6], [0.6, 1.0]]))
    z = torch.randn(2000, 2) @ chol.T + torch.tensor([0.5, -0.5])
    mean_before, cov_before = _errors(model, z)
    model.finish_training(z)
    mean_err, cov_err = _errors(model, z)
    assert mean_err < 0.2 and cov_err < 0.35
    assert mean_before > 0.4 or cov_before > 0.6  # the untrained generator was far off


def test_other_methods_have_no_sampler_or_stage2(skeleton, digits_x):
    model = skeleton.build("ae")
    assert model.latent_sampler() is None
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.finish_training(torch.randn(10, model.latent_dim))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
