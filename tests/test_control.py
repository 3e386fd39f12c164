"""The lambda controller (Li & Blair sec. 5): a synthetic plant, resume, bad configs, and short real runs."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from pydantic import ValidationError

from evaluators import names
from evaluators.metric_eccentricity import eccentricity_from_spectrum
from trainers.config import TrainConfig
from trainers.control import DEFAULT_INITIAL_LAMBDA, ControlConfig, LambdaController
from trainers.loop import train

D = 8


def plant_spectrum(spread: float, d: int = D) -> torch.Tensor:
    return torch.exp(-spread * torch.arange(d, dtype=torch.float64) / (d - 1))


def plant_spread(lam: float, midpoint: float = 1e-4) -> float:
    # equilibrium spread falls smoothly with log(lambda): at d = 8, eccentricity 0.86 four decades below the
    # midpoint down to 0.09 three decades above; the midpoint 1e-4 puts it where Li & Blair's lambdas are (1e-6..1e-2)
    return 3.0 / (1.0 + math.exp((math.log(lam) - math.log(midpoint)) / 3.0))


# the synthetic plant has no collapsed start to wait out (the default warm-up's reason): one epoch of it suffices
PLANT = {"warmup_steps": 40}


def run_plant(
    cfg: ControlConfig, steps: int, seed: int, lag: float = 30.0, lam0: float = 1e-5, train_bias: float = 1.0,
    epoch: int = 40, d: int = D, midpoint: float = 1e-4, drift: float = 0.0,
):
    """Latents z ~ N(0, diag(s)) whose spread follows lambda with a first-order lag, like an AE under training.
    It starts a decade below the plant's midpoint, as a real run starts a decade from its target.
    ``train_bias`` < 1 makes the training batches the controller sees less eccentric than the true (eval-mode)
    latents, as BatchNorm's batch statistics do; every ``epoch`` steps the controller is calibrated on the truth.
    ``drift`` > 0 lowers the plant's midpoint by that much log(lambda) per step, so that at a fixed lambda the
    eccentricity keeps falling, as a real autoencoder's does while it trains.

    Returns the per-step true eccentricity and the controller's lambdas.
    """
    gen = torch.Generator().manual_seed(seed)
    ctl = LambdaController(cfg, lam0)
    spread, lam, true_ecc, lams = plant_spread(lam0, midpoint), lam0, [], []
    for step in range(steps):
        spread += (plant_spread(lam, midpoint * math.exp(-drift * step)) - spread) / lag
        s = plant_spectrum(spread, d)
        true_ecc.append(eccentricity_from_spectrum(s))
        z = torch.randn(100, d, generator=gen, dtype=torch.float64) * plant_spectrum(spread * train_bias, d).sqrt()
        lam = ctl.update(z, reg_value=-math.log(lam) + 0.1 * float(torch.randn((), generator=gen)))
        if len(lams) % epoch == epoch - 1:
            ctl.calibrate(true_ecc[-1])
        lams.append(lam)
    return true_ecc, lams


def test_calibration_removes_the_bias_of_training_mode_latents(test_seed):
    # training batches read ~0.08 below the truth near 0.4: uncalibrated, the controller holds the wrong value
    target = 0.4
    uncalibrated = ControlConfig(**PLANT, target_eccentricity=target, calibrate=False)
    biased, _ = run_plant(uncalibrated, steps=1500, train_bias=0.8, seed=test_seed)
    calibrated, _ = run_plant(ControlConfig(**PLANT, target_eccentricity=target), steps=1500, train_bias=0.8, seed=test_seed)
    assert abs(sum(biased[-200:]) / 200 - target) > 0.05
    assert max(abs(e - target) for e in calibrated[-200:]) < 0.02


@pytest.mark.parametrize("lag", [10.0, 100.0])
def test_settles_on_synthetic_plant_without_overshoot(lag, test_seed):
    final_lams = []
    for target in (0.3, 0.5, 0.7):
        cfg = ControlConfig(**PLANT, target_eccentricity=target, calibrate=False)  # the PI loop alone
        ecc, lams = run_plant(cfg, steps=800, lag=lag, seed=test_seed)
        tail = ecc[-200:]
        assert max(abs(e - target) for e in tail) < 0.02, (target, lag, min(tail), max(tail))
        # the plant starts at 0.64 (a decade below its midpoint); past warm-up it never crosses the target by more
        # than 0.03
        w = cfg.warmup_steps
        crossing = max(e - target for e in ecc[w:]) if ecc[w] < target else max(target - e for e in ecc[w:])
        assert crossing < 0.03, (target, lag, crossing)
        final_lams.append(lams[-1])
    assert final_lams[0] > final_lams[1] > final_lams[2]  # higher target eccentricity -> lower lambda


def test_follows_a_plant_that_drifts_with_training(test_seed):
    """A plant whose eccentricity keeps falling at a fixed lambda (midpoint down 0.003 in log(lambda) per step, what
    real d = 16 runs ask of lambda late in training) leaves a PI loop a steady offset of about drift / (ki x plant
    slope). The default eccentricity gains hold it within 0.02 on average; the previous (6, 0.1) left a larger offset,
    as on real runs at d = 16 (0.035-0.052 below their targets)."""
    for target in (0.3, 0.5):
        offsets = {}
        for gains in ((None, None), (6.0, 0.1)):
            cfg = ControlConfig(**PLANT, target_eccentricity=target, calibrate=False, kp=gains[0], ki=gains[1])
            ecc, _ = run_plant(cfg, steps=1000, seed=test_seed, drift=0.003)
            offsets[gains] = sum(e - target for e in ecc[-200:]) / 200
        assert abs(offsets[(None, None)]) < 0.02, (target, offsets)
        assert abs(offsets[(6.0, 0.1)]) > abs(offsets[(None, None)]) + 0.005, (target, offsets)


def test_settles_at_d64_on_the_papers_targets_in_the_papers_lambda_range(test_seed):
    """d = 64 as Li & Blair's CelebA runs, with the plant's lambdas where the papers' are (1e-6 .. 1e-1 around a
    midpoint of 1e-4): Table 1's 0.092 and 0.19 lie below the ~0.13 that a plain estimate from the controller's
    ~3,900 running codes reads for a sphere, so they are reachable only because the estimate is debiased."""
    for target in (0.092, 0.19, 0.3):
        cfg = ControlConfig(**PLANT, target_eccentricity=target, calibrate=False)
        ecc, lams = run_plant(cfg, steps=1000, seed=test_seed, lam0=1e-3, d=64, midpoint=1e-4)
        tail = ecc[-200:]
        assert max(abs(e - target) for e in tail) < 0.02, (target, min(tail), max(tail), lams[-1])
        assert cfg.lambda_min <= 1e-6 and 1e-7 < lams[-1] < 1.0


def test_the_regulariser_error_is_relative_to_the_regularisers_own_scale(test_seed):
    # the eccentric loss's scale grows ~10x from mu 1 to mu 64.5 at d = 64 (-24 vs -248 at the sphere): the same
    # plant at 10x the scale, with its target 10x too, must move lambda exactly as the unscaled one does
    trajectories = []
    for scale in (1.0, 10.0):
        # the plant's answer, exp(-2), lies above the default clamp of 0.1: this tests the scaling, not the clamp
        ctl = LambdaController(ControlConfig(target_reg=20.0 * scale, warmup_steps=0, lambda_max=1.0), initial_lambda=1e-3)
        gen = torch.Generator().manual_seed(test_seed + 1)
        lam, lams = 1e-3, []
        for _ in range(600):
            reg = scale * (-10 * math.log(lam) + float(torch.randn((), generator=gen)))  # falls as lambda rises
            lam = ctl.update(torch.randn(10, D, generator=gen), reg)
            lams.append(lam)
        trajectories.append(lams)
    assert trajectories[0] == pytest.approx(trajectories[1], rel=1e-9)
    assert trajectories[0][-1] == pytest.approx(math.exp(-2.0), rel=0.05)  # -10 log(lambda) = 20


def test_regulariser_target_on_synthetic_plant(test_seed):
    # the synthetic regulariser is -10 log(lambda) + noise, so holding it at 20 means lambda = exp(-2)
    ctl = LambdaController(ControlConfig(target_reg=20.0, warmup_steps=0, lambda_max=1.0), initial_lambda=1.0)
    gen = torch.Generator().manual_seed(test_seed + 1)
    lam = 1.0
    for _ in range(600):
        lam = ctl.update(torch.randn(10, D, generator=gen), -10 * math.log(lam) + float(torch.randn((), generator=gen)))
    assert lam == pytest.approx(math.exp(-2.0), rel=0.05)


def test_sign_clamps_and_warmup():
    cfg = ControlConfig(target_eccentricity=0.0, warmup_steps=3, ki=1.0, max_step=0.1, lambda_max=1.2)
    ctl = LambdaController(cfg, initial_lambda=1.0)
    z = torch.randn(50, D) * torch.linspace(0.1, 3.0, D)  # eccentric, far above the target
    lams = [ctl.update(z, 0.0) for _ in range(6)]
    assert lams[:3] == [1.0, 1.0, 1.0]
    assert lams[3] == pytest.approx(math.exp(0.1))  # above target -> raise lambda, by at most max_step
    assert lams[-1] == pytest.approx(1.2)
    assert [s for s, _, _ in ctl.trajectory] == [1, 2, 3, 4, 5, 6]


def test_state_dict_round_trip_resumes_identically():
    cfg = ControlConfig(target_eccentricity=0.4, warmup_steps=5, every=2)
    gen = torch.Generator().manual_seed(3)
    batches = [torch.randn(64, D, generator=gen) * torch.linspace(0.2, 2.0, D) for _ in range(40)]
    a = LambdaController(cfg, 0.05)
    for z in batches[:20]:
        a.update(z, 1.0)
    b = LambdaController(cfg, 0.05)
    b.load_state_dict(a.state_dict())
    out_a = [a.update(z, 1.0) for z in batches[20:]]
    out_b = [b.update(z, 1.0) for z in batches[20:]]
    assert out_a == out_b
    assert a.trajectory == b.trajectory and len(a.trajectory) == 40


@pytest.mark.parametrize(
    "kwargs",
    [
        {"target_eccentricity": 10.0},
        {"target_eccentricity": -0.1},
        {},
        {"target_eccentricity": 0.5, "target_reg": 1.0},
        {"target_eccentricity": 0.5, "lambda_min": 1.0, "lambda_max": 1.0},
        {"target_eccentricity": 0.5, "kp": -1.0},
        {"target_eccentricity": 0.5, "gain": 1.0},
    ],
)
def test_bad_control_config_rejected(kwargs):
    with pytest.raises(ValidationError):
        ControlConfig(**kwargs)


def test_control_rejected_for_method_without_lambda():
    with pytest.raises(ValidationError, match=r"control: method 'ae' takes no lambda.*eae"):
        TrainConfig(method="ae", control=ControlConfig(target_eccentricity=0.5))


def test_initial_lambda_must_lie_in_bounds():
    ctl = ControlConfig(target_eccentricity=0.5, lambda_min=1e-6, lambda_max=1e-2)
    assert TrainConfig(method="eae", control=ctl).effective_lambda == DEFAULT_INITIAL_LAMBDA
    assert TrainConfig(method="eae", lam=1e-3, control=ctl).effective_lambda == 1e-3
    with pytest.raises(ValidationError, match="outside"):
        TrainConfig(method="eae", lam=0.1, control=ctl)


def _tiny_cfg(seed: int, **control) -> TrainConfig:
    return TrainConfig(
        method="eae", dataset="mnist5k", latent_dim=8, epochs=2, lr=1e-3, max_train=400, eval_probe=200,
        device="cpu", seed=seed, control=ControlConfig(warmup_steps=0, kp=0.0, **control),
    )  # fmt: skip


def test_real_data_loop_reports_moves_lambda_and_resumes(test_seed):
    """mnist5k, 2 epochs of 4 steps: lambda moves the right way, is reported, and a resumed run matches."""
    reports: list[tuple[dict, dict]] = []
    up = train(_tiny_cfg(test_seed, target_eccentricity=0.0), report=lambda m, s: reports.append((m, copy.deepcopy(s))))  # the loop hands live tensors
    assert len(up.control_trajectory) == 8
    assert up.metrics[names.CONTROL_FINAL_LAMBDA] > DEFAULT_INITIAL_LAMBDA  # eccentricity above 0 -> raise lambda
    # a target is judged on the eccentricity with its finite-sample spread removed
    assert up.metrics[names.CONTROL_ABS_ERROR] == pytest.approx(up.metrics[names.EVAL_ECCENTRICITY_DEBIASED])
    assert reports[0][0][names.CONTROL_LAMBDA] == pytest.approx(up.control_trajectory[3][1])
    assert math.isfinite(reports[0][0][names.CONTROL_ECC_ESTIMATE])
    assert math.isfinite(reports[0][0][names.CONTROL_ECC_PROBE])  # eval-mode eccentricity of training images
    assert up.model.lam == up.metrics[names.CONTROL_FINAL_LAMBDA]

    resumed = train(_tiny_cfg(test_seed, target_eccentricity=0.0), resume_state=reports[0][1])
    assert resumed.control_trajectory == up.control_trajectory

    down = train(_tiny_cfg(test_seed, target_eccentricity=9.0))
    assert down.metrics[names.CONTROL_FINAL_LAMBDA] < DEFAULT_INITIAL_LAMBDA


@pytest.mark.slow
@pytest.mark.parametrize("target", [0.3, 0.4, 0.5])
def test_targeted_mnist5k_run_at_d16_lands_near_its_target(target):
    """The built-in `targeting` spec's runs: eae, d = 16, 20 epochs of mnist5k at lr 1e-3, default controller.
    Measured (seed 0) with the gains (6, 0.1): 0.265, 0.362, 0.449, every one 0.035-0.052 below its target; with
    (12, 0.2): 0.272 (0.3), 0.461 (0.5); (12, 0.1) gave 0.388 and (20, 0.2) 0.389 at 0.4 (README "Lambda targeting").
    This holds the controller within 0.06 so that a regression shows here; ±0.02 is not reached yet at d = 16."""
    cfg = TrainConfig(
        method="eae", dataset="mnist5k", latent_dim=16, epochs=20, lr=1e-3, device="cpu",
        control=ControlConfig(target_eccentricity=target),
    )  # fmt: skip
    result = train(cfg)
    assert abs(result.metrics[names.EVAL_ECCENTRICITY_DEBIASED] - target) < 0.06
