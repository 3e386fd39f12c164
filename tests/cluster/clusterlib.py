"""Helpers for the cluster tests: deploy/local's scripts start an MLflow server (sqlite, basic auth)
and a Ray head plus two 1-CPU worker nodes on 127.0.0.1 with token auth; drivers run as `esweep` subprocesses."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil  # Ray's own copy, importable once ray is (conftest imports it)
import yaml

from evaluators import names
from sweep.tracking import Store
from sweep.trainable import HOLD_DIR_ENV

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / "deploy" / "local"
ESWEEP = ["esweep"]
PER_EPOCH_KEYS = ("epoch", names.TRAIN_LOSS, names.TRAIN_RECON, names.TRAIN_REG, names.TRAIN_EPOCH_TIME,
                  names.TRAIN_IMAGES_PER_S)
NO_EVAL = {"fid_samples": 0, "knn": False, "plots": False, "crossrun": False}


def free_ports(n: int) -> list[int]:
    """Ports outside Ray's worker range (10002-19999) and the ephemeral range, free right now."""
    ports: list[int] = []
    while len(ports) < n:
        port = random.randint(20000, 29900)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        if port not in ports and port + 1 not in ports and port + 2 not in ports:
            ports.append(port)
    return ports


@dataclass
class LocalCluster:
    state: Path
    env: dict[str, str]
    ray_address: str
    jobs_address: str
    mlflow_uri: str
    mlflow_port: int
    ray_token: str
    password: str
    timings: dict[str, float] = field(default_factory=dict)

    def script(self, name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(LOCAL / name), *args], env=self.env, cwd=self.state,
                              capture_output=True, text=True, check=check, timeout=300)

    @property
    def holds(self) -> Path:
        return Path(self.env[HOLD_DIR_ENV])

    def hold(self, trial_key: str, epoch: int) -> None:
        """Stop the trial ``trial_key`` once it has reported ``epoch`` (and checkpointed it), until released."""
        (self.holds / f"{trial_key}.held").unlink(missing_ok=True)
        self.hold_again(trial_key, epoch)

    def hold_again(self, trial_key: str, epoch: int) -> None:
        """Move the trial's hold to a later ``epoch``: a trial waiting at the earlier one goes on to this one."""
        tmp = self.holds / f"{trial_key}.hold.tmp"
        tmp.write_text(str(epoch))
        tmp.replace(self.holds / f"{trial_key}.hold")

    def held_pid(self, trial_key: str, epoch: int | None = None) -> int | None:
        """The pid of the trial process waiting at its hold (at ``epoch``, if given), once it waits."""
        path = self.holds / f"{trial_key}.held"
        if not path.exists():
            return None
        pid, held_at = map(int, path.read_text().split())
        return pid if epoch is None or held_at == epoch else None

    def release(self, *trial_keys: str) -> None:
        for key in trial_keys:
            (self.holds / f"{key}.hold").unlink(missing_ok=True)

    def store(self) -> Store:
        return Store(self.mlflow_uri)

    def driver(self, *args: str, cwd: Path, **kwargs) -> subprocess.Popen:
        """`esweep ARGS` as a detached subprocess with the cluster's environment."""
        log = open(cwd / f"driver-{time.monotonic_ns()}.log", "w")  # noqa: SIM115 - closed with the process
        return subprocess.Popen([*ESWEEP, *args], env=self.env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, text=True, **kwargs)

    def run_sweep(self, spec: Path, storage: Path, timeout: float = 240, extra: tuple[str, ...] = ()) -> Sweep:
        proc = self.driver("run", str(spec), "--address", self.ray_address, "--tracking-uri", self.mlflow_uri,
                           "--storage-path", str(storage), *extra, cwd=spec.parent)
        proc.wait(timeout=timeout)
        return Sweep.find(self, storage, proc)


@dataclass
class Sweep:
    cluster: LocalCluster
    sweep_id: str
    storage: Path
    returncode: int | None

    @classmethod
    def find(cls, cluster: LocalCluster, storage: Path, proc: subprocess.Popen | None = None) -> Sweep:
        dirs = [p for p in storage.iterdir() if p.is_dir()]
        assert len(dirs) == 1, f"expected one experiment in {storage}: {dirs}"
        return cls(cluster, dirs[0].name, storage, None if proc is None else proc.returncode)

    def runs(self) -> dict[str, object]:
        runs = self.cluster.store().trial_runs(self.sweep_id)
        keys = [r.data.tags[names.T_TRIAL_KEY] for r in runs]
        assert len(keys) == len(set(keys)), f"duplicate MLflow runs: {sorted(keys)}"
        return {r.data.tags[names.T_TRIAL_KEY]: r for r in runs}

    def ray_statuses(self) -> dict[str, str]:
        store = self.cluster.store()
        parent = store.sweep_run(self.sweep_id)
        path = store.client.download_artifacts(parent.info.run_id, "trial_statuses.json", str(self.storage))
        return json.loads(Path(path).read_text())

    def steps(self, run_id: str, key: str) -> list[int]:
        return sorted(m.step for m in self.cluster.store().client.get_metric_history(run_id, key))

    def results(self, key: str) -> list[dict]:
        """The trial's rows in Tune's result.json (every tune.report, across restarts)."""
        (trial_dir,) = [p for p in (self.storage / self.sweep_id).iterdir() if p.name.startswith(key + "_")]
        return [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines() if line.strip()]

    def assert_no_orphans(self) -> None:
        """R8: no run of this sweep left RUNNING once its driver is done."""
        running = [k for k, r in self.runs().items() if r.info.status == "RUNNING"]
        assert running == [], f"runs left RUNNING: {running}"
        assert self.cluster.store().sweep_run(self.sweep_id).info.status == "FINISHED"


def write_spec(folder: Path, name: str, **fields) -> Path:
    spec = {
        "name": name, "dataset": "digits", "arch": "mlp-small", "methods": ["ae"], "latent_dims": [4],
        "seeds": [0], "epochs": 6, "batch_size": 50, "max_train": 300, "lr": 1e-3, "device": "cpu",
        "resources": {"cpu": 1}, "max_failures": 2, "evaluation": NO_EVAL, **fields,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def wait_for(predicate, timeout: float, what: str, interval: float = 0.3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def kill_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
