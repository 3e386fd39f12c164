"""The Ray Tune trainable: a plain function of its config. Trains one trial and logs it to its own MLflow run,
or one pack of trials (sweep ``pack: K``) and logs each member to its own run, as if it had trained alone."""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ray import tune

from evaluators import names
from evaluators.plots import trajectories_plot
from evaluators.trial_eval import evaluate_trial
from sweep.aggregate import refresh_configuration
from sweep.models import log_trial_model
from sweep.spec import SEARCH_OBJECTIVE, target_label
from sweep.tracking import SPOOL_FILE, Store, git_commit, package_version, with_retry
from trainers import methods
from trainers.config import TrainConfig
from trainers.loop import DivergedError, TrainResult, train
from trainers.packed import train_packed

CHECKPOINT_FILE = "state.pt"
DIVERGED = "diverged"
FINISHED = "finished"
SEARCHED = ("method", "lam", "mu", "latent_dim", "seed")  # the TrainConfig fields a search may sample
# Tests only: a folder where a file `<trial key>.hold` holding an epoch E stops that trial once it has reported
# epoch E, until the file is removed or names another epoch, so a fault lands at a state the test chose on any
# machine's speed. The trial writes `<trial key>.held` ("pid epoch") as it stops; a hold is used once (a restarted
# trial replaying epoch E runs on). Unset outside tests: then nothing is read.
HOLD_DIR_ENV = "ESWEEP_TEST_HOLD_DIR"
XRUN_TRAIN = 10_000  # training encodings kept per trial for the Hungarian alignment's cross-covariance


def trial_params(cfg: TrainConfig) -> dict[str, str]:
    return {
        names.P_METHOD: cfg.method,
        names.P_LAMBDA: "-" if cfg.lam is None or cfg.control is not None else f"{cfg.lam:g}",
        names.P_MU: "-" if cfg.effective_mu is None else f"{cfg.effective_mu:g}",
        names.P_LATENT_DIM: str(cfg.latent_dim),
        names.P_SEED: str(cfg.seed),
        names.P_DATASET: cfg.dataset,
        names.P_EPOCHS: str(cfg.epochs),
        names.P_ARCH: cfg.arch or "default",
        names.P_RECON: cfg.recon,
        names.P_RECON_SCALE: f"{cfg.recon_scale:g}",
        names.P_BATCH_SIZE: str(cfg.batch_size),
        names.P_LR: f"{cfg.lr:g}",
        names.P_WEIGHT_DECAY: f"{cfg.weight_decay:g}",
        names.P_TARGET: "-" if cfg.control is None else target_label(cfg.control),
    }


def _load_checkpoint() -> dict[str, Any] | None:
    ckpt = tune.get_checkpoint()
    if ckpt is None:
        return None
    with ckpt.as_directory() as d:
        return torch.load(Path(d) / CHECKPOINT_FILE, map_location="cpu", weights_only=False)


def log_final(
    store: Store, run_id: str, result: TrainResult, wall_time: float, model_id: str | None = None
) -> dict[str, float]:
    kept = ("eval/", names.CONTROL_FINAL_LAMBDA, names.CONTROL_ABS_ERROR, names.TRAIN_REL_IMPROVEMENT_TAIL, names.TRAIN_CONVERGED)
    final = {k: v for k, v in result.metrics.items() if k.startswith(kept)}
    final[names.EVAL_WALL_TIME] = wall_time
    store.log_metrics(run_id, final, step=result.epochs_run, model_id=model_id)
    store.log_artifact_bytes(run_id, names.ARTIFACT_SPECTRUM, json.dumps(result.spectrum).encode())
    return final


def encodings_npz(result: TrainResult) -> bytes:
    """Train (first XRUN_TRAIN images) and test encodings: what cross-run analysis needs from each seed."""
    buf = io.BytesIO()
    np.savez_compressed(buf, train_z=result.train_z[:XRUN_TRAIN].numpy(), test_z=result.test_z.numpy())
    return buf.getvalue()


def evaluate_and_log(
    store: Store,
    run_id: str,
    cfg: TrainConfig,
    result: TrainResult,
    evaluation: dict[str, Any] | None,
    model_id: str | None = None,
) -> dict[str, float]:
    """FID per sampler, downstream KNN, plots and the trial report (evaluators.trial_eval), logged to the run (and
    linked to its logged model ``model_id``, if any)."""
    if evaluation is None:
        return {}
    metrics, params, artifacts = evaluate_trial(
        result.model,
        result.data,
        result.train_z,
        result.test_z,
        samplers=evaluation["samplers"],
        fid_samples=evaluation["fid_samples"],
        fid_reference_size=evaluation["fid_reference_size"],
        knn=evaluation["knn"],
        plots=evaluation["plots"],
        fid_infinity=evaluation.get("fid_infinity", False),
        fid_reference=evaluation.get("fid_reference", "test"),
        memorisation=evaluation.get("memorisation", True),
        fid_extractor=(evaluation.get("feature_extractors") or [None])[0],
        extra_extractors=(evaluation.get("feature_extractors") or [None])[1:],
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    store.log_params(run_id, params)
    if model_id is not None:
        with_retry(lambda: store.client.log_model_params(model_id, params))
    store.log_metrics(run_id, metrics, step=result.epochs_run, model_id=model_id)
    if evaluation["crossrun"]:
        artifacts[names.ARTIFACT_ENCODINGS] = encodings_npz(result)
    if result.control_trajectory:
        steps, lams, estimates = zip(*result.control_trajectory, strict=True)
        artifacts[names.ARTIFACT_CONTROL_TRAJECTORY] = json.dumps(
            {"step": steps, "lambda": lams, "eccentricity_estimate": estimates}
        ).encode()
        artifacts[names.ARTIFACT_PLOT_CONTROL_LAMBDA] = trajectories_plot(
            {"lambda": (steps, lams)}, ylabel="lambda", title="lambda trajectory", logy=True
        )
        artifacts[names.ARTIFACT_PLOT_CONTROL_ECC] = trajectories_plot(
            {"eccentricity estimate": (steps, estimates)},
            ylabel="eccentricity",
            title="eccentricity trajectory",
            target=cfg.control.target_eccentricity,
        )
    for name, data in artifacts.items():
        store.log_artifact_bytes(run_id, name, data)
    return metrics


def log_model(
    store: Store, run_id: str, ctx: dict[str, Any], trial: dict[str, Any], result: TrainResult
) -> str | None:
    """The trained model as an MLflow logged model of the run, before its final metrics (unless the spec's
    evaluation.log_model is 'none'); its id. Once: a retried trial whose run already has one keeps it."""
    if (ctx.get("evaluation") or {}).get("log_model", "all") == "none":
        return None
    existing = with_retry(lambda: store.client.get_run(run_id)).data.tags.get(names.T_MODEL_ID)
    if existing:
        return existing
    tags = {
        names.T_SWEEP_ID: ctx["sweep_id"], names.T_CONFIG_KEY: trial["config_key"], names.T_TRIAL_KEY: trial["key"],
        names.T_GIT_COMMIT: git_commit(), names.T_VERSION: package_version(),
    }
    return log_trial_model(store, run_id, result, result.epochs_run, tags)


def search_trial(config: dict[str, Any], trial_id: str) -> dict[str, Any]:
    """A search trial's spec from the values the searcher sampled; lambda/mu dropped where the method has none."""
    train_dict = dict(config["base"])
    train_dict.update({k: config[k] for k in SEARCHED if k in config})
    cls = methods.get(train_dict["method"])
    if not cls.takes_lambda:
        train_dict["lam"] = None
    if not cls.takes_mu:
        train_dict["mu"] = None
    lam, mu = train_dict.get("lam"), train_dict.get("mu")
    key = (
        f"{train_dict['method']}__lam{'-' if lam is None else format(lam, '.4g')}__mu{'-' if mu is None else format(mu, '.4g')}"
        f"__d{train_dict['latent_dim']}__s{train_dict['seed']}__{trial_id}"
    )
    return {"key": key, "config_key": key, "train": train_dict}


def trial_of(config: dict[str, Any], trial_id: str) -> dict[str, Any]:
    return config["trial"] if "trial" in config else search_trial(config, trial_id)


def with_search_objective(metrics: dict[str, float], search: dict[str, Any] | None) -> dict[str, float]:
    """Tune's searcher reads its objective from every result: per epoch it may not exist yet (FID comes after
    training), so the worst value stands in until the final result."""
    if not search:
        return metrics
    worst = math.inf if search["mode"] == "min" or search.get("target") is not None else -math.inf
    value = metrics.get(search["metric"], math.nan)
    out = dict(metrics)
    if search.get("target") is not None:
        out[SEARCH_OBJECTIVE] = worst if math.isnan(value) else abs(value - search["target"])
    elif math.isnan(value):
        out[search["metric"]] = worst
    return out


def config_run_params(cfg: TrainConfig, ctx: dict[str, Any]) -> dict[str, str]:
    """What a configuration run records: the trial params but the seed, and the FID sample size."""
    params = {k: v for k, v in trial_params(cfg).items() if k != names.P_SEED}
    evaluation = ctx.get("evaluation") or {}
    params[names.P_FID_SAMPLES] = str(evaluation.get("fid_samples", 0))
    return params


def _configuration_words(cfg: TrainConfig) -> str:
    lam = trial_params(cfg)[names.P_LAMBDA]
    what = f"lambda {lam}" if cfg.control is None else target_label(cfg.control)
    mu = "" if cfg.effective_mu is None else f", mu {cfg.effective_mu:g}"
    return f"{cfg.method}, {what}{mu}, d = {cfg.latent_dim} on {cfg.dataset}"


def _training_words(cfg: TrainConfig) -> str:
    scale = "" if cfg.recon_scale == 1.0 else f" x {cfg.recon_scale:g}"
    return f"arch {cfg.arch or 'default'}, recon {cfg.recon}{scale}, batch {cfg.batch_size}, lr {cfg.lr:g}"


def config_description(cfg: TrainConfig, n_seeds: int) -> str:
    return (
        f"{_configuration_words(cfg)}: {n_seeds} seed(s) x {cfg.epochs} epochs ({_training_words(cfg)}). Metrics: "
        "mean over finished seeds; M_std, M_ci95 (Student t) and M_n beside each."
    )


def trial_description(cfg: TrainConfig, config_key: str, pack_size: int | None = None) -> str:
    """A seed run's description in MLflow's UI: what it trained, and the configuration run it belongs to."""
    packed = f", trained packed with {pack_size - 1} other variant(s)" if pack_size else ""
    return (
        f"{_configuration_words(cfg)}, seed {cfg.seed}: {cfg.epochs} epochs ({_training_words(cfg)}){packed}. "
        f"One seed of configuration {config_key}; per-epoch train/* and eval/* series, final eval/* metrics."
    )


def config_run_id(store: Store, ctx: dict[str, Any], trial: dict[str, Any], cfg: TrainConfig) -> str:
    """The configuration run the trial nests under: made by the driver for a grid, by the trial for a search."""
    known = ctx.get("config_runs", {}).get(trial["config_key"])
    if known:
        return known
    return store.find_or_create_config_run(
        ctx["experiment_id"], ctx["sweep_id"], ctx["parent_run_id"], trial["config_key"],
        f"{cfg.dataset}__{trial['config_key']}", config_run_params(cfg, ctx), config_description(cfg, 1),
    )


def _trial_run(store: Store, ctx: dict[str, Any], trial: dict[str, Any], cfg: TrainConfig, tags: dict[str, str]):
    """The trial's MLflow run, found again by its key on a retry; the same for a packed member."""
    trial_id = tune.get_context().get_trial_id() or ""
    return store.find_or_create_trial_run(
        ctx["experiment_id"],
        ctx["sweep_id"],
        config_run_id(store, ctx, trial, cfg),
        trial["key"],
        f"{cfg.dataset}__{trial['key']}",
        trial_params(cfg),
        {
            names.T_CONFIG_KEY: trial["config_key"],
            names.T_TRIAL_ID: trial_id,
            names.T_DESCRIPTION: trial_description(cfg, trial["config_key"], int(tags.get(names.T_PACK_SIZE, 0)) or None),
            **tags,
        },
        device=cfg.device,
    )


def refresh_configurations(store: Store, ctx: dict[str, Any], trials: list[dict[str, Any]], cfgs: list[TrainConfig]) -> None:
    """Re-summarise the configurations of settled trials, so the UI shows partial aggregates while the sweep runs.
    Best effort: the driver summarises every configuration again when the sweep ends."""
    for key in dict.fromkeys(t["config_key"] for t in trials):
        trial, cfg = next((t, c) for t, c in zip(trials, cfgs, strict=True) if t["config_key"] == key)
        try:
            refresh_configuration(store, ctx["sweep_id"], key, config_run_id(store, ctx, trial, cfg))
        except Exception as exc:  # a store blip must not fail a trained trial
            print(f"esweep: configuration {key} not re-summarised now ({type(exc).__name__}: {exc})")


def _save_and_report(metrics: dict[str, float], state: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(state, Path(tmp) / CHECKPOINT_FILE)
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))


def _read_epoch(path: Path, field: int = 0) -> int | None:
    try:
        return int(path.read_text().split()[field])
    except (OSError, ValueError, IndexError):
        return None


def _hold_if_asked(trial_key: str, epoch: int) -> None:
    folder = os.environ.get(HOLD_DIR_ENV)
    if not folder:
        return
    hold, held = Path(folder) / f"{trial_key}.hold", Path(folder) / f"{trial_key}.held"
    if _read_epoch(hold) != epoch or _read_epoch(held, 1) == epoch:
        return
    held.with_suffix(".tmp").write_text(f"{os.getpid()} {epoch}")
    held.with_suffix(".tmp").replace(held)  # whole, so a reader never sees half of it
    while _read_epoch(hold) == epoch:
        time.sleep(0.1)


def _mark_diverged(store: Store, run_id: str, reason: str) -> None:
    store.set_tags(run_id, {names.T_FAILURE: f"diverged: {reason}", names.T_STATUS: DIVERGED})
    store.finish(run_id, "FAILED")


def run_trial(config: dict[str, Any]) -> None:
    """Ray Tune function trainable. ``config['ctx']`` is the sweep context, ``config['trial']`` this trial
    (a pack of trials when it has a ``pack`` entry)."""
    ctx, trial = config["ctx"], trial_of(config, tune.get_context().get_trial_id())
    if "pack" in trial:
        run_packed_trial(ctx, trial)
        return
    cfg = TrainConfig.model_validate(trial["train"])
    store = Store(ctx["tracking_uri"], spool_path=Path(tune.get_context().get_trial_dir()) / SPOOL_FILE)
    run = _trial_run(store, ctx, trial, cfg, {})
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
        _save_and_report(with_search_objective(metrics, ctx.get("search")), ckpt_state)
        _hold_if_asked(trial["key"], epoch)

    try:
        result = train(cfg, report=report, resume_state=state)
        model_id = log_model(store, run_id, ctx, trial, result)  # first: the final metrics are linked to it
        evaluated = evaluate_and_log(store, run_id, cfg, result, ctx.get("evaluation"), model_id)
    except DivergedError as exc:
        _mark_diverged(store, run_id, str(exc))
        refresh_configurations(store, ctx, [trial], [cfg])
        raise
    except Exception as exc:
        # left FAILED with the reason; a retry finds the run again and sets it RUNNING
        store.mark_failed(run_id, f"{type(exc).__name__}: {exc}")
        refresh_configurations(store, ctx, [trial], [cfg])
        raise
    final = {**evaluated, **log_final(store, run_id, result, time.perf_counter() - started, model_id)}
    search = ctx.get("search")
    if search and search.get("target") is not None:
        final[SEARCH_OBJECTIVE] = with_search_objective({**result.metrics, **final}, search)[SEARCH_OBJECTIVE]
        store.log_metrics(run_id, {SEARCH_OBJECTIVE: final[SEARCH_OBJECTIVE]}, step=result.epochs_run)
    store.set_tags(run_id, {names.T_STATUS: FINISHED})
    store.finish(run_id, "FINISHED")
    refresh_configurations(store, ctx, [trial], [cfg])
    tune.report({**result.metrics, **final, "done": 1.0})


def _pack_result(members: int, dead: dict[int, str], recon: list[float]) -> dict[str, float]:
    """What the Tune trial of a pack reports: its members, how many diverged, and its best member's recon MSE."""
    out = {names.PACK_MEMBERS: float(members), names.PACK_DIVERGED: float(len(dead))}
    if recon:
        out[names.EVAL_RECON_MSE] = min(recon)
    return out


def run_packed_trial(ctx: dict[str, Any], trial: dict[str, Any]) -> None:
    """One Tune trial training ``trial['pack']`` (trials equal but for lambda and seed) as one vmapped model.

    Each member logs to its own MLflow run, with the params, tags and metrics its unpacked trial would have, plus
    the pack tags. A member whose loss diverges fails alone (run FAILED, tagged as run_trial tags a diverged
    trial); the Tune trial succeeds when any member finished, and raises DivergedError when all diverged. A retry
    resumes the pack from its checkpoint: members diverged or evaluated in an earlier attempt keep that outcome.
    """
    members = trial["pack"]
    cfgs = [TrainConfig.model_validate(m["train"]) for m in members]
    store = Store(ctx["tracking_uri"], spool_path=Path(tune.get_context().get_trial_dir()) / SPOOL_FILE)
    pack_tags = {names.T_PACK_SIZE: str(len(members)), names.T_PACK_KEY: trial["key"]}
    run_ids: list[str] = []
    dead: dict[int, str] = {}  # member index -> reason it diverged
    done: set[int] = set()  # evaluated in an earlier attempt that then failed on a pack-mate
    for k, (member, cfg) in enumerate(zip(members, cfgs, strict=True)):
        run = _trial_run(store, ctx, member, cfg, pack_tags)
        run_ids.append(run.info.run_id)
        status = run.data.tags.get(names.T_STATUS)
        if status == DIVERGED:
            dead[k] = run.data.tags.get(names.T_FAILURE, "diverged in an earlier attempt")
            store.finish(run_ids[k], "FAILED")
        elif status == FINISHED:
            done.add(k)
            store.finish(run_ids[k], "FINISHED")
    if len(dead) == len(members):  # a retry of a pack that diverged whole: fail again at once
        raise DivergedError("; ".join(dead.values()))

    state = _load_checkpoint()
    already_logged = [store.last_logged_step(run_id, names.TRAIN_LOSS) for run_id in run_ids]
    latest: dict[int, dict[str, float]] = {}
    started = time.perf_counter()

    def report(k: int, metrics: dict[str, float], _state: dict[str, Any]) -> None:
        if k in dead or k in done:
            return
        latest[k] = metrics
        epoch = int(metrics["epoch"])
        if epoch > already_logged[k]:  # a replayed epoch after a restart is not logged twice
            store.log_metrics(run_ids[k], metrics, step=epoch)

    def on_diverged(k: int, reason: str) -> None:
        if k not in dead:  # not again when an interrupted attempt had already marked it
            dead[k] = reason
            _mark_diverged(store, run_ids[k], reason)

    def checkpoint(epoch: int, pack_state: dict[str, Any]) -> None:
        recon = [m[names.EVAL_RECON_MSE] for k, m in latest.items() if k not in dead]
        _save_and_report({"epoch": float(epoch), **_pack_result(len(members), dead, recon)}, pack_state)

    try:
        results = train_packed(cfgs, report=report, resume_state=state, checkpoint=checkpoint, on_diverged=on_diverged)
    except DivergedError:
        refresh_configurations(store, ctx, members, cfgs)
        raise  # every member diverged, and on_diverged has marked each run
    except Exception as exc:
        for k, run_id in enumerate(run_ids):
            if k not in dead and k not in done:
                store.mark_failed(run_id, f"{type(exc).__name__}: {exc}")
        refresh_configurations(store, ctx, members, cfgs)
        raise

    errors: list[Exception] = []
    recon: list[float] = []
    for k, result in enumerate(results):
        if result is None or k in dead or k in done:
            continue
        try:
            model_id = log_model(store, run_ids[k], ctx, members[k], result)
            evaluate_and_log(store, run_ids[k], cfgs[k], result, ctx.get("evaluation"), model_id)
            final = log_final(store, run_ids[k], result, time.perf_counter() - started, model_id)
        except Exception as exc:  # the others are still evaluated; a retry evaluates only this one again
            store.mark_failed(run_ids[k], f"{type(exc).__name__}: {exc}")
            errors.append(exc)
            continue
        recon.append(final[names.EVAL_RECON_MSE])
        store.set_tags(run_ids[k], {names.T_STATUS: FINISHED})
        store.finish(run_ids[k], "FINISHED")
    refresh_configurations(store, ctx, members, cfgs)
    if errors:
        raise errors[0]
    if len(dead) == len(members):  # the rest diverged in earlier attempts
        raise DivergedError("; ".join(dead[k] for k in sorted(dead)))
    tune.report({**_pack_result(len(members), dead, recon), "done": 1.0})
