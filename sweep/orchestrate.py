"""Run a validated spec as Ray Tune trials; the driver owns the sweep's parent MLflow run."""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

import ray
import yaml
from ray import tune
from rich.console import Console
from rich.live import Live
from rich.text import Text

from evaluators import names
from sweep.aggregate import refresh_sweep
from sweep.analysis import analyse_sweep
from sweep.cleanup import ORPHAN_STATUS, close_orphans
from sweep.cluster import check_tracking_store, resolve_storage
from sweep.models import prune_to_best
from sweep.report import publish_sweep_results
from sweep.shutdown import Interrupted, reclaim, tune_stops_on_signals
from sweep.spec import SweepSpec, TrialSpec, expand, spec_digest
from sweep.tracking import Store, resolve_tracking_uri, with_retry
from sweep.trainable import config_description, config_run_params, run_trial, trial_of
from trainers.config import TrainConfig
from trainers.packed import VARYING_FIELDS, check_packable

DEFAULT_STORAGE = "esweep-results"
STORAGE_TAG = "esweep.storage_path"  # where `esweep resume` finds the Tune experiment
PROGRESS_METRIC = names.EVAL_RECON_MSE
INTERRUPTED = "interrupted"  # the status tag of runs a stop signal left for `esweep resume`


@dataclass
class SweepOutcome:
    sweep_id: str
    parent_run_id: str
    tracking_uri: str
    storage_path: str
    statuses: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    wall_time_s: float = 0.0
    orphans_closed: list[str] = field(default_factory=list)

    @property
    def n_failed(self) -> int:
        return sum(s == "ERROR" for s in self.statuses.values())


def _members(trial) -> int:
    """How many grid trials a Tune trial stands for: the members of a pack, else 1."""
    return len(trial_of(trial.config, trial.trial_id).get("pack", ())) or 1


class Progress(tune.Callback):
    """One status line (done / running / failed, best so far, elapsed) instead of pages of logs.

    Counts grid trials, so a pack of K counts K, and a member that diverged in a finished pack counts as failed."""

    def __init__(self, total: int, console: Console, metric: str = PROGRESS_METRIC):
        self.total, self.console, self.metric = total, console, metric
        # Tune trial id -> grid trials it stands for
        self.running: dict[str, int] = {}
        self.done: dict[str, int] = {}
        self.failed: dict[str, int] = {}
        self.best: float | None = None
        self.started = time.monotonic()
        self.live: Live | None = None

    def __getstate__(self):  # Tune pickles callbacks with the experiment state; the terminal stays here
        return {k: v for k, v in self.__dict__.items() if k not in ("console", "live")}

    def __setstate__(self, state):  # restored by `esweep resume`: a terminal of its own
        # a sweep started before packs existed kept sets of trial ids, each standing for one grid trial
        state = {k: dict.fromkeys(v, 1) if isinstance(v, set) else v for k, v in state.items()}
        self.__dict__.update(state, console=Console(), live=None)

    def _render(self) -> Text:
        elapsed = int(time.monotonic() - self.started)
        best = "-" if self.best is None else f"{self.best:.4g}"
        return Text(
            f"trials {sum(self.done.values())}/{self.total} done | {sum(self.running.values())} running"
            f" | {sum(self.failed.values())} failed | best {self.metric} {best} | {elapsed // 60:02d}:{elapsed % 60:02d}"
        )

    def _update(self) -> None:
        if self.live is not None:
            self.live.update(self._render())

    def setup(self, **info):
        self.live = Live(self._render(), console=self.console, refresh_per_second=2)
        self.live.start()

    def on_trial_start(self, iteration, trials, trial, **info):
        self.running[trial.trial_id] = _members(trial)
        self._update()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        value = result.get(self.metric)
        if value is not None and (self.best is None or value < self.best):
            self.best = float(value)
        self._update()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.running.pop(trial.trial_id, None)
        diverged = int((trial.last_result or {}).get(names.PACK_DIVERGED, 0))
        self.done[trial.trial_id] = _members(trial) - diverged
        self.failed.pop(trial.trial_id, None)
        if diverged:
            self.failed[trial.trial_id] = diverged
        self._update()

    def on_trial_error(self, iteration, trials, trial, **info):
        self.running.pop(trial.trial_id, None)
        self.failed[trial.trial_id] = _members(trial)
        self.console.print(f"[red]trial failed[/red] {trial_of(trial.config, trial.trial_id)['key']}: see `esweep leaderboard`")
        self._update()

    def on_experiment_end(self, trials, **info):
        self._update()
        if self.live is not None:
            self.live.stop()


OUTCOME_MARK = "\n\nLast finished: "  # the description's outcome line, rewritten by each fit (run, resume)


def sweep_description(spec: SweepSpec, sweep_id: str, n_trials: int) -> str:
    """The sweep run's description in MLflow's UI: what ran, and where its results are."""
    grid = [e.name for e in spec.method_entries()]
    kind = f"a {spec.search.num_samples}-trial search" if spec.search is not None else "a grid"
    return (
        f"Sweep {spec.name} ({sweep_id}), {kind} of {n_trials} trials on {spec.dataset}: methods {', '.join(grid)}, "
        f"d in {spec.latent_dims}, seeds {spec.seeds}, {spec.epochs} epochs each. Its child runs are the "
        "configurations (mean, M_std, M_ci95, M_n over seeds), each with its seeds nested below. Artifacts: "
        f"{names.ARTIFACT_SPEC} (the spec), {names.ARTIFACT_SWEEP_REPORT} (`esweep report`), "
        f"{names.ARTIFACT_LEADERBOARD_TABLE} and {names.ARTIFACT_LEADERBOARD_CSV} (`esweep leaderboard`)."
    )


def outcome_description(previous: str, outcome: SweepOutcome) -> str:
    done = sum(s == "TERMINATED" for s in outcome.statuses.values())
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{previous.split(OUTCOME_MARK)[0]}{OUTCOME_MARK}{when}, {done}/{len(outcome.statuses)} trials finished, "
        f"{outcome.n_failed} failed, {outcome.wall_time_s:.0f} s."
    )


def new_sweep_id(name: str) -> str:
    return f"{name}-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def init_ray(address: str | None, verbose: bool, num_cpus: int | None = None) -> None:
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # per-epoch checkpoints with num_to_keep force experiment snapshots; Tune's warning about it is noise here
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    kwargs = dict(log_to_driver=verbose, include_dashboard=False, configure_logging=verbose, logging_level="WARNING")
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(address="local", num_cpus=num_cpus, **kwargs)  # a fresh local Ray, never a stray cluster
    reclaim()  # a stop signal stops the sweep as sweep.shutdown says, not as ray.init's SIGTERM handler would


def _pack_group(cfg: TrainConfig) -> str | None:
    """What trials packed together share (everything but lambda and seed), or None when this one cannot be packed."""
    try:
        check_packable([cfg])
    except ValueError:
        return None
    return json.dumps(cfg.model_dump(mode="json", exclude=set(VARYING_FIELDS)), sort_keys=True)


def pack_trials(trials: list[TrialSpec], size: int) -> list[list[TrialSpec]]:
    """The grid as Tune trials: trials equal but for lambda and seed in packs of at most ``size``, in grid order;
    a trial whose method has its own step, or whose lambda is controlled, alone."""
    groups: dict[tuple[str, str], list[TrialSpec]] = {}
    for t in trials:
        group = _pack_group(t.train) if size > 1 else None
        groups.setdefault(("alone", t.key) if group is None else ("pack", group), []).append(t)
    return [g[i : i + size] for g in groups.values() for i in range(0, len(g), size)]


def _trial_entry(t: TrialSpec) -> dict:
    return {"key": t.key, "config_key": t.config_key, "train": t.train.model_dump(mode="json")}


def _unit_entry(index: int, unit: list[TrialSpec]) -> dict:
    if len(unit) == 1:
        return _trial_entry(unit[0])
    cfg = unit[0].train
    # the Tune trial's name; each member keeps its own key, and with it its MLflow run
    return {"key": f"pack{index}__{cfg.method}__d{cfg.latent_dim}__x{len(unit)}", "pack": [_trial_entry(t) for t in unit]}


def trial_param_space(spec: SweepSpec, trials: list[TrialSpec], ctx: dict) -> dict:
    units = pack_trials(trials, spec.pack)
    return {"ctx": ctx, "trial": tune.grid_search([_unit_entry(i, u) for i, u in enumerate(units)])}


def search_param_space(spec: SweepSpec, trials: list[TrialSpec], ctx: dict) -> dict:
    """Ranges for the searcher: lambda log-uniform, mu uniform above 0.5, d and method as choices."""
    search = spec.search
    base = trials[0].train.model_dump(mode="json")
    space: dict = {"ctx": ctx, "base": base}
    names_ = [e.name for e in spec.method_entries()]
    space["method"] = tune.choice(names_) if len(names_) > 1 else names_[0]
    if search.lambda_range is not None:
        space["lam"] = tune.loguniform(*search.lambda_range)
    elif len(spec.lambdas) > 1:
        space["lam"] = tune.choice(spec.lambdas)
    if search.mu_range is not None:
        space["mu"] = tune.uniform(*search.mu_range)
    elif len(spec.mus) > 1:
        space["mu"] = tune.choice(spec.mus)
    space["latent_dim"] = tune.choice(spec.latent_dims) if len(spec.latent_dims) > 1 else spec.latent_dims[0]
    space["seed"] = tune.choice(spec.seeds) if len(spec.seeds) > 1 else spec.seeds[0]
    return space


def search_tune_config(spec: SweepSpec) -> dict:
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    search = spec.search
    # the objective may exist only in a trial's final result (FID is computed after training): the searcher
    # reads final results only, so per-epoch results need not carry it
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    mode = "min" if search.target is not None else search.mode
    config = {
        "search_alg": OptunaSearch(metric=search.objective, mode=mode, seed=search.seed),
        "num_samples": search.num_samples,
    }
    if search.asha:
        config["scheduler"] = ASHAScheduler(
            metric=search.asha_metric, mode=search.asha_mode, max_t=spec.epochs, grace_period=search.grace_period,
            time_attr="training_iteration",
        )
    return config


def create_config_runs(store: Store, ctx: dict, trials: list[TrialSpec]) -> dict[str, str]:
    """One MLflow run per configuration (sweep -> configuration -> seed), config key -> run id."""
    seeds: dict[str, list[TrialSpec]] = {}
    for t in trials:
        seeds.setdefault(t.config_key, []).append(t)
    return {
        key: store.find_or_create_config_run(
            ctx["experiment_id"], ctx["sweep_id"], ctx["parent_run_id"], key, f"{group[0].train.dataset}__{key}",
            config_run_params(group[0].train, ctx), config_description(group[0].train, len(group)),
        )
        for key, group in seeds.items()
    }


def run_sweep(
    spec: SweepSpec,
    *,
    tracking_uri: str | None = None,
    storage_path: str | None = None,
    address: str | None = None,
    verbose: bool = False,
    console: Console | None = None,
    num_cpus: int | None = None,
    tags: dict[str, str] | None = None,
) -> SweepOutcome:
    """Run ``spec`` on Ray, logging to MLflow; ``tags`` go on the sweep run (e.g. the paper table it reproduces)."""
    console = console or Console()
    t0 = time.monotonic()
    trials = expand(spec)
    n_trials = spec.search.num_samples if spec.search is not None else len(trials)  # a search samples its own
    uri = resolve_tracking_uri(tracking_uri or spec.tracking_uri)
    storage = resolve_storage(storage_path or spec.storage_path or DEFAULT_STORAGE)
    init_ray(address, verbose, num_cpus)
    check_tracking_store(uri)  # before any run is created or trial scheduled
    store = Store(uri)
    experiment_id = store.experiment_id()
    sweep_id = new_sweep_id(spec.name)
    parent_run_id = store.create_sweep_run(
        experiment_id,
        sweep_id,
        {"spec_name": spec.name, "dataset": spec.dataset, "n_trials": str(n_trials), "spec_digest": spec_digest(spec)},
        {STORAGE_TAG: storage, names.T_DESCRIPTION: sweep_description(spec, sweep_id, n_trials), **(tags or {})},
    )
    store.log_artifact_bytes(parent_run_id, names.ARTIFACT_SPEC, yaml.safe_dump(spec.model_dump(mode="json")).encode())
    packs = "" if spec.pack == 1 else f" in {len(pack_trials(trials, spec.pack))} Tune trials"
    console.print(f"sweep [bold]{sweep_id}[/bold]: {n_trials} trials{packs} -> MLflow {uri}")

    ctx = {
        "tracking_uri": uri,
        "experiment_id": experiment_id,
        "sweep_id": sweep_id,
        "parent_run_id": parent_run_id,
        "evaluation": spec.evaluation.model_dump(mode="json"),
    }
    if spec.search is None:  # a grid's configurations are known: their runs exist before any trial nests under them
        ctx["config_runs"] = create_config_runs(store, ctx, trials)
    resources = {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu}
    if spec.search is not None:
        ctx["search"] = spec.search.model_dump(mode="json")
        param_space, search_config = search_param_space(spec, trials, ctx), search_tune_config(spec)
        store.log_params(parent_run_id, {names.P_SEARCH_METRIC: spec.search.objective, names.P_SEARCH_MODE: spec.search.mode})
    else:
        param_space, search_config = trial_param_space(spec, trials, ctx), {}
    tuner = tune.Tuner(
        tune.with_resources(run_trial, resources),
        param_space=param_space,
        tune_config=tune.TuneConfig(
            reuse_actors=True,
            max_concurrent_trials=spec.max_concurrent,
            trial_name_creator=lambda t: trial_of(t.config, t.trial_id)["key"],
            trial_dirname_creator=lambda t: f"{trial_of(t.config, t.trial_id)['key']}_{t.trial_id}",
            **search_config,
        ),
        run_config=tune.RunConfig(
            name=sweep_id,
            storage_path=storage,
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            verbose=1 if verbose else 0,
            callbacks=[Progress(n_trials, console)],
        ),
    )
    try:
        with tune_stops_on_signals():
            grid = tuner.fit()
    except Interrupted as exc:
        mark_interrupted(store, sweep_id, parent_run_id, exc, console)
        raise
    outcome = SweepOutcome(sweep_id, parent_run_id, uri, storage)
    return record_outcome(store, grid, outcome, t0, log_model=spec.evaluation.log_model)


def interrupted_reason(sweep_id: str, exc: Interrupted) -> str:
    return f"interrupted: the driver was stopped by {exc.name}; `esweep resume {sweep_id}` continues it"


def mark_interrupted(store: Store, sweep_id: str, parent_run_id: str, exc: Interrupted, console: Console) -> None:
    """After a stop signal: the sweep's runs still RUNNING and its sweep run KILLED, each tagged with how to go on.
    `esweep resume` sets them RUNNING again and continues the trials from Tune's saved state."""
    reason = interrupted_reason(sweep_id, exc)
    closed = 0
    for run in store.trial_runs(sweep_id):
        if run.info.status == "RUNNING":
            store.set_tags(run.info.run_id, {names.T_FAILURE: reason, names.T_STATUS: INTERRUPTED})
            with_retry(lambda run=run: store.client.set_terminated(run.info.run_id, status=ORPHAN_STATUS))
            closed += 1
    store.set_tags(parent_run_id, {names.T_FAILURE: reason, names.T_STATUS: INTERRUPTED})
    with_retry(lambda: store.client.set_terminated(parent_run_id, status=ORPHAN_STATUS))
    console.print(f"sweep {sweep_id} stopped by {exc.name}: {closed} trial run(s) marked {ORPHAN_STATUS}; "
                  f"`esweep resume {sweep_id}` continues it")


def _member_error(run, pack_error: str | None) -> str | None:
    """A packed member's own outcome where its run has one (finished, or failed alone), else its pack's."""
    if run is not None and run.info.status == "FINISHED":
        return None
    if run is not None and run.info.status == "FAILED":
        return run.data.tags.get(names.T_FAILURE) or pack_error or "failed"
    return pack_error


def record_outcome(
    store: Store, grid: tune.ResultGrid, outcome: SweepOutcome, t0: float, step: int = 0, log_model: str = "all"
) -> SweepOutcome:
    """After a fit (first run or resume, ``step`` counts them): statuses, orphaned runs closed, parent finished;
    with ``log_model`` 'best', only each configuration's best seed keeps its logged model.

    Statuses are per grid trial: a pack reports each member, a diverged member as an ERROR of its own."""
    runs = None
    for result in grid:
        trial = trial_of(result.config, result.path.rstrip("/").rsplit("_", 1)[-1])
        error = str(result.error).strip().splitlines()[-1][:300] if result.error else None
        if "pack" in trial:
            if runs is None:
                runs = {r.data.tags.get(names.T_TRIAL_KEY): r for r in store.trial_runs(outcome.sweep_id)}
            errors = {m["key"]: _member_error(runs.get(m["key"]), error) for m in trial["pack"]}
        else:
            errors = {trial["key"]: error}
        for key, err in errors.items():
            outcome.statuses[key] = "ERROR" if err else "TERMINATED"
            if err:
                outcome.errors[key] = err[:300]
    outcome.wall_time_s = time.monotonic() - t0
    parent = outcome.parent_run_id
    store.log_metrics(parent, {"sweep/wall_time_s": outcome.wall_time_s, "sweep/n_failed": outcome.n_failed}, step)
    store.log_artifact_bytes(parent, "trial_statuses.json", json.dumps(outcome.statuses, indent=1).encode())
    outcome.orphans_closed = close_orphans(store, outcome.sweep_id)  # the Tuner returned: no trial is live
    config_runs = refresh_sweep(store, outcome.sweep_id, finish=True)
    if log_model == "best":
        prune_to_best(store, outcome.sweep_id)
    analyse_sweep(store, outcome.sweep_id, parent, config_runs)
    publish_sweep_results(store, outcome.sweep_id, parent)
    description = with_retry(lambda: store.client.get_run(parent)).data.tags.get(
        names.T_DESCRIPTION, f"Sweep {outcome.sweep_id}."
    )
    store.set_tags(parent, {names.T_DESCRIPTION: outcome_description(description, outcome)})
    store.finish(parent, "FINISHED")
    return outcome
