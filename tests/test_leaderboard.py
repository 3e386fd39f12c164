"""Leaderboard judgement on planted configuration frames (no MLflow): which metric 'best' is judged by."""

import pandas as pd

from evaluators import names
from sweep.aggregate import GROUP_COLUMNS
from sweep.leaderboard import default_vs_best, display_frame, mark_best, records


def _board(fid_n: float | None) -> pd.DataFrame:
    rows = []
    for i, (fid, kid, mse) in enumerate([(120.0, 0.05, 0.02), (150.0, 0.09, 0.03)]):
        row = {"config_key": f"c{i}", "fid_samples": str(int(fid_n or 0))}
        for metric, mean in (
            (names.eval_fid("standard"), fid),
            (names.eval_kid("standard"), kid),
            (names.EVAL_RECON_MSE, mse),
        ):
            row.update({f"{metric}_mean": mean, f"{metric}_std": mean / 10, f"{metric}_ci95": mean / 4, f"{metric}_n": 3})
        if fid_n is not None:
            key = names.eval_fid_n("standard")
            row.update({f"{key}_mean": fid_n, f"{key}_std": 0.0, f"{key}_ci95": 0.0, f"{key}_n": 3})
        rows.append(row)
    return mark_best(pd.DataFrame(rows))


def test_best_is_judged_by_kid_where_the_fid_is_small_sample_else_by_fid():
    assert default_vs_best(_board(64)) == names.eval_kid("standard")
    assert default_vs_best(_board(10_000)) == names.eval_fid("standard")


def test_without_fid_best_is_judged_by_recon_mse():
    board = _board(None).drop(columns=[c for c in _board(None).columns if "/fid/" in c or "/kid/" in c])
    assert default_vs_best(mark_best(board)) == names.EVAL_RECON_MSE


def _prdc_board(n: int) -> pd.DataFrame:
    rows = []
    for i, (precision, coverage) in enumerate([(0.9, 0.8), (0.6, 0.3)]):
        row = {
            "config_key": f"c{i}", "fid_samples": str(n), **{c: "-" for c in GROUP_COLUMNS}, "seeds": 3, "failed": 0,
            "flags": "", "failure": "", names.P_DATASET: "mnist5k", "run_id": f"r{i}", "running": 0,
            "unconverged": 0, "outliers": 0,
        }  # fmt: skip
        for metric, mean in (
            (names.eval_precision("standard"), precision),
            (names.eval_coverage("standard"), coverage),
            (names.eval_density("standard"), 1.1),
            (names.eval_prdc_n("standard"), float(n)),
        ):
            row.update({f"{metric}_mean": mean, f"{metric}_std": 0.01, f"{metric}_ci95": 0.02, f"{metric}_n": 3})
        rows.append(row)
    return mark_best(pd.DataFrame(rows))


def test_prdc_columns_are_labelled_small_sample_below_500_a_side():
    small, large = _prdc_board(100), _prdc_board(1000)
    shown = display_frame(small)
    assert "precision/standard [n=100 < 500: small-sample]" in shown.columns
    assert "coverage/standard [n=100 < 500: small-sample]" in shown.columns
    assert not any("prdc_n" in c for c in shown.columns)  # bookkeeping, in the exports only
    assert "precision/standard [n=1000]" in display_frame(large).columns
    rec = {r["config_key"]: r for r in records(small)}
    assert rec["c0"]["metrics"][names.eval_precision("standard")]["small_sample"] is True
    assert records(large)[0]["metrics"][names.eval_coverage("standard")]["small_sample"] is False
    # higher precision and coverage are better; density has no direction
    assert list(small[f"{names.eval_precision('standard')}_vs_best"]) == ["best", "worse"]
    assert list(small[f"{names.eval_coverage('standard')}_vs_best"]) == ["best", "worse"]
    assert f"{names.eval_density('standard')}_vs_best" not in small


def test_report_pieces_kid_matrix_and_precision_recall_scatter():
    import io

    from PIL import Image

    from evaluators.plots import precision_recall_plot
    from sweep.report import precision_recall_points, sampler_matrix

    board = _prdc_board(1000)
    for sampler, kid in (("standard", 0.05), ("gmm", 0.02)):
        for metric, mean in ((names.eval_kid(sampler), kid), (names.eval_recall(sampler), 0.4)):
            board[f"{metric}_mean"], board[f"{metric}_std"], board[f"{metric}_ci95"], board[f"{metric}_n"] = mean, 0.01, 0.02, 3
    matrix = sampler_matrix(board, names.EVAL_KID_PREFIX)
    assert list(matrix.columns) == ["configuration", "gmm", "standard"] and list(matrix["configuration"]) == ["c0", "c1"]
    assert matrix.loc[0, "gmm"] == "0.02 ± 0.02 (n=3)"
    points = precision_recall_points(board)  # gmm has recall but no precision: left out
    assert points == [("c0", "standard", 0.9, 0.02, 0.4, 0.02), ("c1", "standard", 0.6, 0.02, 0.4, 0.02)]
    Image.open(io.BytesIO(precision_recall_plot(points))).verify()
    assert sampler_matrix(board, names.EVAL_FID_PREFIX) is None
