"""The slower cluster tests (--runslow): a worker node removed mid-sweep (R2), the MLflow server down for 20 s
(R4), 8 trials logging at once (R7), and a sweep submitted as a Ray Job; R8 checked after each."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import psutil
import pytest
from clusterlib import PER_EPOCH_KEYS, Sweep, alive, kill_group, wait_for, write_spec

from sweep.tracking import SPOOL_FILE

pytestmark = pytest.mark.slow


def _rows(storage):
    """Per trial-folder name, its Tune result rows so far."""
    out = {}
    for path in storage.glob("*/*/result.json"):
        out[path.parent.name] = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
    return out


def _assert_exact(sweep: Sweep, epochs: int) -> int:
    rows = 0
    for run in sweep.runs().values():
        assert run.info.status == "FINISHED"
        for key in PER_EPOCH_KEYS:
            steps = sweep.steps(run.info.run_id, key)
            assert steps == list(range(1, epochs + 1)), (run.data.tags, key, steps)
            rows += len(steps)
    return rows


def _start_driver(cluster, spec, storage, folder):
    return cluster.driver("run", str(spec), "--address", cluster.ray_address, "--tracking-uri", cluster.mlflow_uri,
                          "--storage-path", str(storage), cwd=folder)


def test_r2_worker_node_removed_mid_sweep_its_trials_finish_on_the_other(cluster, tmp_path):
    epochs = 16
    keys = ["ae__lam-__mu-__d4__s0", "eae__lam0.01__mu1__d4__s0"]
    spec = write_spec(tmp_path, "nodeloss", methods=["ae", {"name": "eae", "lambdas": [0.01]}], epochs=epochs,
                      max_failures=3)
    storage = tmp_path / "results"
    for key in keys:  # both wait after epoch 3, one on each worker, until the node is gone
        cluster.hold(key, 3)
    node_pid = int((cluster.state / "worker1.pid").read_text())  # `ray start --block`, leader of the node's session
    # no graceful drain (Ray's default keeps a SIGTERMed node's trials running 30 s, time enough to finish there)
    assert psutil.Process(node_pid).environ().get("RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S") == "0"
    t0 = time.monotonic()
    proc = _start_driver(cluster, spec, storage, tmp_path)
    try:
        held = wait_for(lambda: all(map(cluster.held_pid, keys)) and {k: cluster.held_pid(k) for k in keys}, 180,
                        "both trials waiting after epoch 3")
        on_node = [k for k, pid in held.items() if os.getsid(pid) == node_pid]
        assert len(on_node) == 1, f"expected one trial on worker1 (session {node_pid}): {held}"
        t_stop = time.monotonic()
        cluster.script("stop-node.sh", "worker1")
        stop_s, removed_at = time.monotonic() - t_stop, time.monotonic() - t0
        assert not alive(held[on_node[0]]), f"trial pid {held[on_node[0]]} outlived its node"
        survivors = [p.pid for p in psutil.process_iter() if _session(p) == node_pid]
        assert survivors == [], f"processes of the removed node still running: {survivors}"
        cluster.release(*keys)
        assert proc.wait(timeout=300) == 0
    finally:
        cluster.release(*keys)
        kill_group(proc)
        cluster.script("start-worker.sh", "1")
    sweep = Sweep.find(cluster, storage, proc)
    assert set(sweep.ray_statuses().values()) == {"TERMINATED"}
    rows_by_folder = _rows(storage)
    pids = {k: {r["pid"] for name, rows in rows_by_folder.items() if name.startswith(k + "_") for r in rows}
            for k in keys}
    moved = {k for k in keys if pids[k] - {held[k]}}
    assert moved == set(on_node)  # the trial on the removed node restarted elsewhere; the other ran on
    rows = _assert_exact(sweep, epochs)
    sweep.assert_no_orphans()
    print(f"\nR2: worker1 (pid {node_pid}) removed at {removed_at:.1f} s (stop-node.sh took {stop_s:.1f} s) with "
          f"{on_node[0]} (pid {held[on_node[0]]}) on it; it finished as pid(s) {sorted(pids[on_node[0]] - {held[on_node[0]]})}"
          f"; the other ran on as pid {held[next(k for k in keys if k not in on_node)]}; sweep "
          f"{time.monotonic() - t0:.1f} s; {rows} per-epoch rows, exact")


def _session(proc) -> int | None:
    try:
        return os.getsid(proc.pid)
    except OSError:
        return None


def test_r4_mlflow_down_20s_metrics_spooled_and_delivered(cluster, tmp_path):
    epochs = 40
    keys = ["ae__lam-__mu-__d4__s0", "eae__lam0.01__mu1__d4__s0"]
    spec = write_spec(tmp_path, "outage", methods=["ae", {"name": "eae", "lambdas": [0.01]}], epochs=epochs,
                      max_train=200)
    storage = tmp_path / "results"
    for key in keys:  # both wait after epoch 2 until the server is down: the outage starts mid-run on any speed
        cluster.hold(key, 2)
    t0 = time.monotonic()
    proc = _start_driver(cluster, spec, storage, tmp_path)
    ray_temp = Path(cluster.env["ESWEEP_RAY_TEMP"])  # trial dirs live under each node's temp dir

    def spool_files():
        return [p for d in [storage, *ray_temp.parent.glob(ray_temp.name + "*")] for p in d.rglob(SPOOL_FILE)]

    try:
        wait_for(lambda: all(map(cluster.held_pid, keys)), 180, "both trials waiting after epoch 2")
        cluster.script("stop-mlflow.sh")
        down = time.monotonic()
        epochs_before = _epochs(storage)
        for key in keys:  # on they go, to wait again at epoch 30 until the server is back: a trial ending (its
            cluster.hold_again(key, 30)  # evaluation, its run closed) with no server for minutes would fail
        spooled: list[Path] = []

        def outage_seen():  # at least 20 s down, and long enough to see training go on and a batch spooled
            spooled.extend(spool_files())
            return time.monotonic() - down >= 20 and spooled and _epochs(storage) > epochs_before

        wait_for(outage_seen, 180, "an epoch trained and a batch spooled while MLflow is down", interval=1)
        epochs_while_down, down_s = _epochs(storage) - epochs_before, time.monotonic() - down
        cluster.script("start-mlflow.sh")
        cluster.release(*keys)
        assert proc.wait(timeout=300) == 0
    finally:
        cluster.release(*keys)
        kill_group(proc)
    sweep = Sweep.find(cluster, storage, proc)
    rows = _assert_exact(sweep, epochs)
    assert not any(p.exists() for p in spooled)  # delivered and removed
    sweep.assert_no_orphans()
    print(f"\nR4: MLflow down {down_s:.0f} s; {epochs_while_down} epochs trained meanwhile, spooled in "
          f"{len(set(spooled))} file(s); {rows} per-epoch rows after, exact; sweep {time.monotonic() - t0:.1f} s")


def _epochs(storage) -> int:
    return sum(len(r) for r in _rows(storage).values())


def test_r7_eight_trials_logging_at_once_row_counts_exact(cluster, tmp_path):
    epochs = 5
    spec = write_spec(tmp_path, "burst", methods=["ae", {"name": "eae", "lambdas": [0.001, 0.01, 0.1]}],
                      seeds=[0, 1], epochs=epochs, resources={"cpu": 0.25}, max_train=200)
    t0 = time.monotonic()
    sweep = cluster.run_sweep(spec, tmp_path / "results", timeout=400)
    took = time.monotonic() - t0
    runs = sweep.runs()
    assert len(runs) == 8 and set(sweep.ray_statuses().values()) == {"TERMINATED"}
    rest_rows = _assert_exact(sweep, epochs)  # through the server's REST get-history
    with sqlite3.connect(cluster.state / "mlflow.db") as db:  # and straight from the backing store
        marks = ",".join("?" * len(PER_EPOCH_KEYS))
        ids = [r.info.run_id for r in runs.values()]
        (db_rows,) = db.execute(
            f"SELECT COUNT(*) FROM metrics WHERE run_uuid IN ({','.join('?' * len(ids))}) AND key IN ({marks})",
            [*ids, *PER_EPOCH_KEYS]).fetchone()
    assert rest_rows == db_rows == 8 * epochs * len(PER_EPOCH_KEYS)
    sweep.assert_no_orphans()
    print(f"\nR7: 8 trials x {epochs} epochs x {len(PER_EPOCH_KEYS)} keys = {db_rows} rows (REST {rest_rows}, "
          f"sqlite {db_rows}); sweep {took:.1f} s")


def test_submit_as_ray_job_then_jobs_logs_and_stop(cluster, tmp_path):
    spec = write_spec(tmp_path, "jobbed", methods=["ae"], epochs=3)
    cli = ["--address", cluster.jobs_address]
    t0 = time.monotonic()
    out = cluster.driver("submit", str(spec), *cli, "--tracking-uri", cluster.mlflow_uri,
                         "--storage-path", str(tmp_path / "results"), cwd=tmp_path)
    assert out.wait(timeout=120) == 0
    job_id = sorted(tmp_path.glob("driver-*.log"))[-1].read_text().strip().splitlines()[-1]
    assert job_id.startswith("esweep-jobbed-")

    def status():
        proc = cluster.driver("jobs", *cli, cwd=tmp_path)
        proc.wait(timeout=120)
        line = next(ln for ln in sorted(tmp_path.glob("driver-*.log"))[-1].read_text().splitlines()
                    if ln.startswith(job_id))
        return line.split()[1]

    wait_for(lambda: status() in ("SUCCEEDED", "FAILED"), 300, "the job to end", interval=3)
    assert status() == "SUCCEEDED"
    logs = cluster.driver("logs", job_id, *cli, cwd=tmp_path)
    logs.wait(timeout=120)
    assert "finished in" in sorted(tmp_path.glob("driver-*.log"))[-1].read_text()
    sweep = Sweep.find(cluster, tmp_path / "results")
    sweep.assert_no_orphans()
    took = time.monotonic() - t0

    long_spec = write_spec(tmp_path, "stopped", methods=["ae"], epochs=500)
    out = cluster.driver("submit", str(long_spec), *cli, "--tracking-uri", cluster.mlflow_uri,
                         "--storage-path", str(tmp_path / "stopped"), cwd=tmp_path)
    assert out.wait(timeout=120) == 0
    job_id = sorted(tmp_path.glob("driver-*.log"))[-1].read_text().strip().splitlines()[-1]
    wait_for(lambda: status() == "RUNNING", 120, "the second job to run", interval=3)
    stop = cluster.driver("stop", job_id, *cli, cwd=tmp_path)
    assert stop.wait(timeout=120) == 0
    wait_for(lambda: status() == "STOPPED", 120, "the job to stop", interval=3)
    print(f"\nsubmit: job SUCCEEDED, logs and jobs read back in {took:.1f} s; a second job STOPPED")
