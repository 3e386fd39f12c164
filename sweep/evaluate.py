"""`esweep evaluate`: re-run evaluators on a sweep's logged models, without retraining.

One Ray task per seed run with a logged model (locally, or on a cluster with ``address``; on a GPU where the
cluster has them). Each task loads the model, encodes the sweep's data again, evaluates, and writes the metrics to
the same seed run (linked to its model) at the run's last training step, with the settings as provenance tags. The
configuration runs and the leaderboard are then re-summarised as `esweep resume` does. A run already evaluated
with the same settings is skipped, so an interrupted evaluation reruns only what is missing.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

import yaml

from evaluators import names
from evaluators.metric_fid import DEFAULT_BATCH_SIZE
from evaluators.metric_fid_infinity import FID_INF_MIN_SAMPLES
from evaluators.registry import Registry, UnknownNameError
from sweep.aggregate import is_provenance_param
from sweep.tracking import Store, with_retry

CPU_FID_BATCH = 16  # Inception on CPU: 5.2 img/s at batch 16 vs 4.0 at 64 on 2 threads (issue 20's measurement)
MAX_FID_SAMPLES = 1_000_000


@dataclass(frozen=True)
class Evaluation:
    """What one `--metric` name asks evaluate_trial for."""

    fid: bool = False
    fid_infinity: bool = False
    knn: bool = False


EVALUATIONS: Registry[Evaluation] = Registry("metric")
EVALUATIONS.register("fid")(Evaluation(fid=True))  # FID, KID and n per sampler (eval/fid/*, eval/kid/*, eval/fid_n/*)
EVALUATIONS.register("fid_inf")(Evaluation(fid=True, fid_infinity=True))  # FID-infinity per sampler (eval/fid_inf/*)
EVALUATIONS.register("knn")(Evaluation(knn=True))  # KNN error vs labelled subset size, or attribute errors


class EvaluateError(ValueError):
    """Bad input to `esweep evaluate`; the message names the field and what it allows."""


@dataclass(frozen=True)
class Settings:
    metrics: tuple[str, ...]
    samplers: tuple[str, ...]
    fid_samples: int
    fid_reference_size: int | None
    fid_extractor: str | None = None

    def asdict(self) -> dict:
        return {"metrics": list(self.metrics), "samplers": list(self.samplers), "fid_samples": self.fid_samples,
                "fid_reference_size": self.fid_reference_size, "fid_extractor": self.fid_extractor}

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.asdict(), sort_keys=True).encode()).hexdigest()[:12]

    def requested(self) -> Evaluation:
        parts = [EVALUATIONS.get(m) for m in self.metrics]
        return Evaluation(any(p.fid for p in parts), any(p.fid_infinity for p in parts), any(p.knn for p in parts))


def check_settings(metrics, samplers, fid_samples: int, fid_reference_size: int | None, spec_eval: dict) -> Settings:
    """The settings, each field checked; samplers and reference size default to the sweep's own evaluation."""
    from evaluators import sampler_latent

    metrics = tuple(dict.fromkeys(metrics or ("fid",)))
    for m in metrics:
        try:
            EVALUATIONS.get(m)
        except UnknownNameError as exc:
            raise EvaluateError(f"--metric: {exc}") from None
    samplers = tuple(dict.fromkeys(samplers or spec_eval.get("samplers") or ("standard",)))
    for s in samplers:
        try:
            sampler_latent.get(s)
        except UnknownNameError as exc:
            raise EvaluateError(f"--samplers: {exc}") from None
    settings = Settings(metrics, samplers, fid_samples, fid_reference_size or spec_eval.get("fid_reference_size"))
    wanted = settings.requested()
    if wanted.fid and not 2 <= fid_samples <= MAX_FID_SAMPLES:
        raise EvaluateError(f"--fid-samples: must be in [2, {MAX_FID_SAMPLES}] for FID, got {fid_samples}")
    if wanted.fid_infinity and fid_samples < FID_INF_MIN_SAMPLES:
        raise EvaluateError(f"--fid-samples: fid_inf needs at least {FID_INF_MIN_SAMPLES}, got {fid_samples}")
    if settings.fid_reference_size is not None and settings.fid_reference_size < 2:
        raise EvaluateError(f"--fid-reference-size: must be >= 2, got {settings.fid_reference_size}")
    if not wanted.fid:
        settings = Settings(metrics, samplers, 0, settings.fid_reference_size)
    return settings


def fid_batch_size(device: str) -> int:
    """Images per Inception pass: small on CPU, where larger batches were measured slower; the default on a GPU."""
    return CPU_FID_BATCH if device == "cpu" else DEFAULT_BATCH_SIZE


def evaluate_run(tracking_uri: str, run_id: str, settings: Settings, data_root: str | None, max_train: int | None,
                 device: str = "cpu") -> dict:
    """Evaluate one seed run's logged model with ``settings`` and write the results to the run (a Ray task)."""
    import torch

    from evaluators.trial_eval import evaluate_trial
    from sweep.models import load_model
    from trainers.loop import cached_dataset

    store = Store(tracking_uri)
    run = with_retry(lambda: store.client.get_run(run_id))
    done_tag = names.T_EVAL_DONE_PREFIX + settings.digest
    if done_tag in run.data.tags:
        return {"run_id": run_id, "skipped": True}
    started = time.perf_counter()
    model = load_model(run_id, tracking_uri, device)
    params = run.data.params
    data = cached_dataset(params[names.P_DATASET], data_root)
    train_z = model.encode(data.train_x[:max_train]).cpu()
    test_z = model.encode(data.test_x).cpu()
    wanted = settings.requested()
    metrics, eval_params, artifacts = evaluate_trial(
        model.method, data, train_z, test_z,
        samplers=settings.samplers, fid_samples=settings.fid_samples if wanted.fid else 0,
        fid_reference_size=settings.fid_reference_size, fid_extractor=settings.fid_extractor,
        fid_batch_size=fid_batch_size(device), fid_infinity=wanted.fid_infinity, device=device,
        knn=wanted.knn, plots=False, generator=torch.Generator().manual_seed(int(params.get(names.P_SEED, 0))),
    )
    step = int(params.get(names.P_EPOCHS, 0))  # the trial's final metrics' step: the same series, a newer value
    store.log_metrics(run_id, metrics, step=step, model_id=run.data.tags[names.T_MODEL_ID])
    for name, data_bytes in artifacts.items():
        store.log_artifact_bytes(run_id, name, data_bytes)
    provenance = {
        **settings.asdict(), "settings": settings.digest, "device": device,
        "n": {s: int(metrics[names.eval_fid_n(s)]) for s in settings.samplers if names.eval_fid_n(s) in metrics},
        "reference": eval_params.get(names.P_FID_REFERENCE_SIZE), "extractor": eval_params.get(names.P_FID_EXTRACTOR),
        "skipped_samplers": eval_params.get(names.P_FID_SKIPPED, ""), "wall_time_s": round(time.perf_counter() - started, 2),
        "at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        # the generation metrics' provenance params as this evaluation computed them (params are immutable in
        # MLflow, so the run's own still say how it was trained and first evaluated); the leaderboard reads these
        "params": {k: v for k, v in eval_params.items() if is_provenance_param(k)},
    }
    store.set_tags(run_id, {names.T_EVAL_PROVENANCE: json.dumps(provenance), done_tag: json.dumps(settings.asdict())})
    return {"run_id": run_id, "skipped": False, "metrics": metrics, "provenance": provenance}


@dataclass
class EvaluateOutcome:
    sweep_id: str
    settings: Settings
    evaluated: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    wall_time_s: float = 0.0


def models_of(store: Store, sweep_id: str) -> list:
    """The sweep's finished seed runs that have a logged model."""
    return [r for r in store.trial_runs(sweep_id) if r.info.status == "FINISHED" and r.data.tags.get(names.T_MODEL_ID)]


def prepare(store: Store, sweep: str, metrics, samplers, fid_samples: int, fid_reference_size: int | None):
    """Everything checked before Ray starts: the sweep, its models, its spec and the settings."""
    from sweep.spec import parse_spec

    run = store.sweep_run(sweep)
    if run is None:
        raise EvaluateError(f"SWEEP: no sweep {sweep!r} in {store.uri}")
    sweep_id = run.data.tags[names.T_SWEEP_ID]
    runs = models_of(store, sweep_id)
    if not runs:
        raise EvaluateError(f"SWEEP: sweep {sweep_id} has no logged models to evaluate (it ran with "
                            "evaluation.log_model 'none', or before models were logged); rerun it with 'all' or 'best'")
    spec = parse_spec(yaml.safe_load(store.read_artifact_bytes(run.info.run_id, names.ARTIFACT_SPEC)))
    settings = check_settings(metrics, samplers, fid_samples, fid_reference_size, spec.evaluation.model_dump())
    return run, sweep_id, runs, spec, settings


def evaluate_sweep(store: Store, sweep: str, *, metrics=(), samplers=(), fid_samples: int = 1000,
                   fid_reference_size: int | None = None, address: str | None = None, num_cpus: int | None = None,
                   verbose: bool = False) -> EvaluateOutcome:
    """Re-evaluate every logged model of ``sweep`` as Ray tasks, then re-summarise its configurations and board."""
    import ray

    from sweep.aggregate import refresh_sweep
    from sweep.orchestrate import init_ray
    from sweep.report import publish_sweep_results

    t0 = time.monotonic()
    parent, sweep_id, runs, spec, settings = prepare(store, sweep, metrics, samplers, fid_samples, fid_reference_size)
    init_ray(address, verbose, num_cpus)
    gpus = ray.cluster_resources().get("GPU", 0) >= 1
    task = ray.remote(num_cpus=1, num_gpus=1 if gpus else 0, max_retries=1)(evaluate_run)
    pending = [task.remote(store.uri, r.info.run_id, settings, spec.data_root, spec.max_train, "cuda" if gpus else "cpu")
               for r in runs]
    outcome = EvaluateOutcome(sweep_id, settings)
    for result in ray.get(pending):
        (outcome.skipped if result["skipped"] else outcome.evaluated).append(result["run_id"])
    if outcome.evaluated:
        refresh_sweep(store, sweep_id)
        publish_sweep_results(store, sweep_id, parent.info.run_id)
    outcome.wall_time_s = time.monotonic() - t0
    return outcome
