"""`esweep report`: one self-contained HTML file (leaderboard plus every plot, images embedded), from MLflow."""

from __future__ import annotations

from pathlib import Path

from evaluators import names
from evaluators.report import write_html_report
from sweep import leaderboard as lb
from sweep.aggregate import trial_frame
from sweep.tracking import Store

TRIAL_PLOTS = (
    names.ARTIFACT_PLOT_SPECTRUM,
    names.ARTIFACT_PLOT_LATENT_2D,
    names.ARTIFACT_PLOT_EIGEN_IMAGES,
    names.ARTIFACT_PLOT_COMPONENT_GRID,
    names.ARTIFACT_PLOT_RECONSTRUCTIONS,
    names.ARTIFACT_PLOT_CONTROL_LAMBDA,
    names.ARTIFACT_PLOT_CONTROL_ECC,
)


def _artifact_pngs(store: Store, run_id: str, folder: str = "") -> dict[str, bytes]:
    """Every PNG under ``folder`` of a run's artifacts, by artifact path."""
    out: dict[str, bytes] = {}
    for info in store.client.list_artifacts(run_id, folder or None):
        if info.is_dir:
            out.update(_artifact_pngs(store, run_id, info.path))
        elif info.path.endswith(".png"):
            out[info.path] = Path(store.client.download_artifacts(run_id, info.path)).read_bytes()
    return out


def build_report(store: Store, sweep: str | None, path: Path) -> tuple[str, Path]:
    sweep_id, board = lb.leaderboard(store, sweep)
    parent = store.sweep_run(sweep_id)
    images: list[tuple[str, bytes]] = []
    for name, png in sorted(_artifact_pngs(store, parent.info.run_id).items()):
        images.append((f"sweep: {name}", png))
    trials = trial_frame(store, sweep_id)
    if not trials.empty:
        finished = trials[trials["status"] == "FINISHED"].sort_values(["config_key", "seed"])
        for config_key, group in finished.groupby("config_key", sort=False):
            run_id = group["run_id"].iloc[0]  # the first seed stands for its configuration
            pngs = _artifact_pngs(store, run_id, "plots")
            wanted = [p for p in TRIAL_PLOTS if p in pngs] + sorted(
                p for p in pngs if p.startswith(names.ARTIFACT_PLOT_SAMPLES_PREFIX)
            )
            images += [(f"{config_key} (seed {group['seed'].iloc[0]}): {p}", pngs[p]) for p in wanted]
    tables = [(f"leaderboard ({lb.LEGEND})", lb.display_frame(board, lb.default_vs_best(board)))]
    if not trials.empty:
        failed = trials[trials["status"] != "FINISHED"][["config_key", "seed", "status", "failure"]]
        if len(failed):
            tables.append(("trials that did not finish", failed))
    return sweep_id, write_html_report(path, f"esweep report: {sweep_id}", tables, images)
