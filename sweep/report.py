"""`esweep report`: one self-contained HTML file (leaderboard plus every plot, images embedded), from MLflow."""

from __future__ import annotations

import json
import tempfile
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from evaluators import names
from evaluators.metric_uncertainty import format_summary
from evaluators.report import write_html_report
from sweep import leaderboard as lb
from sweep.aggregate import SERVER_THREADS, trial_frame
from sweep.tracking import Store, is_local_store
from sweep.tradeoff import IMPORTANCE_LEGEND, LEGEND, Tradeoff, importance_display, publish_tradeoff, tradeoff

if TYPE_CHECKING:
    from sweep.reproduce import Reproduction

TRIAL_PLOTS = (
    names.ARTIFACT_PLOT_SPECTRUM,
    names.ARTIFACT_PLOT_LATENT_2D,
    names.ARTIFACT_PLOT_EIGEN_IMAGES,
    names.ARTIFACT_PLOT_COMPONENT_GRID,
    names.ARTIFACT_PLOT_RECONSTRUCTIONS,
    names.ARTIFACT_PLOT_CONTROL_LAMBDA,
    names.ARTIFACT_PLOT_CONTROL_ECC,
)
TRADEOFF_PLOTS = (names.ARTIFACT_PLOT_PARETO, names.ARTIFACT_PLOT_IMPORTANCE, names.ARTIFACT_PLOT_PARALLEL)


def _artifact_pngs(store: Store, artifact_uri: str, folder: str = "") -> dict[str, bytes]:
    """Every PNG under ``folder`` of the artifacts at a run's ``artifact_uri`` (as the search that found the run gives
    it: listing by run id would fetch the run again each time), by artifact path."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    repo = get_artifact_repository(artifact_uri, tracking_uri=store.uri)
    out: dict[str, bytes] = {}
    pending = [folder or None]
    while pending:
        for info in repo.list_artifacts(pending.pop()):
            if info.is_dir:
                pending.append(info.path)
            elif info.path.endswith(".png"):
                out[info.path] = Path(repo.download_artifacts(info.path)).read_bytes()
    return out


def build_report(store: Store, sweep: str | None, path: Path, trade: Tradeoff | None = None) -> tuple[str, Path]:
    """The report; ``trade``: the sweep's trade-off where the caller has it (else computed here, best effort)."""
    sweep_id, board = lb.leaderboard(store, sweep)
    parent = store.sweep_run(sweep_id)
    trials = trial_frame(store, sweep_id)
    if trade is None:
        try:
            trade = tradeoff(board, trials)
        except Exception as exc:  # the report without the trade-off rather than no report
            trade = Tradeoff(board, notes=[f"{type(exc).__name__}: {exc}"])
    images: list[tuple[str, bytes]] = [(f"sweep: {name}", png) for name, png in trade.pngs.items()]
    for name, png in sorted(_artifact_pngs(store, parent.info.artifact_uri).items()):
        if name not in TRADEOFF_PLOTS:  # the sweep run's copies of the ones just drawn
            images.append((f"sweep: {name}", png))
    if not trials.empty:
        finished = trials[trials["status"] == "FINISHED"].sort_values(["config_key", "seed"])

        def plots(key_group) -> list[tuple[str, bytes]]:
            config_key, group = key_group
            # the first seed stands for its configuration
            pngs = _artifact_pngs(store, group["artifact_uri"].iloc[0], "plots")
            wanted = [p for p in TRIAL_PLOTS if p in pngs] + sorted(
                p for p in pngs if p.startswith(names.ARTIFACT_PLOT_SAMPLES_PREFIX)
            )
            return [(f"{config_key} (seed {group['seed'].iloc[0]}): {p}", pngs[p]) for p in wanted]

        # a listing per configuration: against a server, 8 at a time
        with ThreadPoolExecutor(1 if is_local_store(store.uri) else SERVER_THREADS) as pool:
            for found in pool.map(plots, finished.groupby("config_key", sort=False)):
                images += found
    legend = lb.LEGEND + (f" {LEGEND} Metrics: {', '.join(trade.metrics)}." if trade.metrics else "")
    tables = [(f"leaderboard ({legend})", lb.display_frame(trade.board, lb.default_vs_best(board)))]
    if trade.importance:
        tables.append((f"parameter importance ({IMPORTANCE_LEGEND})", importance_display(trade.importance)))
    if trade.notes:
        tables.append(("trade-off not shown in full", pd.DataFrame({"reason": trade.notes})))
    if (kid := sampler_matrix(board, names.EVAL_KID_PREFIX)) is not None:
        tables.append(("KID per configuration x sampler (mean ± 95% CI over seeds, n seeds)", kid))
    if (pr := precision_recall_points(board)):
        from evaluators.plots import (
            precision_recall_plot,  # matplotlib and torch only when there is something to plot
        )

        images.insert(0, ("sweep: precision vs recall per sampler", precision_recall_plot(pr)))
    if not trials.empty:
        failed = trials[trials["status"] != "FINISHED"][["config_key", "seed", "status", "failure"]]
        if len(failed):
            tables.append(("trials that did not finish", failed))
    title = f"esweep report: {sweep_id}"
    rep, why = _reproduction(store, sweep_id)
    if rep is not None:
        from sweep.reproduce import report_tables

        tables = report_tables(rep) + tables
        title += f", reproducing {rep.table.source.table} of {rep.table.paper} ({rep.label})"
    elif why:
        tables.insert(0, ("paper table not shown", pd.DataFrame({"reason": [why]})))
    return sweep_id, write_html_report(path, title, tables, images)


def _samplers(board: pd.DataFrame, prefix: str) -> list[str]:
    return sorted(m.removeprefix(prefix) for m in lb.metric_names(board) if m.startswith(prefix) and "/" not in m.removeprefix(prefix))


def sampler_matrix(board: pd.DataFrame, prefix: str) -> pd.DataFrame | None:
    """A configuration x sampler table of one generation metric (e.g. KID), 'mean ± ci95 (n=k)' per cell."""
    samplers = _samplers(board, prefix)
    if board.empty or not samplers:
        return None
    out = pd.DataFrame({"configuration": board["config_key"]})
    for sampler in samplers:
        out[sampler] = [format_summary(s, show_n=True) for s in lb.summaries(board, f"{prefix}{sampler}")]
    return out


def precision_recall_points(board: pd.DataFrame) -> list[tuple[str, str, float, float, float, float]]:
    """(configuration, sampler, precision, ci95, recall, ci95) for every cell that has both."""
    points = []
    for sampler in _samplers(board, names.EVAL_PRECISION_PREFIX):
        prec, rec = names.eval_precision(sampler), names.eval_recall(sampler)
        if f"{rec}_mean" not in board:
            continue
        for key, p, r in zip(board["config_key"], lb.summaries(board, prec), lb.summaries(board, rec), strict=True):
            if p.n and r.n:
                points.append((key, sampler, p.mean, p.ci95, r.mean, r.ci95))
    return points


def _reproduction(store: Store, sweep_id: str) -> tuple[Reproduction | None, str]:
    """The sweep's side-by-side with its paper table, if it reproduces one; else None, and why where it should."""
    if not store.sweep_run(sweep_id).data.tags.get(names.T_REPRODUCE_TABLE):
        return None, ""  # not a reproduction: the registry (whose specs load the methods, and torch) stays unloaded
    from sweep.reproduce import ReproduceError, reproduction

    try:
        return reproduction(store, sweep_id), ""
    except ReproduceError as exc:  # e.g. a table this version no longer registers
        return None, str(exc)


def publish_leaderboard(store: Store, sweep_id: str, run_id: str) -> pd.DataFrame:
    """The leaderboard, read from every configuration run, onto the sweep run ``run_id``: an MLflow table, CSV, and
    the snapshot a finished sweep's leaderboard is read from (stamped last, so no reader pairs the new stamp with an
    older file)."""
    _, board = lb.leaderboard(store, sweep_id, fresh=True)
    store.log_artifact_bytes(run_id, names.ARTIFACT_LEADERBOARD_CSV, lb.render(board, "csv").encode())
    store.log_table(run_id, names.ARTIFACT_LEADERBOARD_TABLE, lb.display_frame(board, lb.default_vs_best(board)))
    stamp = uuid.uuid4().hex
    store.log_artifact_bytes(run_id, names.ARTIFACT_BOARD_SNAPSHOT, lb.snapshot_bytes(board, stamp))
    store.set_tags(run_id, {names.T_BOARD_STAMP: stamp})
    return board


def publish_sweep_results(store: Store, sweep_id: str, run_id: str) -> list[str]:
    """The leaderboard (an MLflow table and CSV), the trade-off (front, importance, parallel coordinates; the tag
    esweep.pareto on every configuration run) and the HTML report of ``esweep report`` onto the sweep run, replacing
    earlier ones. Each is best effort: one that fails is left out with its reason printed, never failing
    the sweep. Returns the artifacts written."""
    written: list[str] = []

    def attempt(artifacts: tuple[str, ...], write) -> None:
        try:
            if write() is not False:
                written.extend(artifacts)
        except Exception as exc:
            print(f"esweep: {', '.join(artifacts)} not written to the sweep run ({type(exc).__name__}: {exc})")
            traceback.print_exc(limit=3)

    boards: list[pd.DataFrame] = []
    trades: list[Tradeoff] = []

    def leaderboard_artifacts() -> None:
        boards.append(publish_leaderboard(store, sweep_id, run_id))

    def tradeoff_artifacts() -> bool:
        board = boards[0] if boards else lb.leaderboard(store, sweep_id, fresh=True)[1]
        trades.append(tradeoff(board, trial_frame(store, sweep_id)))
        written.extend(publish_tradeoff(store, run_id, trades[0]))
        return False  # listed as written above: only those the sweep allowed

    def report_artifact() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            _, path = build_report(store, sweep_id, Path(tmp) / Path(names.ARTIFACT_SWEEP_REPORT).name,
                                   trades[0] if trades else None)
            store.log_artifact_bytes(run_id, names.ARTIFACT_SWEEP_REPORT, path.read_bytes())

    def reproduction_artifact() -> bool:
        rep, why = _reproduction(store, sweep_id)
        if why:
            raise ValueError(why)
        if rep is None:
            return False  # not a reproduction: nothing to write
        from sweep.reproduce import to_json

        store.log_artifact_bytes(run_id, names.ARTIFACT_REPRODUCTION, json.dumps(to_json(rep), indent=1).encode())
        return True

    attempt((names.ARTIFACT_LEADERBOARD_CSV, names.ARTIFACT_LEADERBOARD_TABLE, names.ARTIFACT_BOARD_SNAPSHOT),
            leaderboard_artifacts)
    attempt((names.ARTIFACT_PARETO, names.ARTIFACT_IMPORTANCE, *TRADEOFF_PLOTS), tradeoff_artifacts)
    attempt((names.ARTIFACT_REPRODUCTION,), reproduction_artifact)
    attempt((names.ARTIFACT_SWEEP_REPORT,), report_artifact)
    return written
