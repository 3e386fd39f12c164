"""The trade-off on a sweep planted in a real sqlite MLflow store (no training): `esweep leaderboard --pareto` marks
and exports, bad --pareto input, publishing (plots, pareto.json, the esweep.pareto tag) and `esweep ui --front`."""

import csv
import io
import json
import urllib.parse

import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient
from mlflow_planted import plant_sweep, summary

from evaluators import names
from evaluators.metric_uncertainty import t_half_width
from sweep import leaderboard as lb
from sweep.aggregate import trial_frame
from sweep.cli import main
from sweep.leaderboard import leaderboard
from sweep.tracking import Store
from sweep.tradeoff import mark_pareto, pareto_metrics, publish_tradeoff, tradeoff

RECON, KID, FID = names.EVAL_RECON_MSE, names.eval_kid("standard"), names.eval_fid("standard")
ECC = names.EVAL_ECCENTRICITY


def s(mean: float, std: float, n: int) -> dict[str, float]:
    return summary(mean, std, n, t_half_width(std, n))


def config(method, lam, recon, kid, n=4):
    """A configuration with recon MSE and KID (mean, std) over n seeds, and a small-sample FID (so KID is judged)."""
    return {"params": {names.P_METHOD: method, names.P_LAMBDA: lam, names.P_LATENT_DIM: "8"},
            "metrics": {RECON: s(*recon, n), KID: s(*kid, n), FID: s(100.0, 5.0, n), ECC: s(1.0, 0.1, n),
                        names.eval_fid_n("standard"): s(64.0, 0.0, n)}}


# A and B trade off; C is far worse than A on both (dominated); D is a little worse than A by means, within noise
PLANTED = {
    "A": config("eae", "1", (0.010, 0.0005), (0.050, 0.002)),
    "B": config("eae", "10", (0.020, 0.0005), (0.030, 0.002)),
    "C": config("ae", "-", (0.040, 0.0005), (0.090, 0.002)),
    "D": config("vae", "1", (0.0105, 0.004), (0.052, 0.02)),
}
EXPECTED = {"A": "front", "B": "front", "C": "dominated", "D": "front"}


@pytest.fixture()
def planted(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    exp_id, ids = plant_sweep(uri, "sweep-p", list(PLANTED.values()))
    keys = dict(zip(PLANTED, ids, strict=True))  # A -> its config key
    return uri, exp_id, keys, ids


def board_of(uri):
    return leaderboard(Store(uri), "sweep-p")[1]


def test_default_pair_is_recon_against_the_judged_generation_metric(planted):
    uri, *_ = planted
    assert pareto_metrics(board_of(uri), None) == [RECON, KID]  # FID from 64 images is small-sample: KID judged
    assert pareto_metrics(board_of(uri), "recon_mse,eval/kid/standard,fid/standard") == [RECON, KID, FID]


def test_leaderboard_pareto_marks_the_front_in_every_format(planted):
    uri, _, keys, _ = planted
    run = CliRunner().invoke
    out = run(main, ["leaderboard", "sweep-p", "--tracking-uri", uri, "--pareto", "recon_mse,kid/standard",
                     "--format", "json"])
    assert out.exit_code == 0, out.output
    marks = {r["config_key"]: r["pareto"] for r in json.loads(out.output)}
    assert {k: marks[keys[k]]["mark"] for k in PLANTED} == EXPECTED
    assert marks[keys["C"]]["dominated_by"] in (keys["A"], keys["B"], keys["D"]) and marks[keys["C"]]["q"] < 0.05
    rows = list(csv.DictReader(io.StringIO(run(main, ["leaderboard", "sweep-p", "--tracking-uri", uri, "--pareto",
                                                      "--format", "csv"]).output)))
    assert {r["config_key"]: r["pareto"] for r in rows} == {keys[k]: v for k, v in EXPECTED.items()}
    table = run(main, ["leaderboard", "sweep-p", "--tracking-uri", uri, "--pareto"]).output
    assert f"dominated by {marks[keys['C']]['dominated_by']}" in table and "Benjamini-Hochberg" in table


@pytest.mark.parametrize(("value", "message"), [
    ("recon_mse", "--pareto: give 2 or 3 metrics, got 1"),
    ("recon_mse,eccentricity", "--pareto: no direction (neither lower nor higher is better) for 'eccentricity'"),
    ("recon_mse,nope", "--pareto: unknown metric 'nope'; choose among: "),
    ("recon_mse,kid/standard,recon_mse", "--pareto: a metric named twice"),
])
def test_bad_pareto_metrics_exit_2_naming_the_choices(planted, value, message):
    uri, *_ = planted
    out = CliRunner().invoke(main, ["leaderboard", "sweep-p", "--tracking-uri", uri, "--pareto", value])
    assert out.exit_code == 2 and message in out.output, out.output


def test_importance_without_trial_runs_says_why_and_csv_refuses_it(planted):
    uri, *_ = planted
    out = CliRunner().invoke(main, ["leaderboard", "sweep-p", "--tracking-uri", uri, "--importance"])
    assert out.exit_code == 0 and "importance not computed: no trial has 'eval/kid/standard'" in out.output
    out = CliRunner().invoke(main, ["leaderboard", "sweep-p", "--tracking-uri", uri, "--importance", "--format", "csv"])
    assert out.exit_code == 2 and "--importance: csv holds one table" in out.output


def test_publishing_tags_every_configuration_run_and_ui_front_links_exactly_the_front(planted):
    uri, exp_id, keys, ids = planted
    store = Store(uri)
    board = board_of(uri)
    trade = tradeoff(board, trial_frame(store, "sweep-p"))
    assert trade.metrics == [RECON, KID] and "no trial has" in " ".join(trade.notes)  # no trial runs were planted
    parent = store.sweep_run("sweep-p").info.run_id
    written = publish_tradeoff(store, parent, trade)
    assert {names.ARTIFACT_PLOT_PARETO, names.ARTIFACT_PLOT_PARALLEL, names.ARTIFACT_PARETO} <= set(written)
    doc = json.loads(store.read_artifact_bytes(parent, names.ARTIFACT_PARETO))
    assert doc["metrics"] == [RECON, KID] and doc["modes"] == ["min", "min"]
    assert {r["config_key"]: r["mark"] for r in doc["configurations"]} == {keys[k]: v for k, v in EXPECTED.items()}
    assert store.read_artifact_bytes(parent, names.ARTIFACT_PLOT_PARETO)[:8] == b"\x89PNG\r\n\x1a\n"
    tags = {r.data.tags[names.T_CONFIG_KEY]: r.data.tags[names.T_PARETO] for r in store.config_runs("sweep-p")}
    assert tags == {keys[k]: ("front" if v == "front" else "dominated") for k, v in EXPECTED.items()}

    out = CliRunner().invoke(main, ["ui", "sweep-p", "--tracking-uri", uri, "--no-server", "--front"])
    assert out.exit_code == 0, out.output
    plain = [ln.strip() for ln in out.output.splitlines() if ln.strip().startswith("http")][-1]
    query = dict(urllib.parse.parse_qsl(plain.split("?", 1)[1]))
    assert query["searchFilter"].endswith("and tags.`esweep.pareto` = 'front'")
    front = MlflowClient(uri).search_runs([exp_id], query["searchFilter"])
    assert {r.info.run_id for r in front} == {ids[keys[k]] for k, v in EXPECTED.items() if v == "front"}


def test_a_sweep_published_before_fronts_says_so_on_ui_front(planted):
    uri, *_ = planted
    out = CliRunner().invoke(main, ["ui", "sweep-p", "--tracking-uri", uri, "--no-server", "--front"])
    assert out.exit_code == 0 and "carries esweep.pareto = 'front'" in out.output


def test_a_three_metric_front_marks_each_configuration(planted):
    uri, _, keys, _ = planted
    board = mark_pareto(board_of(uri), [RECON, KID, FID])  # FID ties everyone: nobody is better on all three
    assert set(board["pareto"]) == {"front"}


def test_a_front_configuration_with_one_seed_says_no_test_could_place_it_behind(planted):
    uri, _, keys, _ = planted
    board = board_of(uri)
    board.loc[board["config_key"] == keys["C"], f"{KID}_n"] = 1  # C's KID from one seed: no Welch test on it
    board.loc[board["config_key"] == keys["C"], f"{RECON}_n"] = 1
    shown = lb.display_frame(mark_pareto(board, [RECON, KID]))
    cells = dict(zip(board["config_key"], shown["pareto"], strict=True))
    assert cells[keys["C"]] == "front (untested: n<2)" and cells[keys["A"]] == "front"
