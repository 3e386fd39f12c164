"""A real sweep: Ray Tune trials logging to a real MLflow store; the leaderboard read back from MLflow alone."""

import contextlib
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from browser import chromium, needs_chromium, runs_table
from click.testing import CliRunner
from PIL import Image

from evaluators import names
from sweep.cli import main
from sweep.leaderboard import leaderboard
from sweep.orchestrate import run_sweep
from sweep.spec import parse_spec
from sweep.tracking import Store, environment_tags

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def finished_sweep(local_ray, tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    spec = parse_spec(
        {
            "name": "e2e",
            "dataset": "mnist5k",
            "methods": ["ae", {"name": "eae", "lambdas": [1.0, 1e39]}],  # lambda * l_mu overflows float32: a real divergence
            "seeds": [0, 1],
            "epochs": 2,
            "max_train": 300,
            "batch_size": 50,
            "lr": 1e-3,
            "max_failures": 1,
            "evaluation": {"fid_samples": 8, "fid_reference_size": 16, "samplers": ["standard", "matched"]},
        }
    )
    uri = f"sqlite:///{root / 'mlflow.db'}"
    outcome = run_sweep(spec, tracking_uri=uri, storage_path=str(root / "results"))
    return outcome, uri


def test_sweep_runs_every_trial_and_fails_only_the_diverged_one(finished_sweep):
    outcome, _ = finished_sweep
    assert len(outcome.statuses) == 6
    failed = {k for k, s in outcome.statuses.items() if s == "ERROR"}
    assert failed == {"eae__lam1e+39__mu1__d8__s0", "eae__lam1e+39__mu1__d8__s1"}


def test_mlflow_has_one_child_run_per_trial_with_provenance(finished_sweep):
    outcome, uri = finished_sweep
    store = Store(uri)
    runs = store.trial_runs(outcome.sweep_id)
    assert len(runs) == 6
    assert len({r.data.tags[names.T_TRIAL_KEY] for r in runs}) == 6
    configs = {r.info.run_id: r for r in store.config_runs(outcome.sweep_id)}
    assert len(configs) == 3
    for config in configs.values():  # sweep -> configuration -> seed
        assert config.data.tags["mlflow.parentRunId"] == outcome.parent_run_id
        assert names.P_SEED not in config.data.params and config.data.tags[names.T_DESCRIPTION]
    for run in runs:
        parent = configs[run.data.tags["mlflow.parentRunId"]]
        assert parent.data.tags[names.T_CONFIG_KEY] == run.data.tags[names.T_CONFIG_KEY]
        assert run.data.tags[names.T_GIT_COMMIT] and run.data.tags[names.T_VERSION]
        # the trial process trained on the spec's device 'auto' on this same machine
        assert {k: run.data.tags[k] for k in names.ENV_TAGS} == environment_tags("auto")
        assert {names.P_METHOD, names.P_LAMBDA, names.P_MU, names.P_LATENT_DIM, names.P_SEED, names.P_DATASET,
                names.P_EPOCHS} <= set(run.data.params)
        if run.info.status == "FINISHED":
            history = store.client.get_metric_history(run.info.run_id, names.TRAIN_LOSS)
            assert sorted(m.step for m in history) == [1, 2]
            assert 0 <= run.data.metrics[names.EVAL_ECCENTRICITY] < 5
            assert 0 < run.data.metrics[names.EVAL_RECON_MSE] < 0.5
            spectrum = json.loads(
                open(store.client.download_artifacts(run.info.run_id, names.ARTIFACT_SPECTRUM)).read()
            )
            assert len(spectrum) == 8 and spectrum == sorted(spectrum, reverse=True)
        else:
            assert run.info.status == "FAILED"
            assert "diverged" in run.data.tags[names.T_FAILURE]
    parent = store.client.get_run(outcome.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert {k: parent.data.tags[k] for k in names.ENV_TAGS} == environment_tags("cpu")


def test_trials_carry_fid_knn_and_plots_and_the_sweep_carries_crossrun_angles(finished_sweep):
    outcome, uri = finished_sweep
    store = Store(uri)
    for run in store.trial_runs(outcome.sweep_id):
        if run.info.status != "FINISHED":
            continue
        for sampler in ("standard", "matched"):
            assert run.data.metrics[names.eval_fid(sampler)] > 0
            assert run.data.metrics[names.eval_fid_n(sampler)] == 8
            assert math.isfinite(run.data.metrics[names.eval_kid(sampler)]) and run.data.metrics[names.eval_kid_std(sampler)] >= 0
        # judged once, at the last epoch
        converged = store.client.get_metric_history(run.info.run_id, names.TRAIN_CONVERGED)
        assert [(m.step, m.value in (0.0, 1.0)) for m in converged] == [(2, True)]
        assert run.data.params[names.P_FID_SAMPLES] == "8"
        assert run.data.params[names.P_FID_EXTRACTOR]
        assert 0 <= run.data.metrics[f"{names.EVAL_KNN_ERROR_PREFIX}all"] <= 100
        plots = {a.path for a in store.client.list_artifacts(run.info.run_id, "plots")}
        assert {names.ARTIFACT_PLOT_SPECTRUM, names.ARTIFACT_PLOT_LATENT_2D, names.ARTIFACT_PLOT_EIGEN_IMAGES} <= plots
    _, board = leaderboard(store, outcome.sweep_id)
    ok = board[board["failed"] == 0]
    # the mean angle between the two runs' codes of the same images: raw coordinates of independent runs are
    # arbitrary up to rotation, so anything in [0, 180] (unrelated codes average 90); alignment can only lower it
    assert (ok[f"{names.XRUN_ANGLE_RAW}_mean"].between(0, 180)).all()
    assert (ok[f"{names.XRUN_ANGLE_ALIGNED}_mean"] <= ok[f"{names.XRUN_ANGLE_RAW}_mean"] + 1e-6).all()


def test_report_writes_one_self_contained_html(finished_sweep, tmp_path):
    outcome, uri = finished_sweep
    out = tmp_path / "r.html"
    result = CliRunner().invoke(main, ["report", outcome.sweep_id, "--tracking-uri", uri, "-o", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert html.count("data:image/png;base64,") >= 6 and "leaderboard" in html and "src=\"http" not in html


def test_leaderboard_aggregates_seeds_from_mlflow(finished_sweep):
    outcome, uri = finished_sweep
    store = Store(uri)
    _, board = leaderboard(store, outcome.sweep_id)
    assert len(board) == 3
    ok = board[board["failed"] == 0]
    assert set(ok["seeds"]) == {2}
    ecc = names.EVAL_ECCENTRICITY
    assert ok[f"{ecc}_std"].notna().all() and (ok[f"{ecc}_n"] == 2).all()
    # the Student-t 95% half-width of a mean of 2 values is 12.706 * std / sqrt(2)
    assert ok[f"{ecc}_ci95"].to_numpy() == pytest.approx(12.7062 * ok[f"{ecc}_std"].to_numpy() / 2**0.5, rel=1e-4)
    bad = board[board["failed"] == 2].iloc[0]
    assert bad["seeds"] == 0 and "diverged" in bad["failure"]
    # the configuration runs hold what the leaderboard shows, under the trial metric names
    for row in ok.itertuples():
        trials = [r for r in store.trial_runs(outcome.sweep_id, row.config_key) if r.info.status == "FINISHED"]
        values = [r.data.metrics[ecc] for r in trials]
        config = store.client.get_run(row.run_id).data.metrics
        assert config[ecc] == pytest.approx(sum(values) / 2) and config[f"{ecc}_n"] == 2
        assert config[names.SEEDS_FINISHED] == 2
        assert config[names.XRUN_ANGLE_ALIGNED] <= config[names.XRUN_ANGLE_RAW] + 1e-6
        assert config[f"{names.XRUN_ANGLE_RAW}_n"] == 1 and f"{names.XRUN_ANGLE_RAW}_ci95" not in config
    parent = store.client.get_run(outcome.parent_run_id).data.metrics
    assert not any(k.startswith("xrun/") for k in parent)  # no metric names built from a configuration


def test_leaderboard_json_carries_summaries_and_the_best_mark(finished_sweep):
    outcome, uri = finished_sweep
    result = CliRunner().invoke(main, ["leaderboard", outcome.sweep_id, "--tracking-uri", uri, "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    recon = [r["metrics"][names.EVAL_RECON_MSE] for r in rows if r["seeds"] == 2]
    assert len(recon) == 2 and all({"mean", "std", "ci95", "n", "vs_best", "p_vs_best"} <= e.keys() for e in recon)
    assert sorted(e["vs_best"] for e in recon)[0] == "best" and all(e["n"] == 2 for e in recon)
    fid = rows[0]["metrics"].get(names.eval_fid("standard"))
    assert fid is None or fid["small_sample"] is True  # 8 samples against 2048 features
    table = CliRunner().invoke(main, ["leaderboard", outcome.sweep_id, "--tracking-uri", uri]).output
    # one seed's value shows no '± 0'; '0 ± 0' is two seeds' identical zeros (precision/recall of 8 samples here)
    assert re.search(r"(?<![\d.])(?!0 )[\d.e+-]+ ± 0 ", table) is None
    assert "small-sample" in table and "vs best" in table


@pytest.mark.parametrize("fmt", ["csv", "json", "markdown", "table"])
def test_leaderboard_cli_exports(finished_sweep, fmt):
    outcome, uri = finished_sweep
    result = CliRunner().invoke(
        main, ["leaderboard", outcome.sweep_id, "--tracking-uri", uri, "--format", fmt, "--sort", "recon_mse"]
    )
    assert result.exit_code == 0, result.output
    assert "eae" in result.output and "ae" in result.output
    if fmt == "csv":
        header = result.output.splitlines()[0].split(",")
        assert f"{names.EVAL_ECCENTRICITY}_mean" in header and "seeds" in header


def test_leaderboard_cli_bad_sort_exits_2(finished_sweep):
    outcome, uri = finished_sweep
    result = CliRunner().invoke(main, ["leaderboard", outcome.sweep_id, "--tracking-uri", uri, "--sort", "nope"])
    assert result.exit_code == 2 and "available:" in result.output


@contextlib.contextmanager
def esweep_ui(uri: str, sweep_id: str, port: int, log: Path, *args: str):
    """`esweep ui SWEEP` as a user starts it: the links it prints, while the MLflow server it started answers."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-c", "from sweep.cli import main; main()", "ui", sweep_id, "--tracking-uri", uri,
           "--port", str(port), *args]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, f"no MLflow UI on {port}:\n{log.read_text()}"
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        yield [ln.strip() for ln in log.read_text().splitlines() if ln.startswith("  http://")]
    finally:
        proc.send_signal(signal.SIGTERM)  # esweep ui alone, as `kill` would: it stops the server it started
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def render_runs_table(url: str, n_rows: int, folder: Path, screenshot: Path | None = None, attempts: int = 3):
    """The runs table Chromium renders at ``url`` (retried until it shows ``n_rows`` rows: the React app fetches
    the runs after the page loads, and a loaded machine may not finish within the virtual time budget)."""
    table, res = [], None
    for attempt in range(attempts):
        shot = [f"--screenshot={screenshot}", "--window-size=1600,1000"] if screenshot else []
        res = chromium([*shot, "--virtual-time-budget=15000", "--dump-dom", url], folder / f"profile-{attempt}")
        table = runs_table(res.stdout)
        if len(table) == n_rows:
            return table
    raise AssertionError(f"{len(table)} rows rendered, expected {n_rows}: {res.stderr[-2000:]}")


@needs_chromium
def test_mlflow_ui_in_a_real_browser_shows_what_the_leaderboard_shows(finished_sweep, tmp_path):
    """`esweep ui` on the finished sweep: a real MLflow server on loopback, its runs page rendered by headless
    Chromium from the link `esweep ui` printed. The page shows the sweep's configuration runs, by name, with the
    leaderboard's mean, 95% half-width and n, in the leaderboard's order, both ways round."""
    outcome, uri = finished_sweep
    metric = names.EVAL_RECON_MSE
    columns = {k: f"metrics.`{metric}{suffix}`" for k, suffix in (("mean", ""), ("ci95", "_ci95"), ("n", "_n"))}
    run_names = {r.info.run_id: r.info.run_name for r in Store(uri).config_runs(outcome.sweep_id)}

    def leaderboard_rows(*args):
        result = CliRunner().invoke(main, ["leaderboard", outcome.sweep_id, "--tracking-uri", uri, "--sort",
                                           "recon_mse", "--format", "json", *args])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    def assert_agree(table, rows):
        assert [run_id for run_id, _ in table] == [r["run_id"] for r in rows]  # same runs, same order
        for (run_id, cells), row in zip(table, rows, strict=True):
            assert run_names[run_id] in cells["attributes.`Run Name`"]
            summary = row["metrics"].get(metric, {"n": 0})
            if summary["n"] == 0:  # the diverged configuration: no value, and last
                assert cells.get(columns["mean"], "-") == "-"
                continue
            assert float(cells[columns["mean"]]) == pytest.approx(summary["mean"], rel=1e-4)
            assert float(cells[columns["ci95"]]) == pytest.approx(summary["ci95"], rel=1e-4)
            assert float(cells[columns["n"]]) == summary["n"]

    ascending, descending = leaderboard_rows(), leaderboard_rows("--desc")
    assert len(ascending) == len(run_names) == 3
    port = free_port()
    shot = tmp_path / "mlflow-ui-runs.png"
    with esweep_ui(uri, outcome.sweep_id, port, tmp_path / "esweep-ui.log", "--sort", "recon_mse") as links:
        view, _ = links  # the saved view: filter, order and the metric's columns
        assert_agree(render_runs_table(view, len(ascending), tmp_path, shot), ascending)
        print(f"\nscreenshot of MLflow's runs page: {shot}")
        # sorting is the page's own: the same runs, the other way round, from the plain link's URL facets
        flipped = CliRunner().invoke(main, ["ui", outcome.sweep_id, "--tracking-uri", uri, "--no-server", "--port",
                                            str(port), "--sort", "recon_mse", "--desc"])
        plain = flipped.output.strip().splitlines()[-1].strip()
        assert "orderByAsc=false" in plain
        table = render_runs_table(plain, len(descending), tmp_path / "desc")
        assert [run_id for run_id, _ in table] == [r["run_id"] for r in descending]
    image = np.asarray(Image.open(shot).convert("RGB"))
    assert image.shape[:2] == (1000, 1600) and len(np.unique(image.reshape(-1, 3), axis=0)) > 10


def test_the_trade_off_is_marked_published_and_reported(finished_sweep, tmp_path):
    """`esweep leaderboard --pareto recon_mse,kid/standard --importance` on the real sweep agrees with what the sweep
    published: pareto.json and the plots on the sweep run, the esweep.pareto tag on each configuration run, the
    plot in the report."""
    outcome, uri = finished_sweep
    store = Store(uri)
    t0 = time.monotonic()
    result = CliRunner().invoke(main, ["leaderboard", outcome.sweep_id, "--tracking-uri", uri, "--pareto",
                                       "recon_mse,kid/standard", "--importance", "--format", "json"])
    print(f"\nleaderboard --pareto --importance (in process): {time.monotonic() - t0:.1f} s")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    marks = {r["config_key"]: r["pareto"]["mark"] for r in doc["configurations"]}
    failed = {r["config_key"] for r in doc["configurations"] if r["seeds"] == 0}
    assert len(failed) == 1 and all(marks[k] == names.PARETO_UNPLACED for k in failed)  # the diverged one
    assert names.PARETO_FRONT in marks.values() and set(marks.values()) <= {"front", "dominated", "unplaced"}
    by_metric = {}
    for entry in doc["importance"]:
        by_metric.setdefault(entry["metric"], []).append(entry)
        assert entry["n"] == 4 and entry["configurations"] == 2  # two configurations of two seeds finished
    assert set(by_metric) == {names.eval_kid("standard"), names.EVAL_ECCENTRICITY}
    for entries in by_metric.values():
        assert sum(e["importance"] for e in entries) == pytest.approx(1.0)
    published = json.loads(store.read_artifact_bytes(outcome.parent_run_id, names.ARTIFACT_PARETO))
    assert published["metrics"] == [names.EVAL_RECON_MSE, names.eval_kid("standard")]
    assert {r["config_key"]: r["mark"] for r in published["configurations"]} == marks
    artifacts = {a.path for a in store.client.list_artifacts(outcome.parent_run_id, "plots")}
    assert {names.ARTIFACT_PLOT_PARETO, names.ARTIFACT_PLOT_IMPORTANCE, names.ARTIFACT_PLOT_PARALLEL} <= artifacts
    tags = {r.data.tags[names.T_CONFIG_KEY]: r.data.tags.get(names.T_PARETO) for r in store.config_runs(outcome.sweep_id)}
    assert tags == marks
    out = tmp_path / "r.html"
    assert CliRunner().invoke(main, ["report", outcome.sweep_id, "--tracking-uri", uri, "-o", str(out)]).exit_code == 0
    html = out.read_text()
    for name in (names.ARTIFACT_PLOT_PARETO, names.ARTIFACT_PLOT_IMPORTANCE, names.ARTIFACT_PLOT_PARALLEL):
        assert html.count(f"sweep: {name}") == 2  # alt text and caption of one figure, not the sweep run's copy too
    assert "parameter importance" in html and "front" in html


@needs_chromium
def test_mlflow_ui_front_link_in_a_real_browser_shows_exactly_the_front(finished_sweep, tmp_path):
    """`esweep ui --front`: both links it prints, rendered by headless Chromium from a real MLflow server, show
    exactly the configuration runs the leaderboard puts on the Pareto front."""
    outcome, uri = finished_sweep
    result = CliRunner().invoke(main, ["leaderboard", outcome.sweep_id, "--tracking-uri", uri, "--pareto", "--format",
                                       "json"])
    assert result.exit_code == 0, result.output
    front = {r["run_id"] for r in json.loads(result.output) if r["pareto"]["mark"] == names.PARETO_FRONT}
    assert front
    with esweep_ui(uri, outcome.sweep_id, free_port(), tmp_path / "esweep-ui.log", "--front") as links:
        assert len(links) == 2
        for i, link in enumerate(links):
            assert "esweep.pareto" in urllib.parse.unquote(link) or "viewStateShareKey" in link
            table = render_runs_table(link, len(front), tmp_path / f"link-{i}")
            assert {run_id for run_id, _ in table} == front
