"""Logged models behind deploy/local's authenticated MLflow server (basic auth, proxied artifacts, on loopback): a
model logged over HTTP loads back bitwise equal, `esweep encode` reads it, and a wrong password is refused."""

from __future__ import annotations

import os
import secrets
import subprocess

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from clusterlib import LOCAL, free_ports

from evaluators import names
from sweep.cli import main
from sweep.models import load_model, log_trial_model
from sweep.tracking import Store
from trainers.config import TrainConfig
from trainers.loop import train


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    state = tmp_path_factory.mktemp("esweep-models-server")
    (port,) = free_ports(1)
    password = secrets.token_urlsafe(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "MLFLOW_"))}
    env.update(ESWEEP_LOCAL_DIR=str(state), ESWEEP_MLFLOW_PORT=str(port), MLFLOW_TRACKING_USERNAME="admin",
               MLFLOW_TRACKING_PASSWORD=password)
    subprocess.run(["bash", str(LOCAL / "start-mlflow.sh")], env=env, check=True, timeout=240, capture_output=True)
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    mp.setenv("MLFLOW_TRACKING_PASSWORD", password)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        mp.undo()
        subprocess.run(["bash", str(LOCAL / "stop-mlflow.sh")], env=env, timeout=120)


def test_a_model_logged_to_the_server_loads_back_bitwise_equal(server, tmp_path, monkeypatch):
    result = train(TrainConfig(method="ae", dataset="mnist5k", latent_dim=6, seed=1, epochs=1, max_train=200,
                               batch_size=50))
    store = Store(server)
    run_id = store.client.create_run(store.experiment_id()).info.run_id
    store.log_params(run_id, {names.P_METHOD: "ae", names.P_LATENT_DIM: "6"})
    store.log_metrics(run_id, {names.EVAL_RECON_MSE: 0.04}, step=1)
    model_id = log_trial_model(store, run_id, result, 1, {names.T_SWEEP_ID: "server"})
    assert store.client.get_logged_model(model_id).artifact_location.startswith("mlflow-artifacts:")
    x = result.data.test_x[:32]
    with torch.no_grad():
        expected = result.model.cpu().eval().encode(x.float() / 255.0)
    for ref in (run_id, f"models:/{model_id}"):
        assert torch.equal(load_model(ref, server).encode(x), expected)
    np.save(tmp_path / "x.npy", x.numpy())
    out = CliRunner().invoke(main, ["encode", run_id, str(tmp_path / "x.npy"), "-o", str(tmp_path / "z.npy"),
                                    "--tracking-uri", server])
    assert out.exit_code == 0, out.output
    assert np.array_equal(np.load(tmp_path / "z.npy"), expected.numpy())
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong")
    with pytest.raises(Exception, match="401|Unauthorized|credentials"):
        load_model(run_id, server)
