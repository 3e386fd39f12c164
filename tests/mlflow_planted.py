"""Sweeps planted straight into a sqlite MLflow store, as the driver leaves them (a sweep run, configuration runs with
their params and summaries), for tests that read the store without training anything."""

from __future__ import annotations

import time

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from evaluators import names
from sweep.tracking import DEFAULT_EXPERIMENT, artifact_root_for


def summary(mean: float, std: float, n: int, ci95: float | None = None) -> dict[str, float]:
    """The suffixes a configuration run carries beside a mean (ci95 is any positive number unless given)."""
    return {"": mean, "_std": std, "_n": float(n), "_ci95": std if ci95 is None else ci95}


def plant_sweep(uri: str, sweep_id: str, configs: list[dict]) -> tuple[str, dict[str, str]]:
    """A finished sweep run and one configuration run per entry of ``configs``: {"params": {...}, "metrics":
    {metric: summary(...)}, optionally "tags": {...}}; returns (experiment id, config key -> run id)."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(DEFAULT_EXPERIMENT)
    exp_id = exp.experiment_id if exp else client.create_experiment(DEFAULT_EXPERIMENT, artifact_location=artifact_root_for(uri))
    parent = client.create_run(exp_id, run_name=sweep_id, tags={names.T_SWEEP_ID: sweep_id, names.T_ROLE: names.ROLE_SWEEP})
    ids = {}
    ts = int(time.time() * 1000)
    for cfg in configs:
        params = {names.P_TARGET: "-", names.P_MU: "-", names.P_DATASET: "mnist5k", **cfg["params"]}
        key = f"{params[names.P_METHOD]}__lam{params[names.P_LAMBDA]}__mu{params[names.P_MU]}__d{params[names.P_LATENT_DIM]}"
        run = client.create_run(exp_id, run_name=key, tags={
            names.T_SWEEP_ID: sweep_id, names.T_ROLE: names.ROLE_CONFIG, names.T_CONFIG_KEY: key,
            "mlflow.parentRunId": parent.info.run_id,
        })
        metrics = [Metric(f"{m}{suffix}", v, ts, 0) for m, s in cfg["metrics"].items() for suffix, v in s.items()]
        seeds = int(next(iter(cfg["metrics"].values()))["_n"]) if cfg["metrics"] else 0
        metrics.append(Metric(names.SEEDS_FINISHED, float(seeds), ts, 0))
        client.log_batch(run.info.run_id, metrics=metrics, params=[Param(k, str(v)) for k, v in params.items()],
                         tags=[RunTag(names.T_FLAGS, ""), *(RunTag(k, v) for k, v in cfg.get("tags", {}).items())])
        client.set_terminated(run.info.run_id)
        ids[key] = run.info.run_id
    client.set_terminated(parent.info.run_id)
    return exp_id, ids
