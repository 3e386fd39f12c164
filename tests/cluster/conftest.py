"""The session's real local cluster (see clusterlib): MLflow server with basic auth, Ray head + 2 workers, token auth."""

from __future__ import annotations

import os
import secrets
import subprocess
import time

import pytest
from clusterlib import ROOT, LocalCluster, free_ports


@pytest.fixture(scope="session")
def cluster(tmp_path_factory) -> LocalCluster:
    state = tmp_path_factory.mktemp("esweep-local")
    ray_port, dash_port, client_port, mlflow_port, agent_port = free_ports(5)
    password = secrets.token_urlsafe(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "MLFLOW_"))}
    env.update(
        ESWEEP_LOCAL_DIR=str(state), ESWEEP_RAY_PORT=str(ray_port), ESWEEP_DASHBOARD_PORT=str(dash_port),
        ESWEEP_RAY_CLIENT_PORT=str(client_port), ESWEEP_MLFLOW_PORT=str(mlflow_port),
        ESWEEP_AGENT_PORT=str(agent_port), ESWEEP_RAY_TEMP=f"/tmp/esweep-test-{ray_port}",
        MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD=password,
        PYTHONPATH=str(ROOT), RAY_AIR_NEW_OUTPUT="0", RAY_DEDUP_LOGS="0",
        ESWEEP_TEST_HOLD_DIR=str(state / "holds"),  # every node's trials see it: the tests' gates (clusterlib.hold)
    )
    (state / "holds").mkdir()
    c = LocalCluster(state, env, f"127.0.0.1:{ray_port}", f"http://127.0.0.1:{dash_port}",
                     f"http://127.0.0.1:{mlflow_port}", mlflow_port, "", password)
    t0 = time.monotonic()
    c.script("start-mlflow.sh")
    c.timings["mlflow_start_s"] = time.monotonic() - t0
    t0 = time.monotonic()
    try:
        c.script("start-cluster.sh")
    except subprocess.CalledProcessError as exc:
        c.script("stop-cluster.sh", check=False)
        c.script("stop-mlflow.sh", check=False)
        raise AssertionError(exc.stdout + exc.stderr) from None
    c.timings["ray_start_s"] = time.monotonic() - t0
    c.ray_token = (state / "ray-token").read_text().strip()
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(state / "ray-token"))
    mp = pytest.MonkeyPatch()  # this process reads MLflow as the admin
    mp.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    mp.setenv("MLFLOW_TRACKING_PASSWORD", password)
    print(f"\nlocal cluster up: {c.timings}")
    yield c
    mp.undo()
    c.script("stop-cluster.sh", check=False)
    c.script("stop-mlflow.sh", check=False)
