"""`esweep compare` on planted leaderboards: matching by configuration, B - A with Welch's test, one-sided
configurations, formats, and the CLI's errors."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from mlflow_planted import plant_sweep, summary
from scipy import stats

from evaluators import names
from evaluators.metric_uncertainty import summarize, welch_difference
from sweep import compare as cmp
from sweep.cli import main

RECON = names.EVAL_RECON_MSE
ECC = names.EVAL_ECCENTRICITY


def board(rows: list[dict]) -> pd.DataFrame:
    """A leaderboard frame as config_frame builds it: params, run id, and M_mean/M_std/M_ci95/M_n per metric."""
    out = []
    for i, r in enumerate(rows):
        row = {names.P_METHOD: r["method"], names.P_TARGET: "-", names.P_LAMBDA: r.get("lambda", "-"),
               names.P_MU: "-", names.P_LATENT_DIM: "8", names.P_DATASET: "mnist5k", "run_id": f"run{i}"}
        for metric, (mean, std, n) in r["metrics"].items():
            row.update({f"{metric}_mean": mean, f"{metric}_std": std, f"{metric}_ci95": std, f"{metric}_n": float(n)})
        out.append(row)
    return pd.DataFrame(out)


def test_a_planted_difference_far_beyond_its_error_is_significant_and_judged_by_direction():
    a = board([{"method": "eae", "lambda": "1", "metrics": {RECON: (0.10, 0.001, 5), ECC: (1.0, 0.01, 5)}}])
    b = board([{"method": "eae", "lambda": "1", "metrics": {RECON: (0.05, 0.001, 5), ECC: (2.0, 0.01, 5)}}])
    out = cmp.compare_boards(a, b).set_index("metric")
    assert out.loc[RECON, "delta"] == pytest.approx(-0.05)
    assert out.loc[RECON, "p"] < 1e-8 and out.loc[RECON, "significant"]
    assert out.loc[RECON, "verdict"] == "B better"  # lower recon MSE is better
    assert out.loc[ECC, "verdict"] == "B higher"  # eccentricity has no better direction
    assert (out["present"] == cmp.BOTH).all()
    worse = cmp.compare_boards(b, a, [RECON]).iloc[0]
    assert worse["verdict"] == "B worse" and worse["delta"] == pytest.approx(0.05)


def test_identical_distributions_are_not_significant():
    same = [{"method": "vae", "lambda": "0.1", "metrics": {RECON: (0.07, 0.01, 4)}}]
    row = cmp.compare_boards(board(same), board(same)).iloc[0]
    assert row["delta"] == 0 and row["p"] == pytest.approx(1.0)
    assert not row["significant"] and row["verdict"] == "no significant difference"


def test_samples_of_one_distribution_are_not_significant_at_the_nominal_rate(test_seed):
    # under the null, Welch's p is uniform: over 400 pairs of equal-distribution samples, about 5% fall below 0.05
    # (binomial sd 1.1%), so the rate stays under 5% + 4 sd
    rng = np.random.default_rng(test_seed + 12)
    significant = 0
    for _ in range(400):
        sa, sb = summarize(rng.normal(0.1, 0.01, 4)), summarize(rng.normal(0.1, 0.01, 4))
        a = board([{"method": "ae", "metrics": {RECON: (sa.mean, sa.std, sa.n)}}])
        b = board([{"method": "ae", "metrics": {RECON: (sb.mean, sb.std, sb.n)}}])
        significant += bool(cmp.compare_boards(a, b).iloc[0]["significant"])
    assert significant / 400 < 0.05 + 4 * math.sqrt(0.05 * 0.95 / 400)


def test_verdicts_use_benjamini_hochberg_over_every_compared_cell(test_seed):
    # 60 configurations unchanged between the sweeps (null: p uniform, ~3 below 0.05 by chance) and one planted real
    # change far beyond its error (p ~1e-9): q keeps the real one. For BH to call V >= 4 null cells different it
    # rejects R = V + 1 cells, so V null p-values lie below R * 0.05 / 61: for V = 4, four below 0.0041, P ~
    # C(60,4) 0.0041^4 ~ 1.4e-4, and larger V are rarer still, so "at most 3" fails for ~1 stream in 5,000
    rng = np.random.default_rng(test_seed + 14)
    rows_a, rows_b = [], []
    for i in range(60):
        sa, sb = summarize(rng.normal(0.1, 0.01, 4)), summarize(rng.normal(0.1, 0.01, 4))
        rows_a.append({"method": "eae", "lambda": str(i), "metrics": {RECON: (sa.mean, sa.std, sa.n)}})
        rows_b.append({"method": "eae", "lambda": str(i), "metrics": {RECON: (sb.mean, sb.std, sb.n)}})
    rows_a.append({"method": "ae", "metrics": {RECON: (0.10, 0.001, 5)}})
    rows_b.append({"method": "ae", "metrics": {RECON: (0.05, 0.001, 5)}})
    out = cmp.compare_boards(board(rows_a), board(rows_b))
    np.testing.assert_allclose(out["q"], stats.false_discovery_control(out["p"], method="bh"))
    assert (out["q"] >= out["p"]).all()
    real = out[out[names.P_METHOD] == "ae"].iloc[0]
    assert real["significant"] and real["verdict"] == "B better"
    null = out[out[names.P_METHOD] == "eae"]
    assert null["significant"].sum() <= 3


def test_bh_adjusted_q_on_planted_p_values():
    rows = [{"metric": RECON, "delta": -1.0, "p": p} for p in (0.01, 0.02, 0.03, 0.5)] + [
        {"metric": RECON, "delta": 0.0, "p": math.nan}]
    cmp._judge(rows, 0.05)
    assert [r["q"] for r in rows[:4]] == pytest.approx([0.04, 0.04, 0.04, 0.5])
    assert [r["significant"] for r in rows] == [True, True, True, False, False]
    assert math.isnan(rows[4]["q"]) and rows[4]["verdict"] == "untested (n<2)"


def test_welch_difference_matches_scipy_on_raw_samples(test_seed):
    rng = np.random.default_rng(test_seed + 13)
    xa, xb = rng.normal(1.0, 0.3, 6), rng.normal(1.4, 0.8, 9)
    diff = welch_difference(summarize(xa), summarize(xb))
    assert diff.p == pytest.approx(stats.ttest_ind(xb, xa, equal_var=False).pvalue, rel=1e-9)
    va, vb = xa.var(ddof=1) / 6, xb.var(ddof=1) / 9
    dof = (va + vb) ** 2 / (va**2 / 5 + vb**2 / 8)
    assert diff.delta == pytest.approx(xb.mean() - xa.mean())
    assert diff.ci95 == pytest.approx(stats.t.ppf(0.975, dof) * math.sqrt(va + vb))


def test_fewer_than_two_seeds_is_untested():
    a = board([{"method": "ae", "metrics": {RECON: (0.1, math.nan, 1)}}])
    b = board([{"method": "ae", "metrics": {RECON: (0.2, 0.01, 3)}}])
    row = cmp.compare_boards(a, b).iloc[0]
    assert row["verdict"] == "untested (n<2)" and math.isnan(row["p"]) and not row["significant"]


def test_configurations_in_one_sweep_only_are_listed_not_compared():
    a = board([{"method": "ae", "metrics": {RECON: (0.1, 0.01, 2)}},
               {"method": "eae", "lambda": "1", "metrics": {RECON: (0.1, 0.01, 2)}}])
    b = board([{"method": "eae", "lambda": "1", "metrics": {RECON: (0.1, 0.01, 2)}},
               {"method": "eae", "lambda": "0.1", "metrics": {RECON: (0.1, 0.01, 2)}}])
    out = cmp.compare_boards(a, b)
    assert list(cmp.only_in(out, cmp.ONLY_A)[names.P_METHOD]) == ["ae"]
    assert list(cmp.only_in(out, cmp.ONLY_B)[names.P_LAMBDA]) == ["0.1"]
    lonely = out[out["present"] != cmp.BOTH]
    assert lonely["delta"].isna().all() and set(lonely["verdict"]) == {cmp.ONLY_A, cmp.ONLY_B}
    table = cmp.render(out, "sA", "sB", "table")
    assert "only in A (sA), not compared" in table and "only in B (sB), not compared" in table
    doc = json.loads(cmp.render(out, "sA", "sB", "json"))
    assert [d[names.P_LAMBDA] for d in doc["deltas"]] == ["1"]
    assert doc["only_in_a"] == [{names.P_METHOD: "ae", names.P_TARGET: "-", names.P_LAMBDA: "-", names.P_MU: "-",
                                 names.P_LATENT_DIM: "8", names.P_DATASET: "mnist5k", names.P_RECON: "-"}]
    header = cmp.render(out, "sA", "sB", "csv").splitlines()[0].split(",")
    assert {"present", "metric", "a_mean", "b_mean", "delta", "delta_ci95", "p", "significant", "verdict"} <= set(header)
    markdown = cmp.render(out, "sA", "sB", "markdown")
    assert markdown.count("| eae | - | 1 |") == 1 and markdown.count("| eae | - | 0.1 |") == 1


def test_metric_selection_accepts_short_names_and_rejects_unknown_ones():
    a = board([{"method": "ae", "metrics": {RECON: (0.1, 0.01, 2), ECC: (1.0, 0.1, 2)}}])
    assert list(cmp.compare_boards(a, a, ["recon_mse"])["metric"]) == [RECON]
    with pytest.raises(cmp.CompareError, match=r"--metric: unknown metric 'nope'; available: .*eval/recon_mse"):
        cmp.compare_boards(a, a, ["nope"])


def test_bookkeeping_summaries_are_not_compared():
    a = board([{"method": "ae", "metrics": {RECON: (0.1, 0.01, 2), names.EVAL_WALL_TIME: (3.0, 0.1, 2),
                                             names.eval_fid_n("standard"): (8.0, 0.0, 2)}}])
    assert cmp.comparable_metrics(a, a) == [RECON]


@pytest.fixture()
def planted(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    eae = {names.P_METHOD: "eae", names.P_LAMBDA: "1", names.P_MU: "1", names.P_LATENT_DIM: "8"}
    plant_sweep(uri, "sweep-a", [{"params": eae, "metrics": {RECON: summary(0.10, 0.001, 3)}}])
    plant_sweep(uri, "sweep-b", [{"params": eae, "metrics": {RECON: summary(0.05, 0.001, 3)}}])
    return uri


def test_cli_compares_two_planted_sweeps(planted):
    result = CliRunner().invoke(main, ["compare", "sweep-a", "sweep-b", "--tracking-uri", planted, "--format", "json"])
    assert result.exit_code == 0, result.output
    (delta,) = json.loads(result.output)["deltas"]
    assert delta["verdict"] == "B better" and delta["delta"] == pytest.approx(-0.05) and delta["significant"]
    table = CliRunner().invoke(main, ["compare", "sweep-a", "sweep-b", "--tracking-uri", planted, "--metric", "recon_mse"])
    assert table.exit_code == 0 and "B better" in table.output and "A = sweep-a, B = sweep-b" in table.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sweep-a", "nope"], "no sweep 'nope'"),
        (["sweep-a", "sweep-b", "--metric", "fid"], "--metric: unknown metric 'fid'; available: eval/recon_mse"),
        (["sweep-a", "sweep-b", "--format", "xml"], "--format: unknown format 'xml'; choose one of table, csv"),
    ],
)
def test_cli_bad_input_exits_2_naming_the_field(planted, args, message):
    result = CliRunner().invoke(main, ["compare", *args, "--tracking-uri", planted])
    assert result.exit_code == 2 and message in result.output


def _provenance(**changes) -> str:
    p = {k: "x" for k in names.PROVENANCE_PARAMS}
    p.update({names.P_FID_REFERENCE_SPLIT: "test", **changes})
    return json.dumps(p, sort_keys=True)


@pytest.fixture()
def planted_fid(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    eae = {names.P_METHOD: "eae", names.P_LAMBDA: "1", names.P_MU: "1", names.P_LATENT_DIM: "8"}
    fid = names.eval_fid("standard")
    for sweep, split, value in (("sweep-a", "test", 30.0), ("sweep-b", "train", 20.0), ("sweep-c", "test", 25.0)):
        plant_sweep(uri, sweep, [{
            "params": eae, "metrics": {RECON: summary(0.1, 0.01, 3), fid: summary(value, 1.0, 3)},
            "tags": {names.T_GEN_PROVENANCE: _provenance(**{names.P_FID_REFERENCE_SPLIT: split})},
        }])  # fmt: skip
    return uri


def test_cli_refuses_generation_metrics_of_different_provenance_naming_what_differs(planted_fid):
    def run(*args):
        return CliRunner().invoke(main, ["compare", *args, "--tracking-uri", planted_fid])

    refused = run("sweep-a", "sweep-b")
    assert refused.exit_code == 2
    assert "computed differently" in refused.output and "fid_reference: test in A, train in B" in refused.output
    assert run("sweep-a", "sweep-b", "--metric", "recon_mse").exit_code == 0  # not a generation metric
    same = run("sweep-a", "sweep-c", "--metric", "fid/standard", "--format", "json")
    assert same.exit_code == 0 and json.loads(same.output)["deltas"][0]["delta"] == pytest.approx(-5.0)


def test_provenance_differences_in_words():
    a, b = json.loads(_provenance()), json.loads(_provenance(**{names.P_FID_SAMPLES: "1000"}))
    assert cmp.provenance_differences(a, a) == []
    assert cmp.provenance_differences(a, b) == [f"{names.P_FID_SAMPLES}: x in A, 1000 in B"]
    assert cmp.provenance_differences(None, b) == ["provenance: not recorded in A, one provenance in B"]
    assert cmp.provenance_differences([a, b], a) == ["provenance: mixed over seeds in A, one provenance in B"]


def test_generation_metrics_of_every_feature_space_are_checked():
    for metric in (names.eval_fid("gmm"), names.eval_coverage("flow"), names.eval_ct("standard"),
                   names.in_feature_space(names.eval_kid("standard"), "dinov2-vit-l-14")):  # fmt: skip
        assert cmp.is_generation_metric(metric), metric
    for metric in (RECON, ECC, names.eval_knn_error("all"), names.XRUN_ANGLE_RAW):
        assert not cmp.is_generation_metric(metric), metric
