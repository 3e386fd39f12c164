"""Sweep-level evaluation from MLflow alone: cross-run angles per configuration (on its configuration run, under
fixed names), eccentricity vs FID and the search history (on the sweep run)."""

from __future__ import annotations

import io
import math

import numpy as np
import torch

from evaluators import names
from evaluators.metric_crossrun import SUMMARY_KEYS
from evaluators.metric_uncertainty import summary_from_moments
from evaluators.plots import eccentricity_vs_fid_plot, trajectories_plot
from evaluators.trial_eval import evaluate_configuration
from sweep.aggregate import SUFFIX_CI95, SUFFIX_N, SUFFIX_STD, trial_frame
from sweep.tracking import Store


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


def crossrun_summaries(metrics: dict[str, float]) -> dict[str, float]:
    """Cross-run statistics over seed pairs as configuration summaries: M (mean over pairs), M_std (ddof 1), M_ci95,
    M_n (pairs). Pairs share seeds, so they are not independent and the interval is optimistic; n says how many."""
    pairs = int(metrics[names.XRUN_PAIRS])
    out: dict[str, float] = {}
    for key, std_key in SUMMARY_KEYS:
        std = metrics[std_key] * math.sqrt(pairs / (pairs - 1)) if pairs > 1 else math.nan
        s = summary_from_moments(metrics[key], std, pairs)
        out[key], out[key + SUFFIX_N] = s.mean, float(s.n)
        out.update({k: v for k, v in ((key + SUFFIX_STD, s.std), (key + SUFFIX_CI95, s.ci95)) if not math.isnan(v)})
    return out


def analyse_sweep(store: Store, sweep_id: str, parent_run_id: str, config_runs: dict[str, str]) -> dict[str, dict[str, float]]:
    """Cross-run metrics for every configuration with >= 2 finished seeds, logged on its configuration run."""
    trials = trial_frame(store, sweep_id)
    if trials.empty:
        return {}
    finished = trials[trials["status"] == "FINISHED"]
    results: dict[str, dict[str, float]] = {}
    for config_key, group in finished.groupby("config_key"):
        runs = [e for e in (load_encodings(store, r) for r in group.sort_values("seed")["run_id"]) if e is not None]
        if len(runs) < 2 or config_key not in config_runs:
            continue
        metrics, artifacts = evaluate_configuration(runs)
        results[config_key] = crossrun_summaries(metrics)
        run_id = config_runs[config_key]
        store.log_metrics(run_id, results[config_key])
        for name, data in artifacts.items():
            store.log_artifact_bytes(run_id, f"xrun/{name.rsplit('/', 1)[-1]}", data)

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
