"""Sweep overhead: the share of a sweep's wall time not spent in trial compute, with and without actor reuse.

A 16-trial sweep of short eae trials (digits, mlp-small) through sweep.orchestrate.run_sweep into a temporary
MLflow store, one trial at a time (max_concurrent 1), so overhead = (wall - sum of trial compute) / wall, where a
trial's compute is its eval/wall_time_s in MLflow (training, per-epoch evaluation and logging inside the trial).
Ray is started once before both sweeps; its start-up is reported apart. run_sweep always reuses actors, so the
no-reuse sweep patches tune.TuneConfig(reuse_actors=False) for its duration. 30 s trials are extrapolated from the
measured per-trial overhead o: o / (30 + o).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from unittest import mock

import ray
from ray import tune
from rich.console import Console

from benchmarks.common import base_parser, header, ratio_line
from evaluators import names
from sweep.orchestrate import init_ray, run_sweep
from sweep.spec import parse_spec
from sweep.tracking import Store


def spec(n_trials: int, epochs: int, reuse: bool):
    return parse_spec(
        {
            "name": f"bench-overhead-{'reuse' if reuse else 'fresh'}",
            "dataset": "digits",
            "methods": [{"name": "eae", "lambdas": [0.1]}],
            "seeds": list(range(n_trials)),
            "epochs": epochs,
            "batch_size": 100,
            "lr": 1e-3,
            "max_failures": 0,
            "max_concurrent": 1,
            "resources": {"cpu": 1},
            "device": "cpu",
            # training and per-epoch logging only: a 10,000-sample FID at ~10 images/s would be the whole trial
            "evaluation": {"fid_samples": 0, "knn": False, "plots": False, "crossrun": False},
        }
    )


def run(root: Path, n_trials: int, epochs: int, reuse: bool) -> tuple[float, float, int]:
    real = tune.TuneConfig

    def tune_config(**kw):
        return real(**{**kw, "reuse_actors": reuse})

    uri = f"sqlite:///{root / 'mlflow.db'}"
    with mock.patch.object(tune, "TuneConfig", tune_config):
        outcome = run_sweep(
            spec(n_trials, epochs, reuse),
            tracking_uri=uri,
            storage_path=str(root / f"results-{reuse}"),
            console=Console(quiet=True),
        )
    compute = [r.data.metrics.get(names.EVAL_WALL_TIME, 0.0) for r in Store(uri).trial_runs(outcome.sweep_id)]
    return outcome.wall_time_s, sum(compute), len(compute)


def main(argv: list[str] | None = None) -> list[str]:
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=None, help="trials per sweep (default 16, smoke 2)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per trial (default 40: a few seconds; smoke 1)")
    args = p.parse_args(argv)
    header("3. sweep overhead: (wall - sum of trial compute) / wall", "benchmarks.sweep_overhead", argv)
    n_trials = args.trials or (2 if args.smoke else 16)
    epochs = args.epochs or (1 if args.smoke else 40)
    t0 = time.perf_counter()
    init_ray(None, False, num_cpus=2)
    print(f"ray start-up {time.perf_counter() - t0:.1f} s (once per driver, not counted below)")
    with tempfile.TemporaryDirectory() as tmp:
        for reuse in (True, False):
            wall, compute, done = run(Path(tmp), n_trials, epochs, reuse)
            overhead = (wall - compute) / wall
            per_trial = (wall - compute) / max(done, 1)
            at30 = per_trial / (30 + per_trial)
            print(
                f"reuse_actors={reuse!s:5s} | {done} trials, wall {wall:.1f} s, trial compute {compute:.1f} s "
                f"({compute / max(done, 1):.1f} s each) | overhead {overhead:.1%}, {per_trial:.2f} s per trial "
                f"-> {at30:.1%} for 30 s trials (extrapolated)"
            )
            ratio_line(f"sweep overhead share reuse_actors={reuse}", overhead)
    ray.shutdown()
    return []


if __name__ == "__main__":
    main()
