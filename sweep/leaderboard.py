"""The leaderboard: one row per configuration, mean +- std over seeds, read from MLflow alone."""

from __future__ import annotations

import json
import math

import pandas as pd

from evaluators import names
from sweep.tracking import Store

GROUP_COLUMNS = [names.P_METHOD, names.P_LAMBDA, names.P_MU, names.P_LATENT_DIM]
FORMATS = ("table", "csv", "markdown", "json")
HIDDEN_METRICS = ("epoch", "done", names.EVAL_WALL_TIME)


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
        }
        row.update({k: v for k, v in m.items() if k.startswith("eval/") and k not in HIDDEN_METRICS})
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
    metric_cols = sorted(c for c in trials.columns if c.startswith("eval/"))
    out = []
    for key, group in trials.groupby(GROUP_COLUMNS, sort=False):
        ok = group[group["status"] == "FINISHED"]
        row = dict(zip(GROUP_COLUMNS, key, strict=True))
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
    frame = frame.sort_values([names.P_METHOD, "_lam", names.P_MU, "_d"]).drop(columns=["_lam", "_d"])
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


def display_frame(board: pd.DataFrame) -> pd.DataFrame:
    """Human-readable: 'mean ± std' per metric, short metric names."""
    cols = GROUP_COLUMNS + ["seeds", "failed"]
    shown = board[cols].copy()
    for metric in metric_names(board):
        if metric == names.EVAL_WALL_TIME:
            continue
        shown[metric.removeprefix("eval/")] = [
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


def leaderboard(store: Store, sweep: str | None) -> tuple[str, pd.DataFrame]:
    run = store.sweep_run(sweep) if sweep else store.latest_sweep_run()
    if run is None:
        raise LeaderboardError(f"no sweep {sweep!r} in {store.uri}" if sweep else f"no sweeps in {store.uri}")
    sweep_id = run.data.tags[names.T_SWEEP_ID]
    return sweep_id, aggregate(trial_frame(store, sweep_id))
