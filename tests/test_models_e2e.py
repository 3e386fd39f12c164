"""Real tiny sweeps through Ray and MLflow: every seed's model logged, then `esweep evaluate` with a new sample count
(n changes, training untouched), `esweep sample`, `encode` and `promote`; `log_model: best` and `none`."""

import html
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import torch
from browser import chromium, needs_chromium, runs_table
from click.testing import CliRunner
from PIL import Image

from evaluators import names
from sweep.cli import main
from sweep.leaderboard import leaderboard
from sweep.models import load_model
from sweep.orchestrate import run_sweep
from sweep.spec import SpecError, parse_spec
from sweep.tracking import Store, artifact_root_for
from sweep.ui import server_command, server_env

TINY_EVAL = {"fid_samples": 8, "fid_reference_size": 16, "samplers": ["standard", "gmm"], "knn": False,
             "plots": False, "crossrun": True}


def tiny(name: str, methods: list, seeds: list[int], **evaluation) -> dict:
    return {"name": name, "dataset": "mnist5k", "methods": methods, "seeds": seeds, "epochs": 1, "max_train": 200,
            "batch_size": 50, "lr": 1e-3, "evaluation": {**TINY_EVAL, **evaluation}}


@pytest.fixture(scope="module")
def sweeps(local_ray, tmp_path_factory):
    root = tmp_path_factory.mktemp("models-e2e")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    storage = str(root / "results")
    main_sweep = run_sweep(parse_spec(tiny("models", ["ae", {"name": "eae", "lambdas": [1.0]}], [0, 1])),
                           tracking_uri=uri, storage_path=storage)
    best = run_sweep(parse_spec(tiny("models-best", ["ae"], [0, 1], log_model="best")), tracking_uri=uri,
                     storage_path=storage)
    none = run_sweep(parse_spec(tiny("models-none", ["ae"], [0], log_model="none")), tracking_uri=uri,
                     storage_path=storage)
    return {"main": main_sweep, "best": best, "none": none, "uri": uri}


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_log_model_is_a_strict_choice():
    with pytest.raises(SpecError, match="evaluation.log_model: Input should be 'all', 'best' or 'none'"):
        parse_spec(tiny("x", ["ae"], [0], log_model="some"))


def test_every_seed_run_logs_a_model_listed_with_its_metrics(sweeps):
    outcome, store = sweeps["main"], Store(sweeps["uri"])
    runs = store.trial_runs(outcome.sweep_id)
    assert len(runs) == 4 and all(r.info.status == "FINISHED" for r in runs)
    experiment = runs[0].info.experiment_id
    listed = {m.model_id: m for m in store.client.search_logged_models([experiment])}
    for run in runs:
        model = listed[run.data.tags[names.T_MODEL_ID]]
        assert model.source_run_id == run.info.run_id
        carried = (names.P_METHOD, names.P_LAMBDA, names.P_MU, names.P_LATENT_DIM, names.P_DATASET, names.P_ARCH,
                   names.P_SEED, names.P_RECON, names.P_RECON_SCALE, names.P_FID_SAMPLES)
        assert {k: model.params[k] for k in carried} == {k: run.data.params[k] for k in carried}
        assert model.tags[names.T_SWEEP_ID] == outcome.sweep_id and model.tags[names.T_GIT_COMMIT]
        assert model.tags[names.T_VERSION] and model.tags[names.T_CONFIG_KEY] == run.data.tags[names.T_CONFIG_KEY]
        linked = {m.key: m.value for m in model.metrics}
        for key in (names.eval_fid("standard"), names.eval_fid("gmm"), names.EVAL_RECON_MSE):
            assert linked[key] == run.data.metrics[key]
    # the Models tab sorts them by a linked metric, as MLflow's own search does
    fid = names.eval_fid("standard")
    ordered = store.client.search_logged_models([experiment], filter_string=f"tags.`{names.T_SWEEP_ID}` = '{outcome.sweep_id}'",
                                                order_by=[{"field_name": f"metrics.{fid}", "ascending": True}])
    values = [next(m.value for m in model.metrics if m.key == fid) for model in ordered]
    assert len(values) == 4 and values == sorted(values)


def test_a_loaded_model_encodes_as_the_trial_did(sweeps):
    outcome, store = sweeps["main"], Store(sweeps["uri"])
    run = store.trial_runs(outcome.sweep_id)[0]
    loaded = load_model(run.info.run_id, sweeps["uri"])
    encodings = np.load(io.BytesIO(store.read_artifact_bytes(run.info.run_id, names.ARTIFACT_ENCODINGS)))
    from trainers.loop import cached_dataset

    test_x = cached_dataset("mnist5k", None).test_x
    # the trial encoded in its own batches (channels-last on CPU); equal up to float32 summation order
    torch.testing.assert_close(loaded.encode(test_x), torch.from_numpy(encodings["test_z"]), atol=1e-5, rtol=1e-5)
    assert torch.equal(loaded.train_z, torch.from_numpy(encodings["train_z"]))


def test_log_model_best_keeps_one_model_per_configuration_and_none_keeps_none(sweeps):
    store = Store(sweeps["uri"])
    runs = store.trial_runs(sweeps["best"].sweep_id)
    kept = [r for r in runs if r.data.tags.get(names.T_MODEL_ID)]
    assert len(runs) == 2 and len(kept) == 1
    fid = names.eval_fid("standard")  # the metric the leaderboard judges these configurations by
    _, board = leaderboard(store, sweeps["best"].sweep_id)
    from sweep.leaderboard import default_vs_best

    judged = default_vs_best(board)
    assert judged in (fid, names.eval_kid("standard"))
    assert kept[0].data.metrics[judged] == min(r.data.metrics[judged] for r in runs)
    alive = store.client.search_logged_models([runs[0].info.experiment_id],
                                              filter_string=f"tags.`{names.T_SWEEP_ID}` = '{sweeps['best'].sweep_id}'")
    assert [m.model_id for m in alive] == [kept[0].data.tags[names.T_MODEL_ID]]
    assert not any(r.data.tags.get(names.T_MODEL_ID) for r in store.trial_runs(sweeps["none"].sweep_id))


def test_sample_encode_and_interpolate_from_the_command_line(sweeps, tmp_path):
    uri, sweep_id = sweeps["uri"], sweeps["main"].sweep_id
    grid = tmp_path / "grid.png"
    out = invoke("sample", f"{sweep_id}:best", "--sampler", "gmm", "--n", "16", "-o", str(grid), "--tracking-uri", uri)
    assert out.exit_code == 0, out.output
    with Image.open(grid) as img:
        assert img.size[0] > 100 and img.size[1] > 100
    from trainers.loop import cached_dataset

    images = cached_dataset("mnist5k", None).test_x[:6].numpy()
    np.save(tmp_path / "x.npy", images)
    run_id = Store(uri).trial_runs(sweep_id)[0].info.run_id
    out = invoke("encode", run_id, str(tmp_path / "x.npy"), "-o", str(tmp_path / "codes.npy"), "--tracking-uri", uri)
    assert out.exit_code == 0, out.output
    codes = np.load(tmp_path / "codes.npy")
    assert codes.shape == (6, 8) and codes.dtype == np.float32
    assert np.array_equal(codes, load_model(run_id, uri).encode(torch.from_numpy(images)).numpy())
    for i in (0, 1):
        Image.fromarray(images[i, 0]).save(tmp_path / f"{i}.png")
    out = invoke("sample", run_id, "--interpolate", str(tmp_path / "0.png"), str(tmp_path / "1.png"), "--steps", "5",
                 "-o", str(tmp_path / "line.png"), "--tracking-uri", uri)
    assert out.exit_code == 0 and "5 images" in out.output, out.output


def test_bad_model_inputs_exit_2_naming_the_field(sweeps, tmp_path):
    uri, sweep_id = sweeps["uri"], sweeps["main"].sweep_id
    run_id = Store(uri).trial_runs(sweep_id)[0].info.run_id
    np.save(tmp_path / "rgb.npy", np.zeros((2, 3, 64, 64), np.uint8))
    out = invoke("encode", run_id, str(tmp_path / "rgb.npy"), "--tracking-uri", uri)
    assert out.exit_code == 2 and "IMAGES:" in out.output and "(N, 1, 32, 32)" in out.output
    out = invoke("sample", run_id, "--sampler", "nope", "--tracking-uri", uri)
    assert out.exit_code == 2 and "--sampler: unknown sampler 'nope'; valid samplers:" in out.output
    out = invoke("sample", "no-such-sweep:best", "--tracking-uri", uri)
    assert out.exit_code == 2 and "SWEEP: no sweep 'no-such-sweep'" in out.output
    out = invoke("sample", f"{sweeps['none'].sweep_id}:best", "--tracking-uri", uri)
    assert out.exit_code == 2 and "has no logged models" in out.output


def test_promote_registers_the_best_model_tagged_with_its_summary(sweeps):
    uri, sweep_id = sweeps["uri"], sweeps["main"].sweep_id
    out = invoke("promote", sweep_id, "--metric", names.EVAL_RECON_MSE, "--tracking-uri", uri)
    assert out.exit_code == 0, out.output
    store = Store(uri)
    (version,) = store.client.search_model_versions("name = 'esweep-models'")
    tags = version.tags
    assert tags[names.T_SWEEP_ID] == sweep_id and tags[names.T_PROMOTED_METRIC] == names.EVAL_RECON_MSE
    _, board = leaderboard(store, sweep_id)
    best_row = board.loc[board[f"{names.EVAL_RECON_MSE}_mean"].idxmin()]
    assert tags[names.T_CONFIG_KEY] == best_row["config_key"]
    assert " ± " in tags[names.T_PROMOTED_SUMMARY] and tags[names.T_PROMOTED_SUMMARY].endswith("(n=2)")
    seeds = store.trial_runs(sweep_id, best_row["config_key"])
    best_seed = min(seeds, key=lambda r: r.data.metrics[names.EVAL_RECON_MSE])
    assert tags[names.T_PROMOTED_RUN] == best_seed.info.run_id == version.run_id
    assert version.source == f"models:/{best_seed.data.tags[names.T_MODEL_ID]}"
    out = invoke("promote", sweep_id, "--metric", "no/such", "--tracking-uri", uri)
    assert out.exit_code == 2 and "--metric: unknown metric" in out.output


def test_evaluate_changes_n_without_retraining_and_skips_what_it_did(sweeps):
    uri, sweep_id = sweeps["uri"], sweeps["main"].sweep_id
    store = Store(uri)
    before = {r.info.run_id: r for r in store.trial_runs(sweep_id)}
    history = {rid: [(m.step, m.value) for m in store.client.get_metric_history(rid, names.TRAIN_LOSS)] for rid in before}
    out = invoke("evaluate", sweep_id, "--fid-samples", "12", "--samplers", "standard", "--tracking-uri", uri)
    assert out.exit_code == 0, out.output
    assert "4 model(s) evaluated, 0 already evaluated" in out.output and "[12 imgs" in out.output
    for run in store.trial_runs(sweep_id):
        assert run.data.metrics[names.eval_fid_n("standard")] == 12  # was 8
        assert run.data.metrics[names.eval_fid_n("gmm")] == 8  # not asked for: as trained
        assert [(m.step, m.value) for m in store.client.get_metric_history(run.info.run_id, names.TRAIN_LOSS)] == (
            history[run.info.run_id])  # training untouched
        provenance = json.loads(run.data.tags[names.T_EVAL_PROVENANCE])
        assert provenance["n"] == {"standard": 12} and provenance["reference"] == "16" and provenance["extractor"]
        assert run.data.params[names.P_FID_SAMPLES] == "8"  # what training's evaluation used stays recorded
        fid_history = store.client.get_metric_history(run.info.run_id, names.eval_fid_n("standard"))
        assert sorted(m.value for m in fid_history) == [8.0, 12.0]  # as trained, then re-evaluated (the newer wins)
        model = store.client.get_logged_model(run.data.tags[names.T_MODEL_ID])
        assert 12.0 in [m.value for m in model.metrics if m.key == names.eval_fid_n("standard")]
    for config in store.config_runs(sweep_id):
        assert config.data.metrics[names.eval_fid_n("standard")] == 12
        assert config.data.metrics[f"{names.eval_fid_n('standard')}_n"] == 2
        # the configuration's provenance is the evaluation's, not the training's (its params stay as trained)
        gen = json.loads(config.data.tags[names.T_GEN_PROVENANCE])
        assert gen[names.P_FID_SAMPLES] == "12" and gen[names.P_FID_REFERENCE_SIZE] == "16", gen
    board = json.loads(invoke("leaderboard", sweep_id, "--format", "json", "--tracking-uri", uri).output)
    assert all(row["provenance"][names.P_FID_SAMPLES] == "12" for row in board), board
    again = invoke("evaluate", sweep_id, "--fid-samples", "12", "--samplers", "standard", "--tracking-uri", uri)
    assert again.exit_code == 0 and "0 model(s) evaluated, 4 already evaluated" in again.output, again.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("no-such-sweep",), "SWEEP: no sweep 'no-such-sweep'"),
        (("{main}", "--metric", "nope"), "--metric: unknown metric 'nope'; valid metrics: fid, fid_inf, knn"),
        (("{main}", "--samplers", "standard,nope"), "--samplers: unknown sampler 'nope'"),
        (("{main}", "--fid-samples", "1"), "--fid-samples: must be in [2, 1000000]"),
        (("{none}",), "has no logged models to evaluate"),
    ],
)
def test_evaluate_bad_input_exits_2_naming_the_field(sweeps, args, message):
    ids = {"main": sweeps["main"].sweep_id, "none": sweeps["none"].sweep_id}
    out = invoke("evaluate", *(a.format(**ids) for a in args), "--tracking-uri", sweeps["uri"])
    assert out.exit_code == 2 and message in out.output, out.output


@needs_chromium
def test_mlflow_models_tab_in_a_real_browser_lists_every_model_with_its_metrics(sweeps, tmp_path):
    """MLflow's own UI on loopback, its experiment's Models tab rendered by headless Chromium: one row per logged
    model (the main sweep's 4 and the best-only sweep's 1), each with its run's recon MSE."""
    uri, store = sweeps["uri"], Store(sweeps["uri"])
    runs = [r for key in ("main", "best") for r in store.trial_runs(sweeps[key].sweep_id) if r.data.tags.get(names.T_MODEL_ID)]
    expected = {r.data.tags[names.T_MODEL_ID]: r.data.metrics[names.EVAL_RECON_MSE] for r in runs}
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(server_command(sys.executable, uri, port, artifact_root_for(uri)), env=server_env(),
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        url = f"http://127.0.0.1:{port}/#/experiments/{runs[0].info.experiment_id}/models"
        table = []
        for attempt in range(3):  # the app fetches the models after the page loads; a loaded machine may be late
            # wide, so ag-grid renders the metric columns rather than virtualising them away
            res = chromium(["--window-size=9000,1200", "--virtual-time-budget=20000", "--dump-dom", url],
                           tmp_path / f"profile-{attempt}")
            table = [(row, cells) for row, cells in runs_table(res.stdout) if row.startswith("m-")]
            if len(table) == len(expected):
                break
        assert {row for row, _ in table} == set(expected), res.stderr[-2000:]
        for row, cells in table:
            recon = [v for k, v in cells.items() if f'"{names.EVAL_RECON_MSE}"' in html.unescape(html.unescape(k))]
            assert recon and float(recon[0]) == pytest.approx(expected[row], rel=1e-3), cells
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        log.close()
