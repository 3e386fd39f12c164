"""Leaderboard judgement on planted configuration frames (no MLflow): which metric 'best' is judged by."""

import pandas as pd

from evaluators import names
from sweep.leaderboard import default_vs_best, mark_best


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
