"""Targeted sweeps (lambda regulated to a target) and Optuna search sweeps, through real Ray Tune and MLflow."""

import pytest
from click.testing import CliRunner

from evaluators import names
from sweep.cli import main
from sweep.leaderboard import leaderboard
from sweep.orchestrate import run_sweep
from sweep.spec import SEARCH_OBJECTIVE, SpecError, expand, parse_spec
from sweep.tracking import Store

TINY = {
    "dataset": "digits",
    "latent_dims": [4],
    "epochs": 2,
    "batch_size": 50,
    "lr": 1e-3,
    "evaluation": {"fid_samples": 0, "plots": False, "knn": False, "crossrun": False},
}


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"methods": ["eae"], "target": {"eccentricity": [10.0]}}, "target.eccentricity: every target eccentricity must be in [0, 10)"),
        ({"methods": ["eae"], "target": {"eccentricity": [-0.1]}}, "[0, 10)"),
        ({"methods": ["ae"], "target": {"eccentricity": [0.3]}}, "method 'ae' takes no lambda"),
        ({"methods": ["sae"], "target": {"eccentricity": [0.3]}}, "method 'sae' takes no lambda"),
        ({"methods": ["eae"], "lambdas": [0.1], "target": {"eccentricity": [0.3]}}, "cannot be combined with a lambda grid"),
        ({"methods": ["eae"], "target": {}}, "exactly one of 'eccentricity' and 'reg'"),
        ({"methods": ["eae"], "search": {"metric": "xrun/angle_raw_deg"}}, "not a per-trial metric"),
        ({"methods": ["eae"], "search": {"metric": "eval/eccentricity", "lambda_range": [1.0, 0.1]}}, "0 < low < high"),
        ({"methods": ["eae"], "search": {"metric": "eval/eccentricity", "mu_range": [0.4, 2]}}, "0.5 < low < high"),
        ({"methods": ["eae"], "search": {"metric": "eval/eccentricity", "mode": "best"}}, "search.mode"),
    ],
)
def test_bad_target_and_search_specs_are_rejected(patch, message):
    with pytest.raises(SpecError) as err:
        parse_spec({"name": "bad", **TINY, **patch})
    assert message in str(err.value)


def test_targets_expand_over_targets_methods_and_seeds():
    spec = parse_spec({"name": "t", **TINY, "methods": ["eae", "vae"], "seeds": [0, 1],
                       "target": {"eccentricity": [0.2, 0.4, 0.6]}})
    trials = expand(spec)
    assert len(trials) == 3 * 2 * 2
    assert {t.train.control.target_eccentricity for t in trials} == {0.2, 0.4, 0.6}
    assert all(t.train.lam is None for t in trials)


def test_cli_target_bad_input_exits_2():
    runner = CliRunner()
    assert runner.invoke(main, ["target", "--method", "ae", "--eccentricity", "0.3"]).exit_code == 2
    result = runner.invoke(main, ["target", "--method", "eae", "--eccentricity", "12"])
    assert result.exit_code == 2 and "--eccentricity" in result.output and "[0, 10)" in result.output



def test_targeted_sweep_logs_lambda_trajectory_and_groups_by_target(local_ray, tmp_path):
    spec = parse_spec({"name": "tgt", **TINY, "methods": ["eae"], "seeds": [0, 1],
                       "target": {"eccentricity": [0.3], "control": {"warmup_steps": 5}}})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    outcome = run_sweep(spec, tracking_uri=uri, storage_path=str(tmp_path / "results"))
    assert set(outcome.statuses.values()) == {"TERMINATED"}
    store = Store(uri)
    for run in store.trial_runs(outcome.sweep_id):
        assert run.data.params[names.P_TARGET] == "target-ecc0.3"
        history = store.client.get_metric_history(run.info.run_id, names.CONTROL_LAMBDA)
        assert sorted(m.step for m in history) == [1, 2]
        assert run.data.metrics[names.CONTROL_FINAL_LAMBDA] > 0
        # judged on the debiased eccentricity (the finite-sample floor removed), which the run logs beside the plain
        assert run.data.metrics[names.CONTROL_ABS_ERROR] == pytest.approx(
            abs(run.data.metrics[names.EVAL_ECCENTRICITY_DEBIASED] - 0.3), abs=1e-9)
        artifacts = {a.path for a in store.client.list_artifacts(run.info.run_id, "control")}
        assert names.ARTIFACT_CONTROL_TRAJECTORY in artifacts
    _, board = leaderboard(store, outcome.sweep_id)
    assert len(board) == 1 and board["seeds"].iloc[0] == 2
    assert board[names.P_TARGET].iloc[0] == "target-ecc0.3"
    assert board[f"{names.CONTROL_FINAL_LAMBDA}_std"].notna().all()


def test_optuna_search_lands_in_the_leaderboard_with_history(local_ray, tmp_path):
    spec = parse_spec({"name": "srch", **TINY, "methods": ["eae"], "seeds": [0],
                       "search": {"metric": "eval/eccentricity", "target": 0.3, "num_samples": 3,
                                  "lambda_range": [1e-3, 10.0], "mu_range": [0.6, 4.0]}})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    outcome = run_sweep(spec, tracking_uri=uri, storage_path=str(tmp_path / "results"))
    assert len(outcome.statuses) == 3 and set(outcome.statuses.values()) == {"TERMINATED"}
    store = Store(uri)
    runs = store.trial_runs(outcome.sweep_id)
    assert len(runs) == 3
    lams = {float(r.data.params[names.P_LAMBDA]) for r in runs}
    assert len(lams) == 3 and all(1e-3 <= x <= 10 for x in lams)
    for r in runs:
        assert r.data.metrics[SEARCH_OBJECTIVE] == pytest.approx(abs(r.data.metrics[names.EVAL_ECCENTRICITY] - 0.3))
    parent = {a.path for a in store.client.list_artifacts(outcome.parent_run_id, "plots")}
    assert names.ARTIFACT_PLOT_SEARCH_HISTORY in parent
    result = CliRunner().invoke(main, ["leaderboard", outcome.sweep_id, "--tracking-uri", uri,
                                       "--sort", SEARCH_OBJECTIVE, "--format", "csv"])
    assert result.exit_code == 0 and len(result.output.strip().splitlines()) == 4
