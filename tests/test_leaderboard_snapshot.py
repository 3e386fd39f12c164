"""The finished sweep's leaderboard snapshot: the same frame as reading every configuration run, used only while its
stamp is current (a finished sweep nobody re-summarised since), never for a running or re-summarised sweep."""

import math

import pandas as pd
import pytest
from click.testing import CliRunner
from mlflow_planted import plant_sweep, summary

from evaluators import names
from sweep import leaderboard as lb
from sweep.aggregate import refresh_sweep
from sweep.cli import main
from sweep.report import publish_sweep_results
from sweep.tracking import Store

RECON = names.EVAL_RECON_MSE
ECC = names.EVAL_ECCENTRICITY


@pytest.fixture()
def published(tmp_path):
    """A finished planted sweep (mixed metrics, a NaN-free and a one-seed configuration) whose results were published."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    configs = [
        {"params": {names.P_METHOD: "ae", names.P_LAMBDA: "-", names.P_LATENT_DIM: "8"},
         "metrics": {RECON: summary(0.021, 0.002, 3), ECC: summary(0.43, 0.05, 3)}},
        {"params": {names.P_METHOD: "eae", names.P_LAMBDA: "1", names.P_MU: "1", names.P_LATENT_DIM: "8"},
         "metrics": {RECON: summary(0.020, 0.001, 3), ECC: summary(0.32, 0.04, 3)}},
        {"params": {names.P_METHOD: "eae", names.P_LAMBDA: "10", names.P_MU: "1", names.P_LATENT_DIM: "8"},
         "metrics": {RECON: summary(0.023, math.nan, 1, ci95=math.nan)}},  # one seed: no spread, no eccentricity
    ]
    plant_sweep(uri, "sweep-s", configs)
    store = Store(uri)
    run = store.sweep_run("sweep-s")
    written = publish_sweep_results(store, "sweep-s", run.info.run_id)
    assert names.ARTIFACT_BOARD_SNAPSHOT in written
    return store


def no_full_read(monkeypatch):
    def refuse(*_args, **_kwargs):
        raise AssertionError("read every configuration run instead of the snapshot")

    monkeypatch.setattr(lb, "config_frame", refuse)


def test_a_finished_sweep_reads_its_snapshot_and_gets_the_full_read_frame_exactly(published, monkeypatch):
    _, full = lb.leaderboard(published, "sweep-s", fresh=True)
    assert len(full) == 3 and full[f"{ECC}_mean"].isna().sum() == 1  # the planted frame has a gap to survive
    no_full_read(monkeypatch)
    _, snap = lb.leaderboard(published, "sweep-s")
    pd.testing.assert_frame_equal(snap, full)
    assert lb.render(snap, "json") == lb.render(full, "json")


def test_re_summarising_the_sweep_makes_the_snapshot_stale(published, monkeypatch):
    refresh_sweep(published, "sweep-s")
    assert published.sweep_run("sweep-s").data.tags[names.T_BOARD_STAMP] == names.BOARD_STALE
    calls = []
    real = lb.config_frame
    monkeypatch.setattr(lb, "config_frame", lambda *a: calls.append(a) or real(*a))
    lb.leaderboard(published, "sweep-s")
    assert len(calls) == 1


def test_a_running_sweep_or_a_snapshot_under_another_stamp_is_read_from_its_runs(published, monkeypatch):
    run = published.sweep_run("sweep-s")
    calls = []
    real = lb.config_frame
    monkeypatch.setattr(lb, "config_frame", lambda *a: calls.append(a) or real(*a))
    published.set_tags(run.info.run_id, {names.T_BOARD_STAMP: "another-stamp"})
    lb.leaderboard(published, "sweep-s")
    published.set_tags(run.info.run_id, {names.T_BOARD_STAMP: run.data.tags[names.T_BOARD_STAMP]})
    published.client.update_run(run.info.run_id, status="RUNNING")  # e.g. `esweep resume` reopened it
    lb.leaderboard(published, "sweep-s")
    assert len(calls) == 2


def test_snapshot_round_trip_keeps_dtypes_and_refuses_another_stamp():
    frame = pd.DataFrame({"method": ["ae", "eae"], "x_mean": [0.1, math.nan], "seeds": [3, 1], "best": [True, False]})
    data = lb.snapshot_bytes(frame, "s1")
    pd.testing.assert_frame_equal(lb.board_from_snapshot(data, "s1"), frame)
    assert lb.board_from_snapshot(data, "s2") is None
    empty = pd.DataFrame([])
    assert lb.board_from_snapshot(lb.snapshot_bytes(empty, "s"), "s").empty


def test_cli_fresh_reads_every_run_and_agrees(published, monkeypatch):
    runner = CliRunner()
    snap = runner.invoke(main, ["leaderboard", "sweep-s", "--tracking-uri", published.uri, "--format", "csv"])
    fresh = runner.invoke(main, ["leaderboard", "sweep-s", "--tracking-uri", published.uri, "--format", "csv", "--fresh"])
    assert snap.exit_code == 0 and fresh.exit_code == 0, snap.output + fresh.output
    assert snap.output == fresh.output
