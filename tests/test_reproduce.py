"""`esweep reproduce`: the papers' tables (registry, specs, claims) and real smoke reproductions through Ray + MLflow."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from mlflow_planted import plant_sweep, summary

from evaluators import names
from sweep import reproduce as rp
from sweep.cli import main
from sweep.report import publish_sweep_results
from sweep.spec import expand
from sweep.tracking import Store

ROOT = Path(__file__).resolve().parents[1]
# the plain-text papers the numbers are typed from, where this machine has them (beside the checkout, or in it)
PAPERS = next((p / "shared" / "papers" for p in (ROOT, ROOT.parent, ROOT.parent.parent)
               if (p / "shared" / "papers").is_dir()), ROOT / "shared" / "papers")
ISSUE_TABLES = {"table1", "table2", "table3", "mu_fid", "align_001", "ghose_fid", "geng_fid"}


def test_the_registry_holds_every_table_the_issue_names():
    assert ISSUE_TABLES <= set(rp.load_tables())


@pytest.mark.parametrize("table_id", sorted(ISSUE_TABLES))
def test_table_loads_and_its_paper_and_smoke_sweeps_validate(table_id):
    table = rp.get_table(table_id)
    assert table.rows and table.columns and table.claims and table.source.file.endswith(".txt")
    paper, smoke = rp.build_spec(table, "paper"), rp.build_spec(table, "smoke")
    assert smoke.dataset in ("mnist5k", "digits", "digits-attributes")  # embedded: runs anywhere, offline
    assert paper.dataset in ("mnist", "celeba") and smoke.epochs < paper.epochs
    # the same grid shape: one configuration per paper row at either scale
    for spec, scale in ((paper, "paper"), (smoke, "smoke")):
        configs = {t.config_key for t in expand(spec)}
        assert len(configs) >= len(table.rows)
        assert all(rp.scaled_params(table, r, scale)[names.P_METHOD] for r in table.rows)
    # every claim, as encoded, holds on the paper's own numbers and makes at least one comparison there
    paper = {(c.row.label, c.column.key): c.paper for c in rp.paper_cells(table, pd.DataFrame(), "paper")}
    for claim in table.claims:
        status, held, total, _ = rp.check_claim(claim, table, lambda r, k: paper.get((r.label, k)))
        assert (status, held) == ("pass", total) and total > 0, claim.id


@pytest.mark.parametrize("table_id", sorted(ISSUE_TABLES))
def test_paper_numbers_appear_in_the_cited_paper(table_id):
    table = rp.get_table(table_id)
    path = PAPERS / table.source.file
    if not path.exists():
        pytest.skip(f"{path} is not in this checkout")
    text = path.read_text()
    assert table.source.table.split(" (")[0] in text
    for row in table.rows:
        for key, value in row.values.items():
            if value is None:  # a column of ours beside the paper's (e.g. table3's raw-coordinate trees)
                continue
            for number in value if isinstance(value, tuple) else (value,):
                assert f"{number:g}" in text, f"{table_id} {row.label} {key}: {number:g} not in {path.name}"


def _planted_board(table: rp.PaperTable, scale: str, value) -> pd.DataFrame:
    """A leaderboard frame as `esweep leaderboard` builds it, with ``value(row, column key)`` as every mean."""
    rows = []
    for row in table.rows:
        p = rp.scaled_params(table, row, scale)
        rec = {names.P_METHOD: p[names.P_METHOD], names.P_TARGET: "-", "seeds": 3,
               names.P_LAMBDA: "-" if p[names.P_LAMBDA] is None else f"{p[names.P_LAMBDA]:g}",
               names.P_MU: "-" if p[names.P_MU] is None else f"{p[names.P_MU]:g}", names.P_LATENT_DIM: str(p["d"])}
        for col in table.columns:
            v = value(row, col.key)
            if v is not None:
                metric = table.metric(row, col.key)
                rec.update({f"{metric}_mean": v, f"{metric}_ci95": 0.5, f"{metric}_n": 3.0})
        rows.append(rec)
    return pd.DataFrame(rows)


def _statuses(table, board, scale):
    cells = rp.paper_cells(table, board, scale)
    return cells, {r.claim.id: r for r in rp.check_claims(table, cells, scale)}


def test_planted_table2_claims_pass_fail_and_not_applicable():
    table = rp.get_table("table2")
    d_of = {r.label: r.config.d for r in table.rows}
    sizes = {"10": 10, "100": 100, "1000": 1000, "all": 4000}  # no 10000-item subset in 4,000 training images

    def good(row, key):  # falls with the subset size and with d
        return None if key not in sizes else 50.0 / math.log10(sizes[key] * 10) / d_of[row.label]

    cells, claims = _statuses(table, _planted_board(table, "smoke", good), "smoke")
    assert {c.ours_n for c in cells if c.ours is not None} == {3}
    missing = [c for c in cells if c.ours is None]
    assert {c.column.key for c in missing} == {"10000"} and all(c.ran for c in missing)
    first = next(c for c in cells if c.row.label == "d=2" and c.column.key == "10")
    assert first.delta == pytest.approx(first.ours - 39.0)
    assert {k: r.ours for k, r in claims.items()} == dict.fromkeys(claims, "pass")
    assert claims["falls-with-d"].total == 4  # 5 columns, the 10000 one not measured: skipped, not failed
    assert claims["falls-with-labels"].total == 4 * 3  # 10 -> 100 -> 1000 -> all: the missing one stepped over

    def bad(row, key):  # d = 8 worse than d = 2 at 100 labels
        v = good(row, key)
        return v if v is None or not (key == "100" and d_of[row.label] == 8) else 99.0

    _, claims = _statuses(table, _planted_board(table, "smoke", bad), "smoke")
    assert claims["falls-with-d"].ours == "fail" and claims["falls-with-d"].held == 3
    assert "100: d=8 vs d=2" in claims["falls-with-d"].detail
    assert claims["falls-with-labels"].ours == "fail"  # d=8: 100 labels worse than 10
    _, claims = _statuses(table, _planted_board(table, "smoke", lambda r, k: None), "smoke")
    assert {r.ours for r in claims.values()} == {"n/a"}


def test_planted_mu_table_matches_rows_by_scaled_configuration():
    table = rp.get_table("mu_fid")
    # matched beats standard only at mu 1: the low-mu claim passes, the all-rows one fails
    board = _planted_board(
        table, "smoke", lambda r, k: 50.0 + (0 if k == "standard" else (-5 if r.config.mu == 1.0 else 5)))
    assert set(board[names.P_LAMBDA]) == {"0.0001", "0.001"}  # the paper's own, in its units, at smoke scale too
    cells, claims = _statuses(table, board, "smoke")
    assert all(c.ours is not None for c in cells)
    assert claims["matched-beats-standard-low-mu"].ours == "pass"
    assert claims["matched-beats-standard"].ours == "fail" and claims["matched-beats-standard"].held == 2
    # the same numbers under the paper's configurations (d = 64, not the smoke's 8) do not match a smoke sweep's rows
    cells, _ = _statuses(table, _planted_board(table, "paper", lambda r, k: 1.0), "smoke")
    assert all(c.ours is None and not c.ran for c in cells)


def _table_dict(**changes) -> dict:
    data = yaml.safe_load((Path(rp.__file__).parent / rp.PAPERS_DIR / "table2.yaml").read_text())
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"claims": [{"id": "x", "text": "t", "cite": "c", "kind": "compare_columns", "columns": ["nope"],
                      "than": "10", "relation": "less"}]}, "unknown column 'nope'"),
        ({"claims": [{"id": "x", "text": "t", "cite": "c", "kind": "monotone", "columns": ["10"]}]},
         "needs along, direction"),
        ({"columns": [{"key": "10", "label": "10", "metric": "knn_error"}]}, "not one of our metrics"),
        ({"rows": [{"label": "ae", "config": {"method": "ae", "lambda": 1.0, "d": 8}, "values": {}}]},
         "method 'ae' takes no lambda"),
        ({"rows": [{"label": "d=3", "config": {"method": "eae", "lambda": 0.001, "mu": 1.0, "d": 3}, "values": {}}]},
         "row 'd=3' (method eae, lambda 0.001, mu 1, d 3) is not a configuration of the sweep"),
        ({"smoke": {"note": "n", "overrides": {"evaluation": {"knn": False}}}}, "eval/knn_error_pct/10 needs evaluation.knn"),
        ({"smoke": {"note": "n", "overrides": {"dataset": "mnist6k"}}}, "unknown dataset 'mnist6k'"),
    ],
)
def test_a_bad_table_fails_naming_the_field(changes, message):
    with pytest.raises(rp.ReproduceError) as info:
        rp.parse_table(_table_dict(**changes), "table2.yaml")
    assert message in str(info.value)


def test_cli_lists_the_tables_and_rejects_bad_input_with_exit_2():
    runner = CliRunner()
    listed = runner.invoke(main, ["reproduce", "--list"])
    assert listed.exit_code == 0 and all(t in listed.output for t in ISSUE_TABLES)
    for args, message in (
        (["reproduce", "table9"], "unknown table 'table9'; choose one of"),
        (["reproduce", "table2", "--scale", "huge"], "--scale: unknown scale 'huge'; choose one of paper, smoke"),
        (["reproduce", "table2", "--scale", "smoke", "--epochs", "0"], "--epochs: Input should be greater than"),
        (["reproduce", "table2", "--seeds", "a,b"], "--seeds: expected comma-separated integers"),
        (["reproduce", "table2", "--fid-samples", "8"], "--fid-samples: table table2 computes no FID"),
        (["reproduce", "mu_fid", "--fid-samples", "-1"], "--fid-samples: Input should be greater than or equal to 0"),
        (["reproduce", "table2", "--format", "xml"], "--format: unknown format 'xml'"),
        (["reproduce"], "give a table, or --list"),
    ):
        result = runner.invoke(main, args)
        assert result.exit_code == 2 and message in result.output, (args, result.output)


@pytest.mark.parametrize("table_id", sorted(ISSUE_TABLES))
@pytest.mark.parametrize("scale", ["smoke", "paper"])
def test_cli_dry_run_validates_every_table_at_both_scales(table_id, scale):
    result = CliRunner().invoke(main, ["reproduce", table_id, "--scale", scale, "--dry-run"])
    assert result.exit_code == 0, result.output
    first, *spec = result.output.splitlines()
    assert first.startswith(f"{table_id}: ") and rp.SCALE_LABELS[scale] in first
    assert yaml.safe_load("\n".join(spec))["name"].startswith("reproduce-")


def test_a_planted_reproduction_in_every_format_and_in_the_report(tmp_path):
    """No training: a table3 smoke sweep planted in MLflow as the driver leaves it, read back by every output."""
    table = rp.get_table("table3")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    configs = []
    for row in table.rows:
        p = rp.scaled_params(table, row, "smoke")
        params = {names.P_METHOD: "eae", names.P_LAMBDA: f"{p['lambda']:g}", names.P_MU: f"{p['mu']:g}",
                  names.P_LATENT_DIM: str(p["d"])}
        configs.append({"params": params, "metrics": {  # every classifier beats the majority, KNN(20) the worst
            names.EVAL_ATTR_DT1_PC_ERROR: summary(8.0, 1.0, 2), names.EVAL_ATTR_DT8_PC_ERROR: summary(6.0, 1.0, 2),
            names.EVAL_ATTR_DT1_ERROR: summary(8.5, 1.0, 2), names.EVAL_ATTR_DT8_ERROR: summary(6.5, 1.0, 2),
            names.EVAL_ATTR_KNN20_ERROR: summary(7.0, 1.0, 2), names.EVAL_ATTR_MAJORITY_ERROR: summary(9.0, 0.0, 2)}})
    plant_sweep(uri, "t3-smoke", configs)
    store = Store(uri)
    run_id = store.sweep_run("t3-smoke").info.run_id
    store.set_tags(run_id, rp.sweep_tags(table, "smoke", "epochs=1"))
    doc = json.loads(CliRunner().invoke(
        main, ["reproduce", "table3", "--sweep", "t3-smoke", "--tracking-uri", uri, "--format", "json"]).output)
    dt1 = next(c for c in doc["cells"] if c["row"] == "lambda 1e-4, mu 1" and c["column"] == "dt1")
    assert dt1["paper"] == {"mean": 16.68, "pm": 0.12} and dt1["ours"]["mean"] == 8.0 and dt1["ours"]["n"] == 2
    assert dt1["delta"] == pytest.approx(8.0 - 16.68) and doc["overrides"] == "epochs=1"
    # the raw-coordinate trees beside them: ours only, the paper gives no value for them
    raw = next(c for c in doc["cells"] if c["row"] == "lambda 1e-4, mu 1" and c["column"] == "dt1_raw")
    assert raw["paper"]["mean"] is None and raw["ours"]["mean"] == 8.5 and raw["delta"] is None
    claims = {c["id"]: c for c in doc["claims"]}
    assert claims["beats-majority"]["ours"] == "pass" and claims["beats-majority"]["total"] == 12
    assert claims["knn-dt8-dt1"]["ours"] == "fail" and claims["knn-dt8-dt1"]["held"] == 4  # DT(8) < DT(1) only
    markdown = CliRunner().invoke(main, ["reproduce", "table3", "--sweep", "t3-smoke", "--tracking-uri", uri,
                                         "--format", "markdown"]).output
    assert ("| lambda 1e-4, mu 64.5 | DT(1) on principal components | eval/attr/dt1_pc_error_pct | 17.65 ± 0.33 | "
            "8 ± 1 (n=2) | -9.65 |") in markdown
    assert "scale: smoke (not a reproduction); overrides: epochs=1" in markdown
    published = publish_sweep_results(store, "t3-smoke", run_id)
    expected = [names.ARTIFACT_LEADERBOARD_CSV, names.ARTIFACT_LEADERBOARD_TABLE, names.ARTIFACT_BOARD_SNAPSHOT,
                names.ARTIFACT_REPRODUCTION, names.ARTIFACT_SWEEP_REPORT]
    assert [p for p in published if p in expected] == expected
    # beside them only the trade-off's artifacts (issue 22), as far as the planted metrics allow drawing them
    assert set(published) - set(expected) <= {
        names.ARTIFACT_PARETO, names.ARTIFACT_IMPORTANCE, names.ARTIFACT_PLOT_PARETO, names.ARTIFACT_PLOT_IMPORTANCE,
        names.ARTIFACT_PLOT_PARALLEL}
    html = open(store.client.download_artifacts(run_id, names.ARTIFACT_SWEEP_REPORT)).read()
    assert "reproducing Table 3 of Li &amp; Blair" in html and "smoke (not a reproduction)" in html
    assert html.index("the paper&#x27;s claims") < html.index("leaderboard (")


# --- real smoke reproductions: Ray trials logging to MLflow, read back by the leaderboard -------------------------------
def _reproduce(root: Path, table_id: str, *extra: str):
    uri = f"sqlite:///{root / 'mlflow.db'}"
    args = ["reproduce", table_id, "--scale", "smoke", "--tracking-uri", uri, "--storage-path", str(root / "results"),
            *extra]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    sweep_id = Store(uri).latest_sweep_run().data.tags[names.T_SWEEP_ID]
    return result.output, uri, sweep_id


@pytest.fixture(scope="module")
def smoke_runs(local_ray, tmp_path_factory):
    root = tmp_path_factory.mktemp("reproduce")
    return {
        "table2": _reproduce(root, "table2", "--seeds", "0,1", "--epochs", "1"),
        "mu_fid": _reproduce(root, "mu_fid", "--seeds", "0", "--epochs", "1", "--fid-samples", "8"),
    }


@pytest.mark.parametrize("table_id", ["table2", "mu_fid"])
def test_smoke_reproduction_prints_every_paper_row_beside_ours_labelled_smoke(smoke_runs, table_id):
    output, uri, sweep_id = smoke_runs[table_id]
    table = rp.get_table(table_id)
    assert "scale: smoke (not a reproduction)" in output and "overrides: seeds=" in output and sweep_id in output
    for row in table.rows:
        assert row.label in output
    for claim in table.claims:
        assert claim.text in output
    doc = json.loads(CliRunner().invoke(
        main, ["reproduce", table_id, "--sweep", sweep_id, "--tracking-uri", uri, "--format", "json"]).output)
    assert (doc["table"], doc["scale"], doc["is_reproduction"]) == (table_id, "smoke", False)
    assert doc["label"] == "smoke (not a reproduction)"
    assert len(doc["cells"]) == sum(len(r.values) for r in table.rows)
    measured = [c for c in doc["cells"] if c["ours"]["mean"] is not None]
    assert measured and all(c["delta"] == pytest.approx(c["ours"]["mean"] - c["paper"]["mean"]) for c in measured)
    n_seeds = 2 if table_id == "table2" else 1
    assert {c["ours"]["n"] for c in measured} == {n_seeds}
    assert all((c["ours"]["ci95"] is not None) == (n_seeds > 1) for c in measured)
    fid = [c for c in doc["cells"] if c["metric"].startswith(names.EVAL_FID_PREFIX)]
    assert all(c["small_sample"] for c in fid) and (table_id == "mu_fid") == bool(fid)  # 8 images << 2048 features
    assert (table_id == "mu_fid") == ("[8 imgs: small-sample, biased up]" in output)
    assert {c["id"] for c in doc["claims"]} == {c.id for c in table.claims}
    for claim in doc["claims"]:
        assert claim["paper"] == "pass" and claim["ours"] in ("pass", "fail", "n/a")
        assert (claim["ours"] == "pass") == (claim["total"] > 0 and claim["held"] == claim["total"])


def test_table2_smoke_has_no_10000_column_and_checks_its_claims(smoke_runs):
    _, uri, sweep_id = smoke_runs["table2"]
    rep = rp.reproduction(Store(uri), sweep_id)
    by_column = {}
    for c in rep.cells:
        by_column.setdefault(c.column.key, []).append(c)
    assert all(c.ours is None and c.ran for c in by_column["10000"])  # 4,000 training images: no 10,000 subset
    assert all(c.ours is not None and 0 <= c.ours <= 100 for k, cs in by_column.items() if k != "10000" for c in cs)
    claims = {r.claim.id: r for r in rep.claims}
    assert claims["falls-with-labels"].total == 4 * 3 and claims["falls-with-d"].total == 4
    assert all(r.ours in ("pass", "fail") for r in rep.claims)


def test_reproduction_is_an_ordinary_sweep_leaderboard_and_report(smoke_runs, tmp_path):
    _, uri, sweep_id = smoke_runs["mu_fid"]
    store = Store(uri)
    run = store.sweep_run(sweep_id)
    assert run.data.tags[names.T_REPRODUCE_TABLE] == "mu_fid" and run.data.tags[names.T_REPRODUCE_SCALE] == "smoke"
    board = CliRunner().invoke(main, ["leaderboard", sweep_id, "--tracking-uri", uri, "--format", "json"])
    assert board.exit_code == 0 and len(json.loads(board.output)) == 10
    side = json.loads(open(store.client.download_artifacts(run.info.run_id, names.ARTIFACT_REPRODUCTION)).read())
    assert side["sweep_id"] == sweep_id and side["label"] == "smoke (not a reproduction)"
    out = tmp_path / "r.html"
    result = CliRunner().invoke(main, ["report", sweep_id, "--tracking-uri", uri, "-o", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert "smoke (not a reproduction)" in html and "lambda 1e-4, mu 16.5" in html and "matched sampling" in html
    other = CliRunner().invoke(main, ["reproduce", "table2", "--sweep", sweep_id, "--tracking-uri", uri])
    assert other.exit_code == 2 and "is not a reproduction of table2 (it reproduces mu_fid)" in other.output


@pytest.mark.slow
@pytest.mark.parametrize("table_id", sorted(ISSUE_TABLES - {"table2", "mu_fid"}))
def test_every_other_table_smoke_reproduction_runs(local_ray, tmp_path, table_id):
    fid = ["--fid-samples", "8"] if rp.build_spec(rp.get_table(table_id), "smoke").evaluation.fid_samples else []
    output, uri, sweep_id = _reproduce(tmp_path, table_id, "--seeds", "0,1", "--epochs", "1", *fid)
    rep = rp.reproduction(Store(uri), sweep_id)
    assert rep.scale == "smoke" and any(c.ours is not None for c in rep.cells)
    assert all(r.paper == "pass" and r.ours in ("pass", "fail", "n/a") for r in rep.claims)
