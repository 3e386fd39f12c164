"""The trade-off, seen: a sweep's Pareto front with uncertainty, its parameter importance and parallel coordinates,
from the leaderboard's configuration frame and the trial runs; shown by `esweep leaderboard --pareto/--importance`,
in the report, and published onto the sweep run (plots, pareto.json) and its configuration runs (tag esweep.pareto).
"""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from evaluators import names
from evaluators.metric_pareto import pareto_marks
from evaluators.metric_uncertainty import TIE_ALPHA
from sweep import leaderboard as lb
from sweep.aggregate import GROUP_COLUMNS, SERVER_THREADS
from sweep.importance import LOG_LAMBDA, Importance, ImportanceError, encode_params, importance
from sweep.tracking import Store, is_local_store

MIN_METRICS, MAX_METRICS = 2, 3
TEST = (f"Welch's t-test on every metric where one configuration's mean is better on all; Benjamini-Hochberg over "
        f"every (pair, metric) test made; dominated: q < {TIE_ALPHA:g} on at least one")
LEGEND = f"pareto: front, or dominated by a configuration better on every metric by mean ({TEST})."


def pareto_metrics(board: pd.DataFrame, requested: str | None) -> list[str]:
    """The metrics of the front: ``requested`` (2 or 3 comma-separated names, 'eval/' optional, each with a
    direction), else recon MSE against the generation metric the leaderboard judges by (FID, or KID where FID is
    small-sample)."""
    if not requested:
        judged = lb.default_vs_best(board)
        if judged in (None, names.EVAL_RECON_MSE) or f"{names.EVAL_RECON_MSE}_mean" not in board:
            raise lb.LeaderboardError(
                "--pareto: this sweep has no generation metric (FID or KID) to set against recon MSE; name 2 or 3 "
                f"metrics, e.g. --pareto recon_mse,xrun/angle_aligned_deg; with a direction: {_directed(board)}"
            )
        return [names.EVAL_RECON_MSE, judged]
    wanted = [m.strip() for m in requested.split(",") if m.strip()]
    if not MIN_METRICS <= len(wanted) <= MAX_METRICS:
        raise lb.LeaderboardError(f"--pareto: give {MIN_METRICS} or {MAX_METRICS} metrics, got {len(wanted)}: {requested!r}")
    out = []
    for metric in wanted:
        key = next((k for k in (metric, f"eval/{metric}") if k in lb.metric_names(board)), None)
        if key is None or lb.metric_mode(key) is None:
            why = "unknown metric" if key is None else "no direction (neither lower nor higher is better) for"
            raise lb.LeaderboardError(f"--pareto: {why} {metric!r}; choose among: {_directed(board)}")
        out.append(key)
    if len(set(out)) != len(out):
        raise lb.LeaderboardError(f"--pareto: a metric named twice in {requested!r}")
    return out


def _directed(board: pd.DataFrame) -> str:
    return ", ".join(m for m in lb.metric_names(board) if lb.metric_mode(m)) or "none"


def mark_pareto(board: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """The board with each configuration's place on the front of ``metrics``: pareto (front, dominated, unplaced),
    pareto_by (the dominating configuration's key), pareto_q and pareto_metric (the test that decided)."""
    board = board.copy()
    marks = pareto_marks([lb.summaries(board, m) for m in metrics], [lb.metric_mode(m) for m in metrics])
    keys = board["config_key"].tolist()
    board["pareto"] = [m.mark for m in marks]
    board["pareto_by"] = [keys[m.by] if m.by is not None else "" for m in marks]
    board["pareto_q"] = [m.q for m in marks]
    board["pareto_metric"] = [metrics[m.metric] if m.metric is not None else "" for m in marks]
    board.attrs["pareto_metrics"] = metrics
    return board


def _varying(board: pd.DataFrame) -> list[str]:
    """The parameters besides the method that take more than one value where a method takes them."""
    return [c for c in GROUP_COLUMNS if c != names.P_METHOD and board.loc[board[c] != "-", c].nunique() > 1]


def point_label(row, varying: list[str]) -> str:
    """What tells a configuration from others of its method: lambda (λ), and any other parameter that varies."""
    parts = [f"{'λ' if c == names.P_LAMBDA else c}={row[c]}" for c in varying if row[c] != "-"]
    return " ".join(parts)


def _span(counts: pd.Series) -> str:
    lo, hi = int(counts.min()), int(counts.max())
    return f"{lo}" if lo == hi else f"{lo}-{hi}"


# evaluators.plots loads torch: imported where a plot is drawn, so the read-only commands start without it
def front_plot(board: pd.DataFrame) -> bytes:
    from evaluators.plots import ParetoPoint, pareto_plot

    metrics = board.attrs["pareto_metrics"]
    varying = _varying(board)
    points = [
        ParetoPoint(
            point_label(row, varying), str(row[names.P_METHOD]),
            tuple(float(row[f"{m}_mean"]) for m in metrics), tuple(float(row[f"{m}_ci95"]) for m in metrics),
            row["pareto"] == names.PARETO_FRONT,
        )
        for _, row in board.iterrows() if row["pareto"] != names.PARETO_UNPLACED
    ]
    seeds = board.loc[board["pareto"] != names.PARETO_UNPLACED, "seeds"]
    return pareto_plot(
        [lb.column_label(board, m) for m in metrics], points, [lb.metric_mode(m) for m in metrics],
        title=f"Pareto front: mean ± 95% CI over seeds (n = {_span(seeds)}); filled = front (not significantly "
              f"dominated: Welch, BH, q < {TIE_ALPHA:g}), hollow = dominated",
    )


def parallel_plot(board: pd.DataFrame, metrics: list[str]) -> bytes:
    """Configurations across their parameters (method, log10 lambda, mu, d, target where they vary) and ``metrics``
    (means); the categorical axes are coded 0..k-1 in sorted order."""
    from evaluators.plots import parallel_coordinates_plot

    params = encode_params(board)
    columns, values, categories = [], [], {}
    for c in params:
        if pd.api.types.is_numeric_dtype(params[c]):
            values.append(params[c].to_numpy(dtype=np.float64))
        else:
            cats = sorted(params[c].unique())
            categories[c] = cats
            values.append(params[c].map(cats.index).to_numpy(dtype=np.float64))
        columns.append(c)
    for m in metrics:
        columns.append(lb.column_label(board, m).split(" [")[0])
        values.append(board[f"{m}_mean"].to_numpy(dtype=np.float64))
    return parallel_coordinates_plot(columns, np.column_stack(values), board[names.P_METHOD].astype(str).tolist(),
                                     categories)


def importance_metrics(board: pd.DataFrame) -> list[str]:
    """What importance is computed for: the metric the leaderboard judges by, and eccentricity."""
    return list(dict.fromkeys(m for m in (lb.default_vs_best(board), names.EVAL_ECCENTRICITY) if m))


def importances(trials: pd.DataFrame, metrics: list[str], seed: int = 0) -> tuple[list[Importance], list[str]]:
    """Importance per metric over the trial rows; a metric it cannot be computed for is left out with its reason."""
    found, notes = [], []
    for metric in metrics:
        try:
            found += importance(trials, metric, seed=seed)
        except ImportanceError as exc:
            notes.append(str(exc).removeprefix("--importance: "))
    return found, notes


def importance_display(found: list[Importance]) -> pd.DataFrame:
    return pd.DataFrame([{
        "metric": i.metric.removeprefix("eval/"),
        "parameter": i.param,
        "importance": f"{i.importance:.2f}" + ("" if math.isnan(i.low) else f" [{i.low:.2f}, {i.high:.2f}]"),
        "n trials": i.n,
        "configurations": i.configurations,
    } for i in found])


IMPORTANCE_LEGEND = (
    "importance: fANOVA share of the variance of the metric over finished trials (seeds) explained by the parameter "
    "alone (Optuna's FanovaImportanceEvaluator); [low, high]: its range over 10 bootstrap resamples of the "
    f"configurations; {LOG_LAMBDA}: lambda on a log scale, a method without lambda a decade below the smallest."
)


def importance_png(found: list[Importance]) -> bytes:
    from evaluators.plots import importance_plot

    panels: dict[str, list[tuple[str, float, float, float]]] = {}
    for i in found:
        panels.setdefault(f"{i.metric} (n = {i.n} trials, {i.configurations} configurations)", []).append(
            (i.param, i.importance, i.low, i.high))
    return importance_plot(panels)


@dataclass
class Tradeoff:
    """Everything a sweep's trade-off shows: the board marked with the front (or unmarked, with the reason in
    notes), the importances, and the plots by artifact name."""

    board: pd.DataFrame
    metrics: list[str] = field(default_factory=list)
    importance: list[Importance] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    pngs: dict[str, bytes] = field(default_factory=dict)


def tradeoff(board: pd.DataFrame, trials: pd.DataFrame, seed: int = 0) -> Tradeoff:
    """The front of the default pair, importances, and their plots, each where the sweep allows it (else a note)."""
    out = Tradeoff(board)
    if board.empty:
        out.notes.append("no configuration runs")
        return out
    try:
        out.metrics = pareto_metrics(board, None)
        out.board = mark_pareto(board, out.metrics)
        out.pngs[names.ARTIFACT_PLOT_PARETO] = front_plot(out.board)
    except lb.LeaderboardError as exc:
        out.notes.append(str(exc).removeprefix("--pareto: "))
    out.importance, notes = importances(trials, importance_metrics(board), seed)
    out.notes += notes
    if out.importance:
        out.pngs[names.ARTIFACT_PLOT_IMPORTANCE] = importance_png(out.importance)
    shown = out.metrics or [m for m in importance_metrics(board) if f"{m}_mean" in board]
    placed = out.board[out.board[[f"{m}_mean" for m in shown]].notna().all(axis=1)] if shown else out.board
    if len(placed) > 1:
        out.pngs[names.ARTIFACT_PLOT_PARALLEL] = parallel_plot(placed, shown)
    return out


def pareto_json(board: pd.DataFrame) -> dict:
    metrics = board.attrs["pareto_metrics"]
    rows = []
    for _, row in board.iterrows():
        rows.append({
            "config_key": row["config_key"], "run_id": row["run_id"], **{c: row[c] for c in GROUP_COLUMNS},
            "mark": row["pareto"], "dominated_by": row["pareto_by"] or None,
            "q": None if math.isnan(row["pareto_q"]) else float(row["pareto_q"]),
            "decided_by": row["pareto_metric"] or None,
            "metrics": {m: {k: (None if pd.isna(row[f"{m}_{k}"]) else float(row[f"{m}_{k}"])) for k in lb.STATS}
                        for m in metrics},
        })
    return {"metrics": metrics, "modes": [lb.metric_mode(m) for m in metrics], "alpha": TIE_ALPHA, "test": TEST,
            "configurations": rows}


def publish_tradeoff(store: Store, run_id: str, t: Tradeoff) -> list[str]:
    """The plots, pareto.json and importance.json onto the sweep run; the tag esweep.pareto onto every
    configuration run. Returns the artifacts written."""
    written = []
    for name, png in t.pngs.items():
        store.log_artifact_bytes(run_id, name, png)
        written.append(name)
    if t.importance:
        doc = {"legend": IMPORTANCE_LEGEND, "importance": [vars(i) for i in t.importance]}
        store.log_artifact_bytes(run_id, names.ARTIFACT_IMPORTANCE, json.dumps(doc, indent=1).encode())
        written.append(names.ARTIFACT_IMPORTANCE)
    if t.metrics:
        store.log_artifact_bytes(run_id, names.ARTIFACT_PARETO, json.dumps(pareto_json(t.board), indent=1).encode())
        written.append(names.ARTIFACT_PARETO)
        marks = list(zip(t.board["run_id"], t.board["pareto"], strict=True))
        # a server answers requests side by side; a local file has one writer
        with ThreadPoolExecutor(1 if is_local_store(store.uri) else SERVER_THREADS) as pool:
            list(pool.map(lambda rm: store.set_tags(rm[0], {names.T_PARETO: rm[1]}), marks))
    return written

