"""Security on the real local cluster: MLflow refuses every route without credentials, Ray's Jobs API refuses
requests without the token, and artifact names that could escape their folder are rejected before any write."""

from __future__ import annotations

import subprocess

import pytest
import requests
from clusterlib import write_spec

from sweep.tracking import UnsafeNameError

MLFLOW_ROUTES = [  # REST (api and ajax-api), artifact proxy, auth admin and UI routes
    ("GET", "/api/2.0/mlflow/experiments/search?max_results=10"),
    ("POST", "/api/2.0/mlflow/experiments/create"),
    ("GET", "/api/2.0/mlflow/experiments/get-by-name?experiment_name=esweep"),
    ("POST", "/api/2.0/mlflow/runs/create"),
    ("POST", "/api/2.0/mlflow/runs/search"),
    ("GET", "/api/2.0/mlflow/runs/get?run_id=0"),
    ("POST", "/api/2.0/mlflow/runs/log-batch"),
    ("POST", "/api/2.0/mlflow/runs/delete"),
    ("GET", "/api/2.0/mlflow/metrics/get-history?run_id=0&metric_key=train/loss"),
    ("GET", "/api/2.0/mlflow/artifacts/list?run_id=0"),
    ("GET", "/api/2.0/mlflow/registered-models/search"),
    ("GET", "/ajax-api/2.0/mlflow/experiments/search?max_results=10"),
    ("GET", "/api/2.0/mlflow-artifacts/artifacts"),
    ("PUT", "/api/2.0/mlflow-artifacts/artifacts/0/x.txt"),
    ("GET", "/get-artifact?path=spec.yaml&run_uuid=0"),
    ("GET", "/api/2.0/mlflow/users/get?username=admin"),
    ("POST", "/api/2.0/mlflow/users/create"),
    ("GET", "/"),
    ("GET", "/#/experiments/0"),
    ("GET", "/signup"),
]
TRAVERSAL = ["../evil.txt", "a/../../evil.txt", "%2e%2e/evil.txt", "%252e%252e/evil.txt", "..%2fevil.txt",
             "/etc/evil.txt", "..\\evil.txt", "a\\..\\..\\evil.txt", "C:\\evil.txt", "./evil.txt", ""]


@pytest.mark.parametrize(("method", "route"), MLFLOW_ROUTES)
def test_mlflow_refuses_every_route_without_credentials(cluster, method, route):
    url = f"http://127.0.0.1:{cluster.mlflow_port}{route}"
    assert requests.request(method, url, timeout=30).status_code == 401
    assert requests.request(method, url, auth=("admin", "wrong-password"), timeout=30).status_code == 401


def test_mlflow_answers_with_credentials(cluster):
    url = f"http://127.0.0.1:{cluster.mlflow_port}/api/2.0/mlflow/experiments/search?max_results=10"
    assert requests.get(url, auth=("admin", cluster.password), timeout=30).status_code == 200


def test_mlflow_refuses_a_foreign_host_header(cluster):
    """--allowed-hosts: a DNS-rebinding request (Host: evil.example) is refused even with credentials."""
    url = f"http://127.0.0.1:{cluster.mlflow_port}/api/2.0/mlflow/experiments/search?max_results=10"
    r = requests.get(url, auth=("admin", cluster.password), headers={"Host": "evil.example"}, timeout=30)
    assert r.status_code in (400, 403)


@pytest.mark.parametrize("route", ["/api/jobs/", "/api/version", "/api/cluster_status", "/nodes?view=summary"])
def test_ray_jobs_api_refuses_requests_without_the_token(cluster, route):
    url = f"{cluster.jobs_address}{route}"
    assert requests.get(url, timeout=30).status_code == 401
    assert requests.get(url, headers={"Authorization": "Bearer not-the-token"}, timeout=30).status_code == 403
    if route == "/api/jobs/":
        ok = requests.get(url, headers={"Authorization": f"Bearer {cluster.ray_token}"}, timeout=30)
        assert ok.status_code == 200


def test_esweep_jobs_without_the_token_is_refused(cluster):
    env = {k: v for k, v in cluster.env.items() if not k.startswith("RAY_AUTH")}
    env["RAY_AUTH_MODE"] = "disabled"
    out = subprocess.run(["esweep", "jobs", "--address", cluster.jobs_address], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2 and "token authentication is enabled" in out.stderr, out.stderr[-500:]


@pytest.mark.parametrize("name", TRAVERSAL)
def test_traversal_artifact_names_rejected_before_any_write(cluster, tmp_path, name):
    store = cluster.store()
    run = store.client.create_run(store.experiment_id("security"))
    artifacts = cluster.state / "mlartifacts"
    before = sorted(p for p in artifacts.rglob("*")) if artifacts.exists() else []
    with pytest.raises(UnsafeNameError):
        store.log_artifact_bytes(run.info.run_id, name, b"x")
    after = sorted(p for p in artifacts.rglob("*")) if artifacts.exists() else []
    assert after == before
    assert store.client.list_artifacts(run.info.run_id) == []
    assert not (cluster.state / "evil.txt").exists() and not (cluster.state.parent / "evil.txt").exists()
    store.client.set_terminated(run.info.run_id)


def test_multi_node_sweep_refuses_a_local_mlflow_store(cluster, tmp_path):
    """Three alive nodes and a sqlite store: exit 2 naming --tracking-uri, before any run or trial."""
    spec = write_spec(tmp_path, "local-store")
    proc = cluster.driver("run", str(spec), "--address", cluster.ray_address, cwd=tmp_path)
    assert proc.wait(timeout=120) == 2
    log = next(tmp_path.glob("driver-*.log")).read_text()
    assert "--tracking-uri" in log and "3 nodes" in log
    assert not (tmp_path / "esweep-results").exists() and not (tmp_path / "mlflow.db").exists()
