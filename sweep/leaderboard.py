"""The leaderboard: one row per configuration run of a sweep, read from MLflow alone (what the MLflow UI shows too).

Every cell is a summary over seeds (mean ± Student-t 95% half-width, with n); per metric, each configuration is
marked as the best, statistically tied with it (Welch's t-test at 5%), worse, or untested (fewer than 2 seeds).
"""

from __future__ import annotations

import json
import math

import pandas as pd

from evaluators import names
from evaluators.metric_fid_bias import FID_FEATURE_DIM, PRDC_MIN_SAMPLES, is_small_knn_sample, is_small_sample
from evaluators.metric_uncertainty import Summary, compare_to_best, format_summary
from sweep.aggregate import GROUP_COLUMNS, PROVENANCE, SUFFIX_CI95, SUFFIX_N, SUFFIX_STD, is_summary_key
from sweep.tracking import Store

FORMATS = ("table", "csv", "markdown", "json")
STATS = ("mean", "std", "ci95", "n")
DISPLAY_METRICS = (
    names.EVAL_ECCENTRICITY,
    names.EVAL_ECCENTRICITY_DEBIASED,
    names.EVAL_RECON_MSE,
    names.XRUN_ANGLE_RAW,
    names.XRUN_ANGLE_ALIGNED,
    names.CONTROL_FINAL_LAMBDA,
    names.CONTROL_ABS_ERROR,
)
HIDDEN_PREFIXES = (names.EVAL_WALL_TIME, names.EVAL_SAMPLER_TIME_PREFIX, names.TRAIN_CONVERGED, names.TRAIN_REL_IMPROVEMENT_TAIL)
COUNT_COLUMNS = {
    "seeds": names.SEEDS_FINISHED,
    "failed": names.SEEDS_FAILED,
    "running": names.SEEDS_RUNNING,
    "unconverged": names.SEEDS_UNCONVERGED,
    "outliers": names.SEEDS_OUTLIERS,
}


class LeaderboardError(ValueError):
    pass


def metric_mode(metric: str) -> str | None:
    """Which way is better for a metric ('min' or 'max'), or None where neither is (eccentricity, lambda, ...)."""
    if "_std/" in metric or metric.startswith((names.EVAL_FID_N_PREFIX, names.EVAL_PRDC_N_PREFIX)):
        return None
    # density has no direction: above 1 the samples crowd the data's dense regions (Naeem et al. 2020)
    if metric.startswith((names.EVAL_PRECISION_PREFIX, names.EVAL_RECALL_PREFIX, names.EVAL_F_SCORE_PREFIX,
                          names.EVAL_COVERAGE_PREFIX)):
        return "max"
    if metric.startswith(("eval/fid", "eval/kid", "eval/recon", "eval/knn_error", "eval/attr/", "xrun/angle", "xrun/rms",
                          names.CONTROL_ABS_ERROR, "search/objective")):
        return "min"
    if metric.startswith("xrun/cosine"):
        return "max"
    return None


def display_order(metric: str) -> tuple[int, str]:
    prefixes = ("eval/ecc", "control/", "eval/recon", "eval/fid", "eval/kid", *names.PRDC_PREFIXES, "eval/knn", "xrun/")
    return next((i for i, p in enumerate(prefixes) if metric.startswith(p)), len(prefixes)), metric


def _lambda_sort_key(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return -1.0


def config_frame(store: Store, sweep_id: str) -> pd.DataFrame:
    """One row per configuration run: params, seed counts, flags, and M_mean/M_std/M_ci95/M_n per metric M."""
    rows = []
    for run in store.config_runs(sweep_id):
        p, m, t = run.data.params, run.data.metrics, run.data.tags
        row: dict = {
            "config_key": t.get(names.T_CONFIG_KEY, ""),
            **{k: p.get(k, "-") for k in GROUP_COLUMNS},
            names.P_DATASET: p.get(names.P_DATASET, ""),
            names.P_RECON: p.get(names.P_RECON, "sum"),  # runs from before the recon param trained in per-image sums
            "fid_samples": p.get(names.P_FID_SAMPLES, ""),
            "run_id": run.info.run_id,
            "status": run.info.status,
            **{col: int(m.get(key, 0)) for col, key in COUNT_COLUMNS.items()},
            "flags": t.get(names.T_FLAGS, ""),
            "failure": t.get(names.T_FAILURE, ""),
            PROVENANCE: t.get(names.T_GEN_PROVENANCE, ""),
        }
        bases = {k for k in m if is_summary_key(k)} | {k.removesuffix(SUFFIX_N) for k in m if k.endswith(SUFFIX_N)}
        for base in bases:
            row[f"{base}_mean"] = m.get(base, math.nan)
            row[f"{base}_std"] = m.get(base + SUFFIX_STD, math.nan)
            row[f"{base}_ci95"] = m.get(base + SUFFIX_CI95, math.nan)
            row[f"{base}_n"] = m.get(base + SUFFIX_N, 0.0)
        rows.append(row)
    if not rows:
        return pd.DataFrame(rows)
    frame = pd.DataFrame(rows)
    n_cols = [f"{m}_n" for m in metric_names(frame)]
    frame[n_cols] = frame[n_cols].fillna(0.0)  # a configuration without a metric has it from no seed
    frame["_lam"] = frame[names.P_LAMBDA].map(_lambda_sort_key)
    frame["_d"] = frame[names.P_LATENT_DIM].map(lambda v: int(v) if str(v).isdigit() else 0)
    frame = frame.sort_values([names.P_METHOD, names.P_TARGET, "_lam", names.P_MU, "_d"]).drop(columns=["_lam", "_d"])
    return mark_best(frame.reset_index(drop=True))


def metric_names(board: pd.DataFrame) -> list[str]:
    return sorted(c.removesuffix("_mean") for c in board.columns if c.endswith("_mean"))


def summaries(board: pd.DataFrame, metric: str) -> list[Summary]:
    return [
        Summary(float(m), float(s), float(c), int(n))
        for m, s, c, n in zip(*(board[f"{metric}_{k}"] for k in STATS), strict=True)
    ]


def mark_best(board: pd.DataFrame, overrides: dict[str, str] | None = None) -> pd.DataFrame:
    """For every metric with a direction (or one given in ``overrides``): M_vs_best and M_p_vs_best columns."""
    for metric in metric_names(board):
        mode = (overrides or {}).get(metric) or metric_mode(metric)
        if mode is None:
            continue
        verdicts = compare_to_best(summaries(board, metric), mode)
        board[f"{metric}_vs_best"] = [v for v, _ in verdicts]
        board[f"{metric}_p_vs_best"] = [p for _, p in verdicts]
    return board


def resolve_metric(board: pd.DataFrame, metric: str) -> str:
    available = metric_names(board)
    for key in (metric, f"eval/{metric}"):
        if key in available:
            return key
    raise LeaderboardError(f"--sort: unknown metric {metric!r}; available: {', '.join(available)}")


def sort_board(board: pd.DataFrame, metric: str | None, descending: bool = False) -> pd.DataFrame:
    """Sorted by a metric's mean; its best/tie marks follow the chosen direction (descending: higher is better)."""
    if metric is None or board.empty:
        return board
    key = resolve_metric(board, metric)
    board = mark_best(board.copy(), {key: "max" if descending else "min"})
    board.attrs["sort_metric"] = key
    return board.sort_values(f"{key}_mean", ascending=not descending, na_position="last").reset_index(drop=True)


SHOWN_PRDC_PREFIXES = (names.EVAL_PRECISION_PREFIX, names.EVAL_RECALL_PREFIX, names.EVAL_DENSITY_PREFIX,
                       names.EVAL_COVERAGE_PREFIX)  # the F-score is in the exports: it follows from the two before


def _shown(metric: str) -> bool:
    return (
        metric in DISPLAY_METRICS
        or metric.startswith((names.EVAL_FID_PREFIX, names.EVAL_KID_PREFIX, names.EVAL_FID_INF_PREFIX))
        or metric.startswith(SHOWN_PRDC_PREFIXES)
        or metric == f"{names.EVAL_KNN_ERROR_PREFIX}all"
    )


def fid_n(board: pd.DataFrame, metric: str) -> int | None:
    """Generated images behind an FID/KID column (its smallest over configurations), where recorded."""
    sampler = metric.rsplit("/", 1)[-1]
    col = f"{names.eval_fid_n(sampler)}_mean"
    if col in board and board[col].notna().any():
        return int(board[col].min())
    values = [int(v) for v in board.get("fid_samples", []) if str(v).isdigit()]
    return min(values) if values else None


def prdc_n(board: pd.DataFrame, metric: str) -> int | None:
    """Points on the smaller side behind a precision/recall/density/coverage column (its smallest over
    configurations), where recorded."""
    col = f"{names.eval_prdc_n(metric.rsplit('/', 1)[-1])}_mean"
    if col in board and board[col].notna().any():
        return int(board[col].min())
    return None


def is_prdc_metric(metric: str) -> bool:
    return metric.startswith(names.PRDC_PREFIXES)


def column_label(board: pd.DataFrame, metric: str) -> str:
    label = metric.removeprefix("eval/").replace("knn_error_pct/all", "knn_err%")
    if is_prdc_metric(metric):
        n = prdc_n(board, metric)
        if n is not None:
            small = is_small_knn_sample(n)
            label += f" [n={n}{f' < {PRDC_MIN_SAMPLES}: small-sample' if small else ''}]"
        return label
    if metric.startswith((names.EVAL_FID_PREFIX, names.EVAL_KID_PREFIX, names.EVAL_FID_INF_PREFIX)):
        n = fid_n(board, metric)
        if n is not None:
            small = metric.startswith(names.EVAL_FID_PREFIX) and is_small_sample(n)
            label += f" [{n} imgs{f' < {FID_FEATURE_DIM}: small-sample, biased up' if small else ''}]"
    return label


def _verdict(verdict: str, p: float) -> str:
    if verdict in ("best", "untested"):
        return verdict if verdict == "best" else "untested (n<2)"
    return f"{verdict} (p={p:.2g})"


def _pareto_cell(row, metrics: list[str]) -> str:
    if row["pareto"] == names.PARETO_DOMINATED:
        return f"dominated by {row['pareto_by']} ({row['pareto_metric'].removeprefix('eval/')} q={row['pareto_q']:.2g})"
    if row["pareto"] == names.PARETO_FRONT and any(row[f"{m}_n"] < 2 for m in metrics):
        return f"{names.PARETO_FRONT} (untested: n<2)"  # no test can show it dominated
    return row["pareto"]


def display_frame(board: pd.DataFrame, vs_best: str | None = None) -> pd.DataFrame:
    """Human-readable: 'mean ± ci95' cells (n in the cell where it differs from the row's seeds), a 'vs best'
    column for ``vs_best`` (default: the sort metric), flags; the exports keep every column."""
    if board.empty:
        return board
    shown = board[GROUP_COLUMNS].copy()
    shown["n"] = board["seeds"]
    if board["failed"].any():
        shown["failed"] = board["failed"]
    for metric in sorted(filter(_shown, metric_names(board)), key=display_order):
        cells = []
        for s, seeds in zip(summaries(board, metric), board["seeds"], strict=True):
            cells.append(format_summary(s, show_n=s.n not in (0, seeds)))
        shown[column_label(board, metric)] = cells
    metric = vs_best or board.attrs.get("sort_metric")
    if metric and f"{metric}_vs_best" in board:
        shown[f"vs best {metric.removeprefix('eval/')}"] = [
            _verdict(v, p) for v, p in zip(board[f"{metric}_vs_best"], board[f"{metric}_p_vs_best"], strict=True)
        ]
    if "pareto" in board:
        shown["pareto"] = [_pareto_cell(row, board.attrs.get("pareto_metrics", [])) for _, row in board.iterrows()]
    if board["flags"].astype(bool).any():
        shown["flags"] = board["flags"]
    if board["failure"].astype(bool).any():
        shown["failure"] = board["failure"].str.slice(0, 120)
    return shown


def default_vs_best(board: pd.DataFrame) -> str | None:
    """The metric a plain leaderboard judges 'best' by: standard-sampling FID where there is one, KID in its place
    where that FID is small-sample (KID is unbiased at any n), else recon MSE."""
    fid, kid = names.eval_fid("standard"), names.eval_kid("standard")
    candidates = [fid, names.EVAL_RECON_MSE]
    n = fid_n(board, fid) if f"{fid}_mean" in board else None
    if n is not None and is_small_sample(n):
        candidates.insert(0, kid)
    for metric in candidates:
        if f"{metric}_vs_best" in board:
            return metric
    return None


def records(board: pd.DataFrame) -> list[dict]:
    """JSON rows: the configuration, its counts and flags, and per metric mean/std/ci95/n and the best/tie mark."""
    out = []
    for _, row in board.iterrows():
        rec = {k: row[k] for k in ["config_key", *GROUP_COLUMNS, names.P_DATASET, "run_id", *COUNT_COLUMNS, "flags", "failure"]}
        rec[names.P_RECON] = row.get(names.P_RECON, "-")
        metrics = {}
        for metric in metric_names(board):
            entry = {k: row[f"{metric}_{k}"] for k in STATS}
            entry["n"] = int(entry["n"]) if not pd.isna(entry["n"]) else 0
            if f"{metric}_vs_best" in board:
                entry["vs_best"] = row[f"{metric}_vs_best"]
                entry["p_vs_best"] = row[f"{metric}_p_vs_best"]
            if metric.startswith(names.EVAL_FID_PREFIX):
                n = fid_n(board, metric)
                entry["small_sample"] = n is not None and is_small_sample(n)
            elif is_prdc_metric(metric):
                n = prdc_n(board, metric)
                entry["small_sample"] = n is not None and is_small_knn_sample(n)
            metrics[metric] = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in entry.items()}
        rec["metrics"] = metrics
        if "pareto" in board:
            rec["pareto"] = {
                "mark": row["pareto"], "dominated_by": row["pareto_by"] or None, "decided_by": row["pareto_metric"] or None,
                "q": None if math.isnan(row["pareto_q"]) else float(row["pareto_q"]),
            }
        rec["provenance"] = provenance_record(row.get(PROVENANCE, ""))
        out.append({k: (int(v) if hasattr(v, "item") and isinstance(v.item(), int) else v) for k, v in rec.items()})
    return out


def provenance_record(value) -> dict | list | None:
    """A configuration's generation-metric provenance for the JSON export: the params its seeds' FID, KID,
    precision/recall, density/coverage and C_T were computed under; a list of them where its seeds differ; None
    where not recorded."""
    if not isinstance(value, str) or not value:
        return None
    return json.loads(value.removeprefix("mixed: "))


def render(board: pd.DataFrame, fmt: str, vs_best: str | None = None) -> str:
    if fmt not in FORMATS:
        raise LeaderboardError(f"--format: unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "csv":
        return board.to_csv(index=False)
    if fmt == "json":
        return json.dumps(records(board), indent=1, default=str)
    shown = display_frame(board, vs_best)
    if fmt == "markdown":
        return markdown_table(shown)
    return shown.to_string(index=False)


def markdown_table(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    sep = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, sep, *body])


LEGEND = (
    "cells: mean ± 95% CI half-width over seeds (Student t); n = finished seeds; one value: no ±. "
    "vs best: Welch's t-test at 5% against the best mean (tie = indistinguishable)."
)


def leaderboard(store: Store, sweep: str | None, fresh: bool = False) -> tuple[str, pd.DataFrame]:
    """A sweep's configuration frame: from its snapshot when the sweep finished and nothing re-summarised it since
    (one file), else (or with ``fresh``) from every configuration run. Both give the same frame."""
    run = store.sweep_run(sweep) if sweep else store.latest_sweep_run()
    if run is None:
        raise LeaderboardError(f"no sweep {sweep!r} in {store.uri}" if sweep else f"no sweeps in {store.uri}")
    sweep_id = run.data.tags[names.T_SWEEP_ID]
    board = None if fresh else read_snapshot(store, run)
    return sweep_id, config_frame(store, sweep_id) if board is None else board


def snapshot_bytes(board: pd.DataFrame, stamp: str) -> bytes:
    """The frame with its dtypes, exactly (floats as repr, NaN kept), under ``stamp``."""
    payload = {
        "stamp": stamp,
        "columns": [str(c) for c in board.columns],
        "dtypes": {str(c): str(t) for c, t in board.dtypes.items()},
        "data": board.astype(object).to_numpy().tolist(),
    }
    return json.dumps(payload, default=lambda o: o.item() if hasattr(o, "item") else str(o)).encode()


def board_from_snapshot(data: bytes, stamp: str) -> pd.DataFrame | None:
    """The frame saved by ``snapshot_bytes``, or None when it was saved under another stamp."""
    payload = json.loads(data)
    if payload.get("stamp") != stamp:
        return None
    frame = pd.DataFrame(payload["data"], columns=payload["columns"])
    return frame.astype(payload["dtypes"]) if len(frame.columns) else frame


def read_snapshot(store: Store, run) -> pd.DataFrame | None:
    """The finished sweep's snapshot if its stamp is current; None (read every run instead) on anything else."""
    stamp = run.data.tags.get(names.T_BOARD_STAMP, names.BOARD_STALE)
    if run.info.status != "FINISHED" or stamp == names.BOARD_STALE:
        return None
    try:
        return board_from_snapshot(store.read_artifact_bytes(run.info.run_id, names.ARTIFACT_BOARD_SNAPSHOT), stamp)
    except Exception:  # missing or unreadable: the configuration runs are the truth
        return None
