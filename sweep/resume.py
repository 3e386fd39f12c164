"""`esweep resume`: finish a sweep whose driver died, in the same Tune experiment and the same parent MLflow run."""

from __future__ import annotations

import time

import yaml
from ray import tune
from rich.console import Console

from evaluators import names
from sweep.cluster import check_tracking_store, storage_join
from sweep.orchestrate import SPEC_ARTIFACT, STORAGE_TAG, SweepOutcome, init_ray, record_outcome
from sweep.spec import SweepSpec, parse_spec
from sweep.tracking import Store, with_retry
from sweep.trainable import run_trial


class ResumeError(ValueError):
    """The sweep cannot be resumed; the message says what was missing."""


def _sweep_spec(store: Store, parent_run_id: str) -> SweepSpec:
    return parse_spec(yaml.safe_load(store.read_artifact_bytes(parent_run_id, SPEC_ARTIFACT)))


def resume_sweep(
    store: Store,
    sweep: str,
    *,
    address: str | None = None,
    verbose: bool = False,
    num_cpus: int | None = None,
) -> SweepOutcome:
    """Finished trials stay as they are; errored and interrupted ones continue from their last checkpoints."""
    t0 = time.monotonic()
    run = store.sweep_run(sweep)
    if run is None:
        raise ResumeError(f"no sweep {sweep!r} in {store.uri}")
    sweep_id = run.data.tags[names.T_SWEEP_ID]
    storage = run.data.tags.get(STORAGE_TAG)
    if not storage:
        raise ResumeError(f"sweep {sweep_id} has no {STORAGE_TAG} tag: it was not started by `esweep run`")
    path = storage_join(storage, sweep_id)
    if not tune.Tuner.can_restore(path):
        raise ResumeError(f"no Tune experiment state at {path} (the driver died before saving any)")
    spec = _sweep_spec(store, run.info.run_id)

    init_ray(address, verbose, num_cpus)
    check_tracking_store(store.uri)
    with_retry(lambda: store.client.update_run(run.info.run_id, status="RUNNING"))
    resources = {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu}
    tuner = tune.Tuner.restore(path, tune.with_resources(run_trial, resources), resume_errored=True)
    grid = tuner.fit()
    fits = len(with_retry(lambda: store.client.get_metric_history(run.info.run_id, "sweep/wall_time_s")))
    outcome = SweepOutcome(sweep_id, run.info.run_id, store.uri, storage)
    return record_outcome(store, grid, outcome, t0, step=fits, log_model=spec.evaluation.log_model)


def print_outcome(outcome: SweepOutcome, console: Console) -> None:
    done = sum(s == "TERMINATED" for s in outcome.statuses.values())
    console.print(
        f"sweep {outcome.sweep_id}: {done}/{len(outcome.statuses)} trials finished, {outcome.n_failed} failed, "
        f"{len(outcome.orphans_closed)} orphaned run(s) closed, in {outcome.wall_time_s:.0f} s"
    )
