"""Two real tiny sweeps in one MLflow store: what the sweep run carries when a sweep finishes (descriptions, the
report, the leaderboard as a table), and `esweep compare` between them."""

import json

import mlflow
import pandas as pd
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from evaluators import names
from sweep.cli import main
from sweep.orchestrate import OUTCOME_MARK, run_sweep
from sweep.report import publish_sweep_results
from sweep.spec import parse_spec
from sweep.tracking import Store


def tiny(name: str, methods: list) -> dict:
    return {
        "name": name, "dataset": "mnist5k", "methods": methods, "seeds": [0, 1], "epochs": 1, "max_train": 200,
        "batch_size": 50, "lr": 1e-3,
        "evaluation": {"fid_samples": 0, "knn": False, "plots": False, "crossrun": False},
    }


@pytest.fixture(scope="module")
def two_sweeps(local_ray, tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    a = run_sweep(parse_spec(tiny("cmp-a", ["ae", {"name": "eae", "lambdas": [1.0]}])),
                  tracking_uri=uri, storage_path=str(root / "results"))
    b = run_sweep(parse_spec(tiny("cmp-b", [{"name": "eae", "lambdas": [1.0, 0.1]}])),
                  tracking_uri=uri, storage_path=str(root / "results"))
    return a, b, uri


def test_sweep_run_carries_description_spec_report_and_leaderboard_table(two_sweeps, monkeypatch):
    a, _, uri = two_sweeps
    monkeypatch.setattr(mlflow.tracking._tracking_service.utils, "_tracking_uri", uri)  # load_table searches by it
    client = MlflowClient(uri)
    parent = client.get_run(a.parent_run_id)
    description = parent.data.tags[names.T_DESCRIPTION]
    assert description.startswith(f"Sweep cmp-a ({a.sweep_id})") and f"{OUTCOME_MARK}" in description
    assert "4/4 trials finished, 0 failed" in description
    listed = {f.path for f in client.list_artifacts(a.parent_run_id)} | {
        f.path for f in client.list_artifacts(a.parent_run_id, "report")}
    assert {names.ARTIFACT_SPEC, names.ARTIFACT_SWEEP_REPORT, names.ARTIFACT_LEADERBOARD_TABLE,
            names.ARTIFACT_LEADERBOARD_CSV} <= listed
    html = open(client.download_artifacts(a.parent_run_id, names.ARTIFACT_SWEEP_REPORT)).read()
    assert a.sweep_id in html and "leaderboard" in html
    # MLflow's own table reader finds the leaderboard: one row per configuration
    table = client.load_table(parent.info.experiment_id, names.ARTIFACT_LEADERBOARD_TABLE, [a.parent_run_id])
    assert sorted(table[names.P_METHOD]) == ["ae", "eae"] and any(c.startswith("recon_mse") for c in table.columns)
    board = pd.read_csv(client.download_artifacts(a.parent_run_id, names.ARTIFACT_LEADERBOARD_CSV))
    assert len(board) == 2 and f"{names.EVAL_RECON_MSE}_ci95" in board.columns
    # refreshed again (a resume finishing), the table is replaced, not appended to
    publish_sweep_results(Store(uri), a.sweep_id, a.parent_run_id)
    assert len(client.load_table(parent.info.experiment_id, names.ARTIFACT_LEADERBOARD_TABLE, [a.parent_run_id])) == 2
    assert json.loads(client.get_run(a.parent_run_id).data.tags[names.T_LOGGED_ARTIFACTS]) == [
        {"path": names.ARTIFACT_LEADERBOARD_TABLE, "type": "table"}]


def test_configuration_and_seed_runs_say_what_ran(two_sweeps):
    a, _, uri = two_sweeps
    store = Store(uri)
    for run in store.config_runs(a.sweep_id):
        assert "2 seed(s) x 1 epochs" in run.data.tags[names.T_DESCRIPTION]
    for run in store.trial_runs(a.sweep_id):
        text = run.data.tags[names.T_DESCRIPTION]
        assert f"seed {run.data.params[names.P_SEED]}: 1 epochs" in text
        assert f"configuration {run.data.tags[names.T_CONFIG_KEY]}" in text


def test_compare_matches_the_shared_configuration_and_lists_the_others(two_sweeps):
    a, b, uri = two_sweeps
    result = CliRunner().invoke(main, ["compare", a.sweep_id, b.sweep_id, "--tracking-uri", uri, "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert (doc["a"], doc["b"]) == (a.sweep_id, b.sweep_id)
    shared = {(d[names.P_METHOD], d[names.P_LAMBDA]) for d in doc["deltas"]}
    assert shared == {("eae", "1")}
    recon = next(d for d in doc["deltas"] if d["metric"] == names.EVAL_RECON_MSE)
    assert recon["a_n"] == recon["b_n"] == 2 and recon["delta"] == pytest.approx(recon["b_mean"] - recon["a_mean"])
    assert 0 <= recon["p"] <= 1 and recon["verdict"] in ("B better", "B worse", "no significant difference")
    assert [d[names.P_METHOD] for d in doc["only_in_a"]] == ["ae"]
    assert [(d[names.P_METHOD], d[names.P_LAMBDA]) for d in doc["only_in_b"]] == [("eae", "0.1")]
    for fmt in ("table", "markdown", "csv"):
        out = CliRunner().invoke(main, ["compare", a.sweep_id, b.sweep_id, "--tracking-uri", uri, "--format", fmt,
                                        "--metric", "recon_mse"])
        assert out.exit_code == 0 and "recon_mse" in out.output, out.output
    table = CliRunner().invoke(main, ["compare", a.sweep_id, b.sweep_id, "--tracking-uri", uri]).output
    assert f"only in A ({a.sweep_id}), not compared" in table and f"only in B ({b.sweep_id}), not compared" in table


def test_compare_unknown_sweep_exits_2(two_sweeps):
    a, _, uri = two_sweeps
    result = CliRunner().invoke(main, ["compare", a.sweep_id, "no-such-sweep", "--tracking-uri", uri])
    assert result.exit_code == 2 and "no sweep 'no-such-sweep'" in result.output
