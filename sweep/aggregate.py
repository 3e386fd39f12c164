"""Aggregation, in one place: a configuration's trial runs -> its summaries (mean, std, ci95, n per metric), flags
(unconverged and outlier seeds) and counts, logged on the configuration's own MLflow run.

The run tree is sweep -> configuration -> seed (trial). A configuration run carries each trial metric M as its mean
under M itself (so MLflow's table sorts configurations by it) and M_std, M_ci95, M_n beside it. Summaries are logged
at step = the number of settled trials (finished or failed), so when two seeds finish at once the fuller summary wins.
"""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor

import pandas as pd

from evaluators import names
from evaluators.metric_memorisation import COPYING_THRESHOLD
from evaluators.metric_uncertainty import outlier_mask, summarize
from sweep.tracking import Store, is_local_store

GROUP_COLUMNS = [names.P_METHOD, names.P_TARGET, names.P_LAMBDA, names.P_MU, names.P_LATENT_DIM]
# the per-trial finals that configurations are compared on (per-epoch series stay on the trial runs)
FINAL_PREFIXES = (
    "eval/", "search/", names.CONTROL_FINAL_LAMBDA, names.CONTROL_ABS_ERROR,
    names.TRAIN_CONVERGED, names.TRAIN_REL_IMPROVEMENT_TAIL,
)
HIDDEN_METRICS = ("epoch", "done")
PROVENANCE = "gen_provenance"  # a trial frame's column (JSON), and the leaderboard's
SUFFIX_STD, SUFFIX_CI95, SUFFIX_N = "_std", "_ci95", "_n"
SUFFIXES = (SUFFIX_STD, SUFFIX_CI95, SUFFIX_N)
FINISHED, FAILED, RUNNING = "FINISHED", "FAILED", "RUNNING"
SERVER_THREADS = 8  # configurations summarised at once against a tracking server


def is_summary_key(key: str) -> bool:
    """A configuration-run metric that is a mean (not a std/ci95/n beside one, nor a seed count)."""
    return not key.endswith(SUFFIXES) and not key.startswith(names.SEEDS_PREFIX)


def trial_frame(store: Store, sweep_id: str, config_key: str | None = None) -> pd.DataFrame:
    """One row per trial run (of one configuration, if given): params, status, failure reason, final metrics."""
    rows = []
    for run in store.trial_runs(sweep_id, config_key):
        p, m, t = run.data.params, run.data.metrics, run.data.tags
        p = {**p, **evaluated_params(t)}  # `esweep evaluate` wrote newer generation metrics: their provenance
        row = {
            "config_key": t.get(names.T_CONFIG_KEY, ""),
            **{k: p.get(k, "-") for k in GROUP_COLUMNS},
            names.P_SEED: p.get(names.P_SEED, "-"),
            names.P_DATASET: p.get(names.P_DATASET, ""),
            names.P_RECON: p.get(names.P_RECON, "sum"),  # runs from before the recon param trained in per-image sums
            "status": run.info.status,
            "failure": t.get(names.T_FAILURE, ""),
            "run_id": run.info.run_id,
            "artifact_uri": run.info.artifact_uri,
            "start_time": run.info.start_time,
            "fid_samples": p.get(names.P_FID_SAMPLES, ""),
            PROVENANCE: provenance_of(p),
        }
        row.update({k: v for k, v in m.items() if k.startswith(FINAL_PREFIXES) and k not in HIDDEN_METRICS})
        rows.append(row)
    return pd.DataFrame(rows)


def is_provenance_param(key: str) -> bool:
    """A param that says how generation metrics were computed (names.PROVENANCE_PARAMS, also per feature space)."""
    return key in names.PROVENANCE_PARAMS or ("." in key and key.split(".", 1)[1] in names.PROVENANCE_PARAMS)


def evaluated_params(tags: dict[str, str]) -> dict[str, str]:
    """The provenance params of a seed run's latest `esweep evaluate` (tag T_EVAL_PROVENANCE), {} where none."""
    raw = tags.get(names.T_EVAL_PROVENANCE)
    if not raw:
        return {}
    try:
        found = json.loads(raw).get("params", {})
    except (ValueError, AttributeError):
        return {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def provenance_of(params: dict[str, str]) -> str:
    """A trial's generation-metric provenance as canonical JSON (its PROVENANCE_PARAMS), '' without FID."""
    if names.P_FID_EXTRACTOR not in params:
        return ""
    # with the provenance of each further feature space ('<extractor>.fid_reference', ...)
    further = {k: v for k, v in params.items() if "." in k and is_provenance_param(k)}
    return json.dumps({**{k: params.get(k) for k in names.PROVENANCE_PARAMS}, **further}, sort_keys=True)


def configuration_provenance(values) -> str:
    """The seeds' common provenance, or 'mixed: [...]' listing each one where they differ; '' where none has one."""
    found = sorted({v for v in values if isinstance(v, str) and v})
    if len(found) <= 1:
        return found[0] if found else ""
    return "mixed: " + json.dumps([json.loads(v) for v in found], sort_keys=True)


def metric_columns(trials: pd.DataFrame) -> list[str]:
    return sorted(c for c in trials.columns if c.startswith(FINAL_PREFIXES) and not c.endswith(SUFFIXES))


def summary_metrics(prefix_key: str, values) -> dict[str, float]:
    """M, M_std, M_ci95, M_n for the finite ``values`` (undefined entries left out, never logged as 0)."""
    s = summarize(values)
    out = {f"{prefix_key}{SUFFIX_N}": float(s.n)}
    for key, value in ((prefix_key, s.mean), (prefix_key + SUFFIX_STD, s.std), (prefix_key + SUFFIX_CI95, s.ci95)):
        if not math.isnan(value):
            out[key] = value
    return out


def _seed_list(seeds) -> str:
    return ", ".join(f"s{s}" for s in seeds)


def summarize_configuration(group: pd.DataFrame) -> tuple[dict[str, float], dict[str, str]]:
    """A configuration's trials -> (metrics, tags) for its configuration run.

    Metrics summarise the finished seeds; seeds that did not converge or are outliers (recon MSE above twice the
    configuration's median) stay in the mean, and are counted and named in the flags tag so no reader misses them.
    """
    ok = group[group["status"] == FINISHED].sort_values(names.P_SEED)
    metrics: dict[str, float] = {
        names.SEEDS_FINISHED: float(len(ok)),
        names.SEEDS_FAILED: float((group["status"] == FAILED).sum()),
        names.SEEDS_RUNNING: float((group["status"] == RUNNING).sum()),
    }
    for col in metric_columns(group):
        metrics.update(summary_metrics(col, ok[col] if col in ok else []))
    flags = []
    if names.TRAIN_CONVERGED in ok:
        unconverged = ok.loc[ok[names.TRAIN_CONVERGED] == 0, names.P_SEED].tolist()
        metrics[names.SEEDS_UNCONVERGED] = float(len(unconverged))
        if unconverged:
            flags.append(f"unconverged {_seed_list(unconverged)}")
    if names.EVAL_RECON_MSE in ok:
        recon = ok[names.EVAL_RECON_MSE].tolist()
        mask = outlier_mask(recon)
        median = float(pd.Series(recon).median())
        outliers = [f"s{s} (recon {r / median:.1f}x median)" for s, r, m in zip(ok[names.P_SEED], recon, mask, strict=True) if m]
        metrics[names.SEEDS_OUTLIERS] = float(len(outliers))
        if outliers:
            flags.append(f"outlier {', '.join(outliers)}")
    flags += copying_flags(ok)
    reasons = sorted({r for r in group.loc[group["status"] == FAILED, "failure"] if r})
    tags = {names.T_FLAGS: "; ".join(flags), names.T_FAILURE: "; ".join(reasons)[:4000]}
    if PROVENANCE in ok and (provenance := configuration_provenance(ok[PROVENANCE])):
        tags[names.T_GEN_PROVENANCE] = provenance
    return metrics, tags


def copying_flags(ok: pd.DataFrame) -> list[str]:
    """'data-copying <sampler>: s0 (C_T -9.1), ...' per sampler whose C_T is below COPYING_THRESHOLD in any seed."""
    flags = []
    for col in sorted(c for c in ok.columns if c.startswith(names.EVAL_CT_PREFIX)):
        hits = [f"s{s} (C_T {v:.1f})" for s, v in zip(ok[names.P_SEED], ok[col], strict=True) if v < COPYING_THRESHOLD]
        if hits:
            flags.append(f"data-copying {col.removeprefix(names.EVAL_CT_PREFIX)}: {', '.join(hits)}")
    return flags


def settled(group: pd.DataFrame) -> int:
    return int(group["status"].isin([FINISHED, FAILED]).sum())


def log_configuration(store: Store, config_run_id: str, group: pd.DataFrame) -> None:
    metrics, tags = summarize_configuration(group)
    store.log_summary(config_run_id, metrics, tags, step=settled(group))


def refresh_configuration(store: Store, sweep_id: str, config_key: str, config_run_id: str) -> None:
    """Re-summarise one configuration from its trial runs (called as each of its seeds settles)."""
    trials = trial_frame(store, sweep_id, config_key)
    if not trials.empty:
        log_configuration(store, config_run_id, trials)


def refresh_sweep(store: Store, sweep_id: str, finish: bool = False) -> dict[str, str]:
    """Re-summarise every configuration of a sweep from one read of its trial runs; returns config key -> run id.

    ``finish`` closes each configuration run (FINISHED when any seed finished, else FAILED) once no seed runs. The
    sweep's leaderboard snapshot is marked stale first: it is written again when the sweep's results are published."""
    sweep_run = store.sweep_run(sweep_id)
    if sweep_run is not None:
        store.set_tags(sweep_run.info.run_id, {names.T_BOARD_STAMP: names.BOARD_STALE})
    trials = trial_frame(store, sweep_id)
    config_runs = {r.data.tags.get(names.T_CONFIG_KEY): r for r in store.config_runs(sweep_id)}
    if trials.empty:
        return {k: r.info.run_id for k, r in config_runs.items()}

    def refresh(key_group) -> None:
        key, group = key_group
        run = config_runs.get(key)
        if run is None:
            return
        log_configuration(store, run.info.run_id, group)
        if finish and not (group["status"] == RUNNING).any():
            store.finish(run.info.run_id, FINISHED if (group["status"] == FINISHED).any() else FAILED)

    # a server answers requests side by side (~25 ms each, 2 per configuration); a local file has one writer
    with ThreadPoolExecutor(1 if is_local_store(store.uri) else SERVER_THREADS) as pool:
        list(pool.map(refresh, trials.groupby("config_key", sort=False)))
    return {k: r.info.run_id for k, r in config_runs.items()}
