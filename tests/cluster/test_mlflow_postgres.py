"""deploy/local/start-mlflow.sh with ESWEEP_MLFLOW_BACKEND=postgres: MLflow on a private PostgreSQL cluster."""

from __future__ import annotations

import glob
import importlib.util
import os
import secrets
import subprocess
import tempfile

import pytest
from clusterlib import LOCAL, free_ports

from sweep.tracking import Store

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not glob.glob("/usr/lib/postgresql/*/bin/initdb"), reason="Debian's postgresql not installed"),
    pytest.mark.skipif(importlib.util.find_spec("psycopg2") is None, reason="pip install psycopg2-binary"),
]


def test_mlflow_on_postgres_records_metrics(monkeypatch):
    state = tempfile.mkdtemp(prefix="esweep-pg-", dir="/tmp")  # postgres (another user) must reach it
    os.chmod(state, 0o755)
    mlflow_port, pg_port = free_ports(2)
    password = secrets.token_urlsafe(16)
    env = {**os.environ, "ESWEEP_LOCAL_DIR": state, "ESWEEP_MLFLOW_PORT": str(mlflow_port),
           "ESWEEP_PG_PORT": str(pg_port), "ESWEEP_MLFLOW_BACKEND": "postgres",
           "MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": password}
    subprocess.run(["bash", str(LOCAL / "start-mlflow.sh")], env=env, check=True, timeout=240)
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
        store = Store(f"http://127.0.0.1:{mlflow_port}")
        run_id = store.client.create_run(store.experiment_id()).info.run_id
        for step in range(1, 4):
            store.log_metrics(run_id, {"train/loss": 1.0 / step}, step)
        rows = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(pg_port), "-U", "mlflow", "-d", "mlflow", "-tAc",
                               f"SELECT count(*) FROM metrics WHERE run_uuid = '{run_id}'"],
                              capture_output=True, text=True, check=True).stdout.strip()
        assert rows == "3"
    finally:
        subprocess.run(["bash", str(LOCAL / "stop-mlflow.sh")], env=env, timeout=120)
