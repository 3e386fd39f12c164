"""Sweep-level evaluation from MLflow alone: cross-run angles per configuration, eccentricity vs FID."""

from __future__ import annotations

import io
import re

import numpy as np
import torch

from evaluators import names
from evaluators.plots import eccentricity_vs_fid_plot, trajectories_plot
from evaluators.trial_eval import evaluate_configuration
from sweep.tracking import Store

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def config_slug(config_key: str) -> str:
    """A configuration key as MLflow accepts it inside a metric name ('1e+39' -> '1ep39')."""
    return _UNSAFE.sub("p", config_key)


def xrun_metric_key(metric: str, config_key: str) -> str:
    return f"{metric}/{config_slug(config_key)}"


def split_xrun_metric_key(key: str) -> tuple[str, str] | None:
    """Inverse of xrun_metric_key: (metric, config slug), or None for another key."""
    if not key.startswith("xrun/") or key.count("/") != 2:
        return None
    metric, slug = key.rsplit("/", 1)
    return metric, slug


def load_encodings(store: Store, run_id: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    try:
        path = store.client.download_artifacts(run_id, names.ARTIFACT_ENCODINGS)
    except Exception:  # a trial run without encodings (crossrun off, or failed before evaluation)
        return None
    with open(path, "rb") as f:
        data = np.load(io.BytesIO(f.read()))
        return torch.from_numpy(data["train_z"]), torch.from_numpy(data["test_z"])


def search_history_plot(trials, metric: str, mode: str) -> bytes:
    """Best value so far against trial number (trials in start order), for a search sweep."""
    ordered = trials.sort_values("start_time")[metric].to_numpy(dtype=float)
    filled = np.where(np.isnan(ordered), np.inf if mode == "min" else -np.inf, ordered)
    best = np.minimum.accumulate(filled) if mode == "min" else np.maximum.accumulate(filled)
    x = np.arange(1, len(ordered) + 1)
    return trajectories_plot(
        {"trial value": (x, ordered), "best so far": (x, best)}, xlabel="trial", ylabel=metric, title="search history"
    )


def analyse_sweep(store: Store, sweep_id: str, parent_run_id: str) -> dict[str, dict[str, float]]:
    """Cross-run metrics for every configuration with >= 2 finished seeds, logged on the sweep's parent run."""
    from sweep.leaderboard import trial_frame

    trials = trial_frame(store, sweep_id)
    if trials.empty:
        return {}
    finished = trials[trials["status"] == "FINISHED"]
    results: dict[str, dict[str, float]] = {}
    for config_key, group in finished.groupby("config_key"):
        runs = [e for e in (load_encodings(store, r) for r in group.sort_values("seed")["run_id"]) if e is not None]
        if len(runs) < 2:
            continue
        metrics, artifacts = evaluate_configuration(runs)
        results[config_key] = metrics
        store.log_metrics(parent_run_id, {xrun_metric_key(k, config_key): v for k, v in metrics.items()})
        for name, data in artifacts.items():
            store.log_artifact_bytes(parent_run_id, f"xrun/{config_slug(config_key)}/{name.rsplit('/', 1)[-1]}", data)

    parent = store.client.get_run(parent_run_id)
    metric = parent.data.params.get(names.P_SEARCH_METRIC)
    if metric and metric in trials:
        store.log_artifact_bytes(
            parent_run_id, names.ARTIFACT_PLOT_SEARCH_HISTORY,
            search_history_plot(trials, metric, parent.data.params.get(names.P_SEARCH_MODE, "min")),
        )

    fid_col = f"{names.EVAL_FID_PREFIX}standard"
    if fid_col in finished:
        means = finished.groupby([names.P_METHOD, "config_key"])[[names.EVAL_ECCENTRICITY, fid_col]].mean().dropna()
        if len(means):
            points = [(method, row[names.EVAL_ECCENTRICITY], row[fid_col]) for (method, _), row in means.iterrows()]
            store.log_artifact_bytes(parent_run_id, names.ARTIFACT_PLOT_ECC_VS_FID, eccentricity_vs_fid_plot(points))
    return results
