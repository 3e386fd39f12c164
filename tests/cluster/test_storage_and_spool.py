"""No cluster needed: storage URIs, and the metric spool that carries a trial through an MLflow outage."""

from __future__ import annotations

import json
from pathlib import Path

from mlflow.tracking import MlflowClient

from sweep.cluster import resolve_storage, storage_join
from sweep.tracking import Store


def test_remote_storage_uris_pass_through_and_local_ones_resolve(tmp_path, monkeypatch):
    for uri in ("s3://bucket/sweeps", "s3://bucket/a/../b", "gs://b/x", "file:///mnt/nfs/r"):
        assert resolve_storage(uri) == uri
    monkeypatch.chdir(tmp_path)
    assert resolve_storage("results") == str(tmp_path / "results")
    assert resolve_storage("~/r") == str(Path.home() / "r")
    assert storage_join("s3://bucket/sweeps/", "s-1") == "s3://bucket/sweeps/s-1"
    assert storage_join(str(tmp_path), "s-1") == str(tmp_path / "s-1")


def test_unreachable_server_spools_then_the_next_call_delivers_in_order(tmp_path, monkeypatch):
    for var, value in (("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1"), ("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1"),
                       ("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")):
        monkeypatch.setenv(var, value)  # what Store would set for an http URI, but undone after the test
    spool = tmp_path / "trial" / "mlflow-spool.jsonl"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    good = Store(uri)
    run_id = good.client.create_run(good.experiment_id()).info.run_id

    store = Store("http://127.0.0.1:9", spool_path=spool)  # nothing listens on port 9
    for step in (1, 2):
        store.log_metrics(run_id, {"train/loss": float(step), "epoch": float(step)}, step=step)  # no raise
    assert [json.loads(ln)["metrics"][0][3] for ln in spool.read_text().splitlines()] == [1, 2]

    store.client = MlflowClient(uri)  # the server is back
    store.log_metrics(run_id, {"train/loss": 3.0, "epoch": 3.0}, step=3)
    assert not spool.exists()
    history = good.client.get_metric_history(run_id, "train/loss")
    assert sorted((m.step, m.value) for m in history) == [(1, 1.0), (2, 2.0), (3, 3.0)]
    store.finish(run_id)
