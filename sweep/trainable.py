"""The Ray Tune trainable: a plain function of its config. Trains one trial and logs it to its own MLflow run."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from ray import tune

from evaluators import names
from sweep.tracking import SPOOL_FILE, Store
from trainers.config import TrainConfig
from trainers.loop import DivergedError, TrainResult, train

CHECKPOINT_FILE = "state.pt"
DIVERGED = "diverged"


def trial_params(cfg: TrainConfig) -> dict[str, str]:
    return {
        names.P_METHOD: cfg.method,
        names.P_LAMBDA: "-" if cfg.lam is None else f"{cfg.lam:g}",
        names.P_MU: "-" if cfg.effective_mu is None else f"{cfg.effective_mu:g}",
        names.P_LATENT_DIM: str(cfg.latent_dim),
        names.P_SEED: str(cfg.seed),
        names.P_DATASET: cfg.dataset,
        names.P_EPOCHS: str(cfg.epochs),
        names.P_ARCH: cfg.arch or "default",
        names.P_BATCH_SIZE: str(cfg.batch_size),
        names.P_LR: f"{cfg.lr:g}",
        names.P_WEIGHT_DECAY: f"{cfg.weight_decay:g}",
    }


def _load_checkpoint() -> dict[str, Any] | None:
    ckpt = tune.get_checkpoint()
    if ckpt is None:
        return None
    with ckpt.as_directory() as d:
        return torch.load(Path(d) / CHECKPOINT_FILE, map_location="cpu", weights_only=False)


def log_final(store: Store, run_id: str, result: TrainResult, wall_time: float) -> dict[str, float]:
    final = {k: v for k, v in result.metrics.items() if k.startswith("eval/")}
    final[names.EVAL_WALL_TIME] = wall_time
    store.log_metrics(run_id, final, step=result.epochs_run)
    store.log_artifact_bytes(run_id, names.ARTIFACT_SPECTRUM, json.dumps(result.spectrum).encode())
    return final


def run_trial(config: dict[str, Any]) -> None:
    """Ray Tune function trainable. ``config['ctx']`` is the sweep context, ``config['trial']`` this trial."""
    ctx, trial = config["ctx"], config["trial"]
    cfg = TrainConfig.model_validate(trial["train"])
    store = Store(ctx["tracking_uri"], spool_path=Path(tune.get_context().get_trial_dir()) / SPOOL_FILE)
    run = store.find_or_create_trial_run(
        ctx["experiment_id"],
        ctx["sweep_id"],
        ctx["parent_run_id"],
        trial["key"],
        f"{cfg.dataset}__{trial['key']}",
        trial_params(cfg),
        {"esweep.config_key": trial["config_key"], names.T_TRIAL_ID: tune.get_context().get_trial_id() or ""},
    )
    run_id = run.info.run_id
    if run.data.tags.get(names.T_STATUS) == DIVERGED:  # a retry of a diverged trial: fail again at once
        store.finish(run_id, "FAILED")
        raise DivergedError(run.data.tags.get(names.T_FAILURE, "diverged in an earlier attempt"))

    state = _load_checkpoint()
    already_logged = store.last_logged_step(run_id, names.TRAIN_LOSS)
    started = time.perf_counter()

    def report(metrics: dict[str, float], ckpt_state: dict[str, Any]) -> None:
        epoch = int(metrics["epoch"])
        if epoch > already_logged:  # a replayed epoch after a restart is not logged twice
            store.log_metrics(run_id, metrics, step=epoch)
        with tempfile.TemporaryDirectory() as tmp:
            torch.save(ckpt_state, Path(tmp) / CHECKPOINT_FILE)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))

    try:
        result = train(cfg, report=report, resume_state=state)
    except DivergedError as exc:
        store.set_tags(run_id, {names.T_FAILURE: f"diverged: {exc}", names.T_STATUS: DIVERGED})
        store.finish(run_id, "FAILED")
        raise
    except Exception as exc:
        # left FAILED with the reason; a retry finds the run again and sets it RUNNING
        store.mark_failed(run_id, f"{type(exc).__name__}: {exc}")
        raise
    final = log_final(store, run_id, result, time.perf_counter() - started)
    store.set_tags(run_id, {names.T_STATUS: "finished"})
    store.finish(run_id, "FINISHED")
    tune.report({**result.metrics, **final, "done": 1.0})
