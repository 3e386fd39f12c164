"""The training loop: data held on the device as one uint8 tensor, batches drawn there, a ``report`` callback.

``report(metrics, state)`` is called once per epoch; ``state`` is everything needed to resume exactly
(model, optimisers, epoch, RNG, lambda). The caller decides where to store it; this module knows nothing of
Ray or MLflow.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from evaluators import names
from evaluators.metric_convergence import convergence_metrics
from evaluators.metric_eccentricity import (
    eccentricity_debiased,
    eccentricity_debiased_from_spectrum,
    eccentricity_from_spectrum,
    latent_covariance,
    spectrum,
)
from evaluators.metric_recon import recon_mse
from trainers import datasets, methods, networks
from trainers.config import TrainConfig
from trainers.control import LambdaController
from trainers.datasets import ImageData
from trainers.methods.base import AutoencoderMethod

Report = Callable[[dict[str, float], dict[str, Any]], None]


class DivergedError(RuntimeError):
    """The loss became NaN or infinite; retrying from a checkpoint would diverge again."""


@dataclass
class TrainResult:
    model: AutoencoderMethod
    data: ImageData
    metrics: dict[str, float]
    spectrum: list[float]
    test_z: torch.Tensor
    epochs_run: int
    train_z: torch.Tensor | None = None  # encodings of the (first max_train) training images, eval mode
    # (step, lambda, eccentricity estimate) after each step of a lambda-controlled run
    control_trajectory: list[tuple[int, float, float]] = field(default_factory=list)
    # mean training loss of each epoch (NaN for epochs before a resume from a checkpoint that had no history)
    loss_history: list[float] = field(default_factory=list)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@functools.lru_cache(maxsize=4)
def cached_dataset(name: str, data_root: str | None) -> ImageData:
    """One copy per process, so a reused Ray actor does not reload between trials."""
    return datasets.load(name, data_root)


def build_model(cfg: TrainConfig, image_shape: tuple[int, int, int]) -> AutoencoderMethod:
    arch_name = cfg.arch or datasets.DATASETS.get(cfg.dataset).default_arch
    arch = networks.get(arch_name)
    if tuple(arch.image_shape) != tuple(image_shape):
        raise ValueError(
            f"architecture {arch_name!r} expects images {arch.image_shape}, dataset {cfg.dataset!r} has {image_shape}"
        )
    cls = methods.get(cfg.method)
    return cls(arch, cfg.latent_dim, cfg.effective_lambda, cfg.effective_mu, cfg.recon, cfg.recon_scale)


def step_memory_format(device: torch.device, model: torch.nn.Module) -> torch.memory_format:
    """channels_last for convolutional models on CPU, where oneDNN's NHWC kernels were measured faster
    (benchmarks/trainer_throughput.py, 'ours/before'); NCHW elsewhere until measured on a GPU."""
    has_conv = any(isinstance(m, torch.nn.modules.conv._ConvNd) for m in model.modules())
    return torch.channels_last if device.type == "cpu" and has_conv else torch.contiguous_format


def to_unit(x: torch.Tensor) -> torch.Tensor:
    return x.float().div_(255.0)


@torch.no_grad()
def encode_images(model: AutoencoderMethod, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Deterministic encodings (eval mode) of uint8 images already on the model's device."""
    was_training = model.training
    model.eval()
    out = [model.encode(to_unit(x[i : i + batch_size])) for i in range(0, len(x), batch_size)]
    model.train(was_training)
    return torch.cat(out).float()


@torch.no_grad()
def evaluate(model: AutoencoderMethod, x: torch.Tensor, batch_size: int = 500) -> tuple[dict[str, float], torch.Tensor, torch.Tensor]:
    """Eccentricity and spectrum of the encodings, and reconstruction MSE per pixel, on uint8 images ``x``."""
    was_training = model.training
    model.eval()
    zs, sq = [], 0.0
    for i in range(0, len(x), batch_size):
        xb = to_unit(x[i : i + batch_size])
        z = model.encode(xb)
        zs.append(z.float())
        sq += recon_mse(xb, model.decode(z)) * xb.numel()
    model.train(was_training)
    z = torch.cat(zs)
    ev = spectrum(latent_covariance(z))
    metrics = {
        names.EVAL_ECCENTRICITY: eccentricity_from_spectrum(ev),
        names.EVAL_ECCENTRICITY_DEBIASED: eccentricity_debiased_from_spectrum(ev, len(z) - 1),
        names.EVAL_RECON_MSE: sq / x.numel(),
        names.EVAL_TRACE: float(ev.sum()),
    }
    return metrics, ev, z.cpu()


def global_rng_state() -> dict[str, Any]:
    """torch's global RNG state (and CUDA's, where there is a GPU): what weight init and dropout draw from."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_global_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _rng_state(gen: torch.Generator) -> dict[str, Any]:
    return {"batch_order": gen.get_state(), **global_rng_state()}


def _set_rng_state(gen: torch.Generator, state: dict[str, Any]) -> None:
    gen.set_state(state["batch_order"])
    set_global_rng_state(state)


def _last_latent(model: AutoencoderMethod) -> torch.Tensor:
    if model.last_z is None:
        raise RuntimeError(f"method {model.name!r} did not set last_z in its train step; lambda control needs it")
    return model.last_z


def train(
    cfg: TrainConfig,
    report: Report | None = None,
    resume_state: dict[str, Any] | None = None,
    data: ImageData | None = None,
) -> TrainResult:
    device = resolve_device(cfg.device)
    data = data if data is not None else cached_dataset(cfg.dataset, cfg.data_root)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, data.image_shape).to(device)
    layout = step_memory_format(device, model)
    model = model.to(memory_format=layout)
    optimizers = model.configure_optimizers(cfg.lr, cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    controller = LambdaController(cfg.control, model.lam) if cfg.control is not None else None

    start_epoch = 1
    if resume_state is not None:
        model.load_state_dict(resume_state["model"])
        for opt, st in zip(optimizers, resume_state["optimizers"], strict=True):
            opt.load_state_dict(st)
        model.lam = float(resume_state["lam"])
        _set_rng_state(gen, resume_state["rng"])
        start_epoch = int(resume_state["epoch"]) + 1
        if controller is not None:
            controller.load_state_dict(resume_state["control"])
    # a checkpoint from before the loss history: its epochs' losses are unknown (NaN), not missing
    loss_history = [] if resume_state is None else list(resume_state.get("loss_history", [math.nan] * (start_epoch - 1)))

    train_x = data.train_x[: cfg.max_train].to(device)
    probe_x = data.test_x[: cfg.eval_probe].to(device)
    n = len(train_x)
    n_batches = n // cfg.batch_size
    if n_batches == 0:
        raise ValueError(f"batch_size {cfg.batch_size} exceeds the {n} training images")

    # bf16 autocast, an option: measured 2.2x the fp32 step for mnist-conv on this repo's AVX512-BF16 CPU
    # (benchmarks/trainer_throughput.py --amp); evaluation and the lambda controller stay in fp32
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if cfg.amp == "bf16" else contextlib.nullcontext()
    model.train()
    metrics: dict[str, float] = {}
    for epoch in range(start_epoch, cfg.epochs + 1):
        t0 = time.perf_counter()
        order = torch.randperm(n, generator=gen).to(device)
        sums = torch.zeros(3, device=device)
        for b in range(n_batches):
            xb = to_unit(train_x[order[b * cfg.batch_size : (b + 1) * cfg.batch_size]]).contiguous(memory_format=layout)
            with autocast:
                out = model.train_step(xb, optimizers)
            if controller is not None:
                model.lam = controller.update(_last_latent(model), float(out.reg.detach()))
            sums += torch.stack([out.loss.detach(), out.recon.detach(), out.reg.detach()])
        means = (sums / n_batches).tolist()
        if not all(math.isfinite(v) for v in means):
            raise DivergedError(f"loss became {means[0]} in epoch {epoch} (lambda={model.lam:g})")
        elapsed = time.perf_counter() - t0
        loss_history.append(means[0])
        eval_metrics, _, _ = evaluate(model, probe_x)
        metrics = {
            "epoch": float(epoch),
            names.TRAIN_LOSS: means[0],
            names.TRAIN_RECON: means[1],
            names.TRAIN_REG: means[2],
            names.TRAIN_EPOCH_TIME: elapsed,
            names.TRAIN_IMAGES_PER_S: n_batches * cfg.batch_size / elapsed,
            **eval_metrics,
        }
        if controller is not None:
            if cfg.control.target_eccentricity is not None and cfg.control.calibrate:
                # training images, not the test probe: the controller never sees test data
                probe_z = encode_images(model, train_x[: cfg.eval_probe])
                metrics[names.CONTROL_ECC_PROBE] = eccentricity_debiased(probe_z)
                controller.calibrate(metrics[names.CONTROL_ECC_PROBE])
            metrics[names.CONTROL_LAMBDA] = controller.lam
            metrics[names.CONTROL_ECC_ESTIMATE] = controller.calibrated_ecc
            metrics[names.CONTROL_REG_ESTIMATE] = controller.reg_estimate
        if report is not None:
            state = {
                "model": model.state_dict(),
                "optimizers": [o.state_dict() for o in optimizers],
                "epoch": epoch,
                "lam": model.lam,
                "rng": _rng_state(gen),
                "loss_history": list(loss_history),
            }
            if controller is not None:
                state["control"] = controller.state_dict()
            report(metrics, state)

    train_z = encode_images(model, train_x)
    model.finish_training(train_z)
    final, ev, test_z = evaluate(model, data.test_x.to(device))
    metrics = {**metrics, **final, **convergence_metrics(loss_history)}
    if controller is None:
        return TrainResult(
            model, data, metrics, ev.tolist(), test_z, cfg.epochs, train_z.cpu(), loss_history=loss_history
        )
    controlled = final[names.EVAL_ECCENTRICITY_DEBIASED] if cfg.control.target_eccentricity is not None else controller.reg_estimate
    metrics[names.CONTROL_FINAL_LAMBDA] = controller.lam
    metrics[names.CONTROL_ABS_ERROR] = abs(controlled - cfg.control.target)
    return TrainResult(
        model, data, metrics, ev.tolist(), test_z, cfg.epochs, train_z.cpu(), list(controller.trajectory), loss_history
    )
