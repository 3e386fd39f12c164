"""Scale: a 10,000-trial sweep's runs in one MLflow store, and how long `esweep leaderboard`, the configuration
aggregation and `esweep report` take on it: in a sqlite file, and behind a real `mlflow server` on PostgreSQL.

The store is filled as a sweep leaves it, with synthetic metrics and no training: the grid comes from a real spec
(sweep.spec.expand), every run has the names, params, tags and description the driver and the trials give it, each
trial run its final metrics (eval/*, train/*) at its last epoch, 1% of trials FAILED. The runs are written in bulk
into the store's database (MLflow's own table models); the configuration runs are then summarised and closed by the
real aggregation through the tracking URI (sweep.aggregate.refresh_sweep, as at the end of a sweep), which is timed.
The leaderboard and the report are timed as a user runs them: `esweep ...` in a new process, interpreter start
included. The server is deploy/local/start-mlflow.sh with ESWEEP_MLFLOW_BACKEND=postgres (basic auth, a private
PostgreSQL cluster, ESWEEP_MLFLOW_WORKERS processes), the deployment README describes.
"""

from __future__ import annotations

import math
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from mlflow.entities import Metric

from benchmarks.common import base_parser, header
from evaluators import names
from sweep.aggregate import refresh_sweep
from sweep.leaderboard import config_frame
from sweep.report import publish_leaderboard
from sweep.spec import expand, parse_spec
from sweep.tracking import Store

ROOT = Path(__file__).resolve().parents[1]
LOCAL = ROOT / "deploy" / "local"
BACKENDS = ("sqlite", "server-postgres")
TARGET_LEADERBOARD_S = 10.0  # issue 12: a 10,000-trial leaderboard from the server within 10 s
# lambda takers: every one of them contributes lambdas x 2 latent dims configurations
METHODS = ("eae", "vae", "wae-mmd", "rae-l2", "entropic")
LATENT_DIMS = (8, 16)
SAMPLERS = ("standard", "matched")
FAIL_EVERY = 100  # one trial in a hundred FAILED, with a reason
FIGURE_PREFIX = "FIGURE"


def grid(n_trials: int, n_seeds: int):
    """The first ``n_trials`` trials of a grid spec with ``n_seeds`` seeds per configuration."""
    per_lambda = len(METHODS) * len(LATENT_DIMS) * n_seeds
    n_lambdas = math.ceil(n_trials / per_lambda)
    spec = parse_spec({
        "name": "scale", "dataset": "mnist5k", "methods": list(METHODS), "latent_dims": list(LATENT_DIMS),
        "lambdas": [float(f"{v:.6g}") for v in np.geomspace(1e-3, 1e2, n_lambdas)], "seeds": list(range(n_seeds)),
        "epochs": 20, "evaluation": {"fid_samples": 1000, "samplers": list(SAMPLERS)},
    })
    trials = expand(spec)[:n_trials]
    return spec, trials


def final_metrics(rng: np.random.Generator, epochs: int) -> list[Metric]:
    """A finished trial's latest values: what log_final and the per-epoch series leave as latest metrics."""
    ts = int(time.time() * 1000)
    values = {
        names.EVAL_ECCENTRICITY: rng.uniform(0.05, 0.6),
        names.EVAL_RECON_MSE: rng.uniform(0.01, 0.08),
        names.EVAL_TRACE: rng.uniform(2, 20),
        names.EVAL_WALL_TIME: rng.uniform(20, 60),
        names.TRAIN_LOSS: rng.uniform(0.01, 0.1),
        names.TRAIN_RECON: rng.uniform(0.01, 0.08),
        names.TRAIN_REG: rng.uniform(0, 1),
        names.TRAIN_CONVERGED: float(rng.random() < 0.9),
        names.TRAIN_REL_IMPROVEMENT_TAIL: rng.uniform(0, 0.02),
        "epoch": float(epochs),
        **{names.eval_knn_error(n): rng.uniform(5, 40) for n in (100, 1000, "all")},
    }
    for sampler in SAMPLERS:
        values[names.eval_fid(sampler)] = rng.uniform(20, 120)
        values[names.eval_kid(sampler)] = rng.uniform(0.01, 0.1)
        values[names.eval_kid_std(sampler)] = rng.uniform(0.001, 0.01)
        values[names.eval_fid_n(sampler)] = 1000.0
    return [Metric(k, float(v), ts, epochs) for k, v in values.items()]


def bulk_insert(db_uri: str, experiment_id: str, runs: list[dict]) -> None:
    """Runs written into the store's database in bulk, through MLflow's own table models (what its SQLAlchemy store
    writes for create_run, log_batch and set_terminated, latest_metrics included), a thousand runs per transaction.
    Through the API the fill would take longer than everything it is there to time (~20 runs/s on this machine)."""
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlParam, SqlRun, SqlTag
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME
    from sqlalchemy import insert

    sql = SqlAlchemyStore(db_uri, None)
    location = sql.get_experiment(experiment_id).artifact_location.rstrip("/")
    for i in range(0, len(runs), 1000):
        chunk = runs[i : i + 1000]
        rows: dict[type, list[dict]] = {SqlRun: [], SqlTag: [], SqlParam: [], SqlMetric: [], SqlLatestMetric: []}
        for r in chunk:
            rows[SqlRun].append({
                "run_uuid": r["run_id"], "name": r["name"], "experiment_id": int(experiment_id), "user_id": "esweep",
                "status": r["status"], "start_time": r["start"], "end_time": r["end"], "deleted_time": None,
                "source_type": "UNKNOWN", "source_name": "", "entry_point_name": "", "source_version": "",
                "lifecycle_stage": "active", "artifact_uri": f"{location}/{r['run_id']}/artifacts",
            })
            tags = {**r["tags"], MLFLOW_RUN_NAME: r["name"]}
            rows[SqlTag] += [{"key": k, "value": v, "run_uuid": r["run_id"]} for k, v in tags.items()]
            rows[SqlParam] += [{"key": k, "value": v, "run_uuid": r["run_id"]} for k, v in r["params"].items()]
            for table in (SqlMetric, SqlLatestMetric):
                rows[table] += [{"key": m.key, "value": m.value, "timestamp": m.timestamp, "step": m.step,
                                 "is_nan": False, "run_uuid": r["run_id"]} for m in r["metrics"]]
        with sql.ManagedSessionMaker() as session:
            for table, values in rows.items():
                if values:
                    session.execute(insert(table), values)
    sql.engine.dispose()


def fill(store: Store, db_uri: str, n_trials: int, n_seeds: int) -> tuple[str, int, int]:
    """A finished sweep's runs: the sweep run (through ``store``), configuration runs (RUNNING until aggregated) and
    trial runs (into ``db_uri``, in bulk), with the names, params, tags and descriptions the driver and the trials
    give them. Returns (sweep id, configurations, trials)."""
    from sweep.trainable import config_description, config_run_params, trial_description, trial_params

    spec, trials = grid(n_trials, n_seeds)
    experiment_id = store.experiment_id()
    sweep_id = f"scale-{n_trials}-{secrets.token_hex(3)}"
    parent = store.create_sweep_run(experiment_id, sweep_id, {"spec_name": spec.name, "n_trials": str(n_trials)},
                                    {names.T_DESCRIPTION: f"Synthetic {n_trials}-trial sweep (benchmarks.scale_store)."})
    ctx = {"evaluation": spec.evaluation.model_dump(mode="json")}
    provenance = store.provenance()
    by_config: dict[str, list] = {}
    for t in trials:
        by_config.setdefault(t.config_key, []).append(t)
    now = int(time.time() * 1000)
    runs, config_runs = [], {}
    for key, group in by_config.items():
        config_runs[key] = uuid.uuid4().hex
        runs.append({
            "run_id": config_runs[key], "name": f"{group[0].train.dataset}__{key}", "status": "RUNNING",
            "start": now, "end": None, "metrics": [], "params": config_run_params(group[0].train, ctx),
            "tags": {names.T_SWEEP_ID: sweep_id, names.T_ROLE: names.ROLE_CONFIG, names.T_CONFIG_KEY: key,
                     names.T_DESCRIPTION: config_description(group[0].train, len(group)),
                     "mlflow.parentRunId": parent, **provenance},
        })
    for index, t in enumerate(trials):
        failed = index % FAIL_EVERY == FAIL_EVERY - 1
        tags = {names.T_SWEEP_ID: sweep_id, names.T_TRIAL_KEY: t.key, names.T_ROLE: names.ROLE_TRIAL,
                names.T_CONFIG_KEY: t.config_key, names.T_TRIAL_ID: f"{index:05d}",
                names.T_DESCRIPTION: trial_description(t.train, t.config_key),
                "mlflow.parentRunId": config_runs[t.config_key], **provenance}
        if failed:
            tags.update({names.T_FAILURE: "diverged: loss became nan (synthetic)", names.T_STATUS: "failed"})
        runs.append({
            "run_id": uuid.uuid4().hex, "name": f"{t.train.dataset}__{t.key}", "status": "FAILED" if failed else "FINISHED",
            "start": now + index, "end": now + index + 60_000, "params": trial_params(t.train), "tags": tags,
            "metrics": [] if failed else final_metrics(np.random.default_rng(index), t.train.epochs),
        })
    bulk_insert(db_uri, experiment_id, runs)
    store.finish(parent)
    return sweep_id, len(by_config), len(trials)


def free_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in ports:
            ports.append(port)
    return ports


class PostgresServer:
    """deploy/local/start-mlflow.sh with ESWEEP_MLFLOW_BACKEND=postgres in a temporary state folder."""

    def __init__(self, state: Path | None = None, workers: int = 1) -> None:
        """``state``: a folder kept afterwards (its PostgreSQL cluster is reused when there), else a temporary one."""
        self.keep = state is not None
        if state is not None:
            state.mkdir(parents=True, exist_ok=True)
        # postgres (another user) must reach it
        self.state = str(state.resolve()) if state else tempfile.mkdtemp(prefix="esweep-scale-", dir="/tmp")
        os.chmod(self.state, 0o755)
        password_file = Path(self.state) / "benchmark-password"  # a kept store's admin keeps its password
        if not password_file.exists():
            password_file.touch(0o600)
            password_file.write_text(secrets.token_urlsafe(16))
        mlflow_port, pg_port = free_ports(2)
        self.uri = f"http://127.0.0.1:{mlflow_port}"
        self.db_uri = f"postgresql+psycopg2://mlflow@127.0.0.1:{pg_port}/mlflow"  # as start-mlflow.sh makes it
        self.env = {
            **os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "ESWEEP_LOCAL_DIR": self.state, "ESWEEP_MLFLOW_PORT": str(mlflow_port), "ESWEEP_PG_PORT": str(pg_port),
            "ESWEEP_MLFLOW_BACKEND": "postgres", "ESWEEP_MLFLOW_WORKERS": str(workers), "MLFLOW_TRACKING_USERNAME": "admin",
            "MLFLOW_TRACKING_PASSWORD": password_file.read_text(),
        }

    def __enter__(self) -> PostgresServer:
        subprocess.run(["bash", str(LOCAL / "start-mlflow.sh")], env=self.env, check=True, timeout=300)
        for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):  # this process and the CLIs it starts
            os.environ[key] = self.env[key]
        return self

    def __exit__(self, *exc) -> None:
        subprocess.run(["bash", str(LOCAL / "stop-mlflow.sh")], env=self.env, timeout=180, check=False)
        if not self.keep:
            shutil.rmtree(self.state, ignore_errors=True)


def esweep(*args: str) -> tuple[float, subprocess.CompletedProcess]:
    """`esweep ARGS` in a new process, as a user runs it; (wall seconds, result)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", "from sweep.cli import main; main()", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"esweep {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return wall, proc


def figure(backend: str, what: str, seconds: float, extra: str = "") -> None:
    print(f"{FIGURE_PREFIX} scale_store {backend} {what}: {seconds:.1f} s{extra}", flush=True)


def measure(backend: str, uri: str, db_uri: str, args, folder: Path, sweep_id: str | None = None) -> dict:
    """Fill and aggregate a new sweep, or take ``sweep_id``, already there; then time what reads it."""
    store = Store(uri)
    out = {"fill": math.nan, "aggregation": math.nan}
    if sweep_id is None:
        t0 = time.perf_counter()
        sweep_id, n_configs, n_runs = fill(store, db_uri, args.trials, args.seeds)
        out["fill"] = time.perf_counter() - t0
        figure(backend, "fill", out["fill"], f" ({n_runs} trial runs + {n_configs} configuration runs, in bulk)")
        t0 = time.perf_counter()
        refresh_sweep(store, sweep_id, finish=True)
        out["aggregation"] = time.perf_counter() - t0
        figure(backend, "aggregation", out["aggregation"], f" ({n_configs} configurations from {n_runs} trial runs)")
    else:
        n_runs = len(store.trial_runs(sweep_id))
        n_configs = len(store.config_runs(sweep_id))
    print(f"sweep {sweep_id} in {uri}: {n_runs} trial runs, {n_configs} configuration runs", flush=True)
    rounds = args.rounds
    # as the driver ends a sweep: the leaderboard (read from every configuration run) and its snapshot onto the
    # sweep run, then the sweep run closed; a finished sweep's leaderboard is then read from the snapshot
    parent = store.sweep_run(sweep_id).info.run_id
    t0 = time.perf_counter()
    publish_leaderboard(store, sweep_id, parent)
    store.finish(parent, "FINISHED")
    out["publish"] = time.perf_counter() - t0
    figure(backend, "publish leaderboard", out["publish"], " (every configuration run read, table, CSV, snapshot)")

    t0 = time.perf_counter()  # the leaderboard's parts, in this process: the read alone, then read and table
    runs = store.config_runs(sweep_id)
    out["read_configs"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    board = config_frame(store, sweep_id)
    assert len(runs) == len(board) == n_configs, (len(runs), len(board), n_configs)
    out["board_in_process"] = time.perf_counter() - t0
    figure(backend, "leaderboard in-process", out["board_in_process"],
           f" (read and table; the search of the configuration runs alone, just before: {out['read_configs']:.1f} s)")

    walls = []
    for _ in range(rounds):
        wall, proc = esweep("leaderboard", sweep_id, "--tracking-uri", uri)
        walls.append(wall)
    rows = len(proc.stdout.splitlines())
    out["leaderboard"] = float(np.median(walls))
    figure(backend, "esweep leaderboard", out["leaderboard"],
           f" (from the snapshot; median of {rounds}: {', '.join(f'{w:.1f}' for w in walls)}; {rows} lines printed)")
    wall, fresh = esweep("leaderboard", sweep_id, "--tracking-uri", uri, "--fresh")
    assert fresh.stdout == proc.stdout, "the snapshot and every configuration run disagree"
    out["leaderboard_fresh"] = wall
    figure(backend, "esweep leaderboard --fresh", wall, " (every configuration run read; the same table printed)")
    out["report"] = math.nan
    if not args.no_report:
        wall, proc = esweep("report", sweep_id, "--tracking-uri", uri, "-o", str(folder / f"{backend}.html"))
        out["report"] = wall
        size = (folder / f"{backend}.html").stat().st_size
        figure(backend, "esweep report", wall, f" ({size / 1e6:.1f} MB of HTML)")
    out.update(configs=n_configs, trials=n_runs, sweep=sweep_id)
    return out


def main(argv: list[str] | None = None) -> list[str]:
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=None, help="trial runs in the sweep (default 10000, smoke 50)")
    p.add_argument("--seeds", type=int, default=2, help="seeds per configuration (default 2: trials / 2 rows)")
    p.add_argument("--backend", action="append", choices=BACKENDS,
                   help="sqlite, server-postgres (repeatable; default both, smoke sqlite)")
    p.add_argument("--server-workers", type=int, default=1, help="MLflow server processes (deploy/local's default: 1)")
    p.add_argument("--store-dir", type=Path, default=None,
                   help="keep the stores here (BACKEND/ below it) instead of a temporary folder, to time them again")
    p.add_argument("--no-report", action="store_true", help="leave `esweep report` out (minutes at 10,000 trials)")
    p.add_argument("--sweep", default=None, help="time this sweep, already in --store-dir, instead of filling one")
    args = p.parse_args(argv)
    header("scale: a 10,000-trial sweep's store, leaderboard, aggregation and report",
           "benchmarks.scale_store", argv)
    if args.sweep and (not args.store_dir or not args.backend or len(args.backend) != 1):
        p.error("--sweep needs --store-dir (the folder it was filled in) and one --backend")
    args.trials = args.trials or (50 if args.smoke else 10_000)
    args.rounds = args.rounds or (1 if args.smoke else 3)
    backends = args.backend or (["sqlite"] if args.smoke else list(BACKENDS))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            folder = (args.store_dir or Path(tmp)) / backend
            folder.mkdir(parents=True, exist_ok=True)
            if backend == "sqlite":
                uri = f"sqlite:///{folder.resolve() / 'mlflow.db'}"
                results[backend] = measure(backend, uri, uri, args, folder, args.sweep)
                continue
            with PostgresServer(folder / "server" if args.store_dir else None, args.server_workers) as server:
                results[backend] = measure(backend, server.uri, server.db_uri, args, folder, args.sweep)
    print("\n| backend | trials / configurations | fill | aggregation | publish | esweep leaderboard | --fresh "
          "| esweep report |")
    print("|---|---|---|---|---|---|---|---|")
    for backend, r in results.items():
        print(f"| {backend} | {r['trials']:,} / {r['configs']:,} | {r['fill']:.0f} s | {r['aggregation']:.1f} s | "
              f"{r['publish']:.1f} s | {r['leaderboard']:.1f} s | {r['leaderboard_fresh']:.1f} s | {r['report']:.1f} s |")
    if "server-postgres" in results:
        r = results["server-postgres"]
        met = r["leaderboard"] <= TARGET_LEADERBOARD_S
        print(f"target: a {r['trials']:,}-trial leaderboard from the server in <= {TARGET_LEADERBOARD_S:.0f} s: "
              f"{r['leaderboard']:.1f} s, {'met' if met else 'NOT met'}")
    if args.store_dir:
        for backend, r in results.items():
            print(f"time {backend} again: python -m benchmarks.scale_store --store-dir {args.store_dir} "
                  f"--backend {backend} --sweep {r['sweep']}")
    return []


if __name__ == "__main__":
    main()
