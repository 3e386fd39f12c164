"""The leaderboard: one row per configuration, mean +- std over seeds, read from MLflow alone."""

from __future__ import annotations

import json
import math

import pandas as pd

from evaluators import names
from sweep.analysis import config_slug, split_xrun_metric_key
from sweep.tracking import Store

FINAL_PREFIXES = ("eval/", "search/", names.CONTROL_FINAL_LAMBDA, names.CONTROL_ABS_ERROR)
GROUP_COLUMNS = [names.P_METHOD, names.P_TARGET, names.P_LAMBDA, names.P_MU, names.P_LATENT_DIM]
FORMATS = ("table", "csv", "markdown", "json")
HIDDEN_METRICS = ("epoch", "done", names.EVAL_WALL_TIME)
DISPLAY_METRICS = (
    names.EVAL_ECCENTRICITY,
    names.EVAL_RECON_MSE,
    names.XRUN_ANGLE_RAW,
    names.XRUN_ANGLE_ALIGNED,
    names.CONTROL_FINAL_LAMBDA,
    names.CONTROL_ABS_ERROR,
)


def _display_order(metric: str) -> tuple[int, str]:
    prefixes = ("eval/ecc", "control/", "eval/recon", "eval/fid", "eval/knn", "xrun/")
    return next((i for i, p in enumerate(prefixes) if metric.startswith(p)), len(prefixes)), metric


class LeaderboardError(ValueError):
    pass


def trial_frame(store: Store, sweep_id: str) -> pd.DataFrame:
    """One row per trial run: its params, status, failure reason and final metrics."""
    rows = []
    for run in store.trial_runs(sweep_id):
        p, m, t = run.data.params, run.data.metrics, run.data.tags
        row = {
            "config_key": t.get("esweep.config_key", ""),
            **{k: p.get(k, "-") for k in GROUP_COLUMNS},
            names.P_SEED: p.get(names.P_SEED, "-"),
            "status": run.info.status,
            "failure": t.get(names.T_FAILURE, ""),
            "run_id": run.info.run_id,
            "start_time": run.info.start_time,
        }
        row["fid_samples"] = p.get(names.P_FID_SAMPLES, "")
        row.update({k: v for k, v in m.items() if k.startswith(FINAL_PREFIXES) and k not in HIDDEN_METRICS})
        row[names.EVAL_WALL_TIME] = m.get(names.EVAL_WALL_TIME, math.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def _lambda_sort_key(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return -1.0


def aggregate(trials: pd.DataFrame) -> pd.DataFrame:
    """Configurations as rows; for every metric a ``_mean`` and ``_std`` column over finished seeds."""
    if trials.empty:
        return trials
    metric_cols = sorted(c for c in trials.columns if c.startswith(FINAL_PREFIXES))
    out = []
    for key, group in trials.groupby(GROUP_COLUMNS, sort=False):
        ok = group[group["status"] == "FINISHED"]
        row = dict(zip(GROUP_COLUMNS, key, strict=True))
        row["config_key"] = group["config_key"].iloc[0]
        row["fid_samples"] = group["fid_samples"].iloc[0]
        row["seeds"] = len(ok)
        row["failed"] = int((group["status"] == "FAILED").sum())
        row["running"] = int((group["status"] == "RUNNING").sum())
        for col in metric_cols:
            values = ok[col].dropna() if col in ok else pd.Series(dtype=float)
            row[f"{col}_mean"] = float(values.mean()) if len(values) else math.nan
            row[f"{col}_std"] = float(values.std(ddof=1)) if len(values) > 1 else (0.0 if len(values) else math.nan)
        reasons = group.loc[group["status"] == "FAILED", "failure"]
        row["failure"] = "; ".join(sorted(set(r for r in reasons if r)))[:200]
        out.append(row)
    frame = pd.DataFrame(out)
    frame["_lam"] = frame[names.P_LAMBDA].map(_lambda_sort_key)
    frame["_d"] = frame[names.P_LATENT_DIM].map(lambda v: int(v) if str(v).isdigit() else 0)
    frame = frame.sort_values([names.P_METHOD, names.P_TARGET, "_lam", names.P_MU, "_d"]).drop(columns=["_lam", "_d"])
    return frame.reset_index(drop=True)


def metric_names(board: pd.DataFrame) -> list[str]:
    return [c.removesuffix("_mean") for c in board.columns if c.endswith("_mean")]


def sort_board(board: pd.DataFrame, metric: str | None, descending: bool = False) -> pd.DataFrame:
    if metric is None or board.empty:
        return board
    available = metric_names(board)
    key = metric if metric in available else f"eval/{metric}"
    if key not in available:
        raise LeaderboardError(f"--sort: unknown metric {metric!r}; available: {', '.join(available)}")
    return board.sort_values(f"{key}_mean", ascending=not descending, na_position="last").reset_index(drop=True)


def _pm(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "-"
    return f"{mean:.4g} ± {std:.2g}"


def _shown(metric: str) -> bool:
    return (
        metric in DISPLAY_METRICS
        or metric.startswith(names.EVAL_FID_PREFIX)
        or metric == f"{names.EVAL_KNN_ERROR_PREFIX}all"
    )


def display_frame(board: pd.DataFrame) -> pd.DataFrame:
    """Human-readable: the headline metrics as 'mean ± std', short names; exports keep every column."""
    cols = GROUP_COLUMNS + ["seeds", "failed"]
    shown = board[cols].copy()
    fid_n = board["fid_samples"].iloc[0] if "fid_samples" in board and len(board) else ""
    for metric in sorted(filter(_shown, metric_names(board)), key=_display_order):
        label = metric.removeprefix("eval/").replace("knn_error_pct/all", "knn_err%")
        if metric.startswith(names.EVAL_FID_PREFIX) and fid_n:
            label = f"{label} (n={fid_n})"
        shown[label] = [
            _pm(m, s) for m, s in zip(board[f"{metric}_mean"], board[f"{metric}_std"], strict=True)
        ]
    if board["failure"].astype(bool).any():
        shown["failure"] = board["failure"]
    return shown


def render(board: pd.DataFrame, fmt: str) -> str:
    if fmt not in FORMATS:
        raise LeaderboardError(f"--format: unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "csv":
        return board.to_csv(index=False)
    if fmt == "json":
        return json.dumps(json.loads(board.to_json(orient="records")), indent=1)
    shown = display_frame(board)
    if fmt == "markdown":
        header = "| " + " | ".join(shown.columns) + " |"
        sep = "|" + "---|" * len(shown.columns)
        body = ["| " + " | ".join(str(v) for v in row) + " |" for row in shown.itertuples(index=False)]
        return "\n".join([header, sep, *body])
    return shown.to_string(index=False)


def attach_crossrun(board: pd.DataFrame, parent_metrics: dict[str, float]) -> pd.DataFrame:
    """Cross-run metrics live on the sweep's parent run, one per configuration: join them as columns."""
    if board.empty:
        return board
    slugs = {config_slug(k): i for i, k in enumerate(board["config_key"])}
    columns: dict[str, list[float]] = {}
    for key, value in parent_metrics.items():
        parsed = split_xrun_metric_key(key)
        if parsed is None or parsed[1] not in slugs:
            continue
        metric, slug = parsed
        column = f"{metric.removesuffix('_std')}_std" if metric.endswith("_std") else f"{metric}_mean"
        columns.setdefault(column, [math.nan] * len(board))[slugs[slug]] = value
    for column, values in sorted(columns.items()):
        board[column] = values
    return board


def leaderboard(store: Store, sweep: str | None) -> tuple[str, pd.DataFrame]:
    run = store.sweep_run(sweep) if sweep else store.latest_sweep_run()
    if run is None:
        raise LeaderboardError(f"no sweep {sweep!r} in {store.uri}" if sweep else f"no sweeps in {store.uri}")
    sweep_id = run.data.tags[names.T_SWEEP_ID]
    return sweep_id, attach_crossrun(aggregate(trial_frame(store, sweep_id)), run.data.metrics)
