"""A configuration's trials -> the summaries, counts and flags its MLflow configuration run carries (planted frames)."""

import json
import math

import pandas as pd
import pytest

from evaluators import names
from sweep.aggregate import PROVENANCE, provenance_of, settled, summarize_configuration


def _trials(rows):
    base = {"config_key": "eae__lam1__mu1__d8", "failure": "", names.P_METHOD: "eae"}
    return pd.DataFrame([{**base, **r} for r in rows])


def test_summaries_counts_and_flags_of_one_configuration():
    frame = _trials([
        {names.P_SEED: "0", "status": "FINISHED", names.EVAL_RECON_MSE: 0.095, names.TRAIN_CONVERGED: 0.0},
        {names.P_SEED: "1", "status": "FINISHED", names.EVAL_RECON_MSE: 0.028, names.TRAIN_CONVERGED: 1.0},
        {names.P_SEED: "2", "status": "FINISHED", names.EVAL_RECON_MSE: 0.030, names.TRAIN_CONVERGED: 1.0},
        {names.P_SEED: "3", "status": "FAILED", "failure": "diverged: loss became nan"},
        {names.P_SEED: "4", "status": "RUNNING"},
    ])
    metrics, tags = summarize_configuration(frame)
    assert metrics[names.SEEDS_FINISHED] == 3 and metrics[names.SEEDS_FAILED] == 1 and metrics[names.SEEDS_RUNNING] == 1
    assert metrics[names.EVAL_RECON_MSE] == pytest.approx((0.095 + 0.028 + 0.030) / 3)
    assert metrics[f"{names.EVAL_RECON_MSE}_n"] == 3 and metrics[f"{names.EVAL_RECON_MSE}_ci95"] > 0
    assert metrics[names.SEEDS_UNCONVERGED] == 1 and metrics[names.SEEDS_OUTLIERS] == 1
    assert "unconverged s0" in tags[names.T_FLAGS] and "outlier s0 (recon 3.2x median)" in tags[names.T_FLAGS]
    assert tags[names.T_FAILURE] == "diverged: loss became nan"
    assert settled(frame) == 4


def test_a_single_seed_gets_no_spread_and_no_seed_gets_only_its_count():
    metrics, _ = summarize_configuration(_trials([{names.P_SEED: "0", "status": "FINISHED", names.EVAL_ECCENTRICITY: 0.3}]))
    assert metrics[names.EVAL_ECCENTRICITY] == 0.3 and metrics[f"{names.EVAL_ECCENTRICITY}_n"] == 1
    assert f"{names.EVAL_ECCENTRICITY}_std" not in metrics and f"{names.EVAL_ECCENTRICITY}_ci95" not in metrics
    metrics, _ = summarize_configuration(_trials([{names.P_SEED: "0", "status": "FAILED", names.EVAL_ECCENTRICITY: math.nan}]))
    assert metrics[f"{names.EVAL_ECCENTRICITY}_n"] == 0 and names.EVAL_ECCENTRICITY not in metrics


def test_a_copying_seed_is_flagged_per_sampler():
    frame = _trials([
        {names.P_SEED: "0", "status": "FINISHED", names.eval_ct("standard"): -9.2, names.eval_ct("gmm"): 0.4},
        {names.P_SEED: "1", "status": "FINISHED", names.eval_ct("standard"): -1.0, names.eval_ct("gmm"): -0.3},
    ])  # fmt: skip
    _, tags = summarize_configuration(frame)
    assert tags[names.T_FLAGS] == "data-copying standard: s0 (C_T -9.2)"


def test_provenance_of_the_seeds_is_one_tag_or_mixed():
    params = {k: "v" for k in names.PROVENANCE_PARAMS}
    one = provenance_of(params)
    assert json.loads(one) == params and provenance_of({names.P_METHOD: "eae"}) == ""  # no FID, no provenance
    second = names.in_feature_space(names.P_FID_REFERENCE_STATS, "dinov2-vit-l-14")
    assert json.loads(provenance_of({**params, second: "abc", names.P_METHOD: "eae"})) == {**params, second: "abc"}
    other = provenance_of({**params, names.P_FID_REFERENCE_SPLIT: "train"})
    rows = [{names.P_SEED: str(i), "status": "FINISHED", PROVENANCE: p} for i, p in enumerate([one, one])]
    assert summarize_configuration(_trials(rows))[1][names.T_GEN_PROVENANCE] == one
    rows[1][PROVENANCE] = other
    mixed = summarize_configuration(_trials(rows))[1][names.T_GEN_PROVENANCE]
    assert mixed.startswith("mixed: ") and len(json.loads(mixed.removeprefix("mixed: "))) == 2
