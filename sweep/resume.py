"""`esweep resume`: finish a sweep whose driver died, in the same Tune experiment and the same parent MLflow run."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

import yaml
from ray import tune
from rich.console import Console

from evaluators import names
from sweep.cluster import check_tracking_store, storage_join
from sweep.orchestrate import (
    INTERRUPTED,
    STORAGE_TAG,
    SweepOutcome,
    init_ray,
    mark_interrupted,
    record_outcome,
)
from sweep.shutdown import Interrupted, tune_stops_on_signals
from sweep.spec import SweepSpec, expand, parse_spec
from sweep.tracking import Store, with_retry
from sweep.trainable import DIVERGED, run_trial


class ResumeError(ValueError):
    """The sweep cannot be resumed; the message says what was missing."""


def _sweep_spec(store: Store, parent_run_id: str) -> SweepSpec:
    return parse_spec(yaml.safe_load(store.read_artifact_bytes(parent_run_id, names.ARTIFACT_SPEC)))


# what resume does with a trial, by the state its MLflow run was left in (no run: the trial had not started)
RESUME_STATES = {
    "finished": "kept as they are",
    "interrupted": "continue from their last checkpoints",
    "failed": "retried from their last checkpoints",
    "diverged": "fail again at once (a diverged loss is not retried)",
    "not started": "start now",
}
SHOWN_KEYS = 4  # trial keys named per state line; the rest are counted


def trial_states(store: Store, sweep_id: str, n_trials: int) -> dict[str, list[str]]:
    """The sweep's trials by state (RESUME_STATES), each as its key with the last epoch it logged where it stopped."""
    states: dict[str, list[str]] = {state: [] for state in RESUME_STATES}
    runs = store.trial_runs(sweep_id)
    for run in sorted(runs, key=lambda r: r.data.tags.get(names.T_TRIAL_KEY, "")):
        key = run.data.tags.get(names.T_TRIAL_KEY, run.info.run_id)
        if run.info.status == "FINISHED":
            states["finished"].append(key)
        elif run.data.tags.get(names.T_STATUS) == DIVERGED:
            states["diverged"].append(key)
        else:
            epoch = store.last_logged_step(run.info.run_id, names.TRAIN_LOSS)
            state = "failed" if run.info.status == "FAILED" else "interrupted"
            states[state].append(f"{key} (epoch {epoch})" if epoch > 0 else key)
    states["not started"] = [""] * max(0, n_trials - len(runs))
    return states


def describe_states(sweep_id: str, states: dict[str, list[str]]) -> list[str]:
    """One line per state that has trials: how many, what resume does with them, and which (a few by name)."""
    lines = [f"resuming sweep {sweep_id}: {sum(map(len, states.values()))} trials"]
    for state, keys in states.items():
        if not keys:
            continue
        named = [k for k in keys if k]
        which = ", ".join(named[:SHOWN_KEYS]) + (f" and {len(named) - SHOWN_KEYS} more" if len(named) > SHOWN_KEYS else "")
        lines.append(f"  {len(keys):4d} {state}: {RESUME_STATES[state]}" + (f": {which}" if which else ""))
    return lines


RAY_LOGGERS = ("ray.tune", "ray.train")  # what a restore logs: its own state-loading warnings, with tracebacks


class _NoTraceback(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


@contextmanager
def quiet_restore(verbose: bool) -> Iterator[None]:
    """Unless ``verbose``: Tune's restore says errors only, without Ray's tracebacks (the trial states printed
    before, and the outcome after, say what happened)."""
    if verbose:
        yield
        return
    loggers = [logging.getLogger(name) for name in RAY_LOGGERS]
    levels = [lg.level for lg in loggers]
    handlers = [*logging.getLogger("ray").handlers, *logging.getLogger().handlers]  # where Tune's records end
    quiet = _NoTraceback()
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    for handler in handlers:
        handler.addFilter(quiet)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
        for handler in handlers:
            handler.removeFilter(quiet)


def resume_sweep(
    store: Store,
    sweep: str,
    *,
    address: str | None = None,
    verbose: bool = False,
    num_cpus: int | None = None,
    console: Console | None = None,
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
    console = console or Console()
    n_trials = spec.search.num_samples if spec.search is not None else len(expand(spec))
    for line in describe_states(sweep_id, trial_states(store, sweep_id, n_trials)):
        console.print(line, highlight=False, soft_wrap=True)

    init_ray(address, verbose, num_cpus)
    check_tracking_store(store.uri)
    with_retry(lambda: store.client.update_run(run.info.run_id, status="RUNNING"))
    if run.data.tags.get(names.T_STATUS) == INTERRUPTED:  # no longer so
        for tag in (names.T_STATUS, names.T_FAILURE):
            with_retry(lambda tag=tag: store.client.delete_tag(run.info.run_id, tag))
    resources = {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu}
    try:
        with quiet_restore(verbose), tune_stops_on_signals():
            tuner = tune.Tuner.restore(path, tune.with_resources(run_trial, resources), resume_errored=True)
            grid = tuner.fit()
    except Interrupted as exc:
        mark_interrupted(store, sweep_id, run.info.run_id, exc, console)
        raise
    fits = len(with_retry(lambda: store.client.get_metric_history(run.info.run_id, "sweep/wall_time_s")))
    outcome = SweepOutcome(sweep_id, run.info.run_id, store.uri, storage)
    return record_outcome(store, grid, outcome, t0, step=fits, log_model=spec.evaluation.log_model)


def print_outcome(outcome: SweepOutcome, console: Console) -> None:
    done = sum(s == "TERMINATED" for s in outcome.statuses.values())
    console.print(
        f"sweep {outcome.sweep_id}: {done}/{len(outcome.statuses)} trials finished, {outcome.n_failed} failed, "
        f"{len(outcome.orphans_closed)} orphaned run(s) closed, in {outcome.wall_time_s:.0f} s"
    )
