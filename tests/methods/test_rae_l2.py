from trainers.methods.rae_l2 import DECODER_WEIGHT_DECAY

NAME = "rae-l2"


def test_build(skeleton):
    model = skeleton.check_registered(NAME)
    assert model.takes_lambda and not model.takes_mu


def test_bad_config(skeleton):
    skeleton.check_bad_config(NAME)


def test_train_steps(skeleton, digits_x):
    skeleton.check_train(skeleton.build(NAME), digits_x)


def test_extra_weight_decay_on_decoder_only(skeleton):
    (opt,) = skeleton.build(NAME).configure_optimizers(1e-3, 1e-6)
    encoder, decoder = opt.param_groups
    assert encoder["weight_decay"] == 1e-6
    assert decoder["weight_decay"] == 1e-6 + DECODER_WEIGHT_DECAY


def test_code_penalty_is_half_squared_norm(skeleton, digits_x):
    model = skeleton.build(NAME)
    z = model.encode(digits_x)
    assert model.regulariser(z).item() == (0.5 * z.pow(2).sum(dim=1).mean()).item()
