"""Fault tolerance on a real local cluster: a killed trial worker (R1), a diverged trial (R5), a killed driver
and `esweep resume` (R3); after each, no MLflow run is left RUNNING (R8)."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from clusterlib import PER_EPOCH_KEYS, Sweep, alive, kill_group, wait_for, write_spec

from evaluators import names
from sweep.cleanup import ORPHAN_STATUS

EPOCHS = 10
# each fault lands while a trial waits at a hold (clusterlib.LocalCluster.hold) after this epoch: a state the test
# chose, whatever the machine's speed (polling for an epoch and then killing once raced a trial that finished between)
HELD_AT = 3
VICTIM = "ae__lam-__mu-__d4__s0"
DIVERGED = "eae__lam1e+300__mu1__d4__s0"  # 1e38 stays finite on digits/mlp-small; 1e300 overflows


@pytest.fixture(scope="module")
def faulty_sweep(cluster, tmp_path_factory):
    """One sweep, two faults: the ae trial's worker is SIGKILLed while it waits after epoch 3; eae at lambda 1e300
    diverges."""
    folder = tmp_path_factory.mktemp("faults")
    spec = write_spec(folder, "faults", methods=["ae", {"name": "eae", "lambdas": [0.01, 1e300]}], epochs=EPOCHS)
    storage = folder / "results"
    cluster.hold(VICTIM, HELD_AT)
    t0 = time.monotonic()
    proc = cluster.driver("run", str(spec), "--address", cluster.ray_address, "--tracking-uri", cluster.mlflow_uri,
                          "--storage-path", str(storage), cwd=folder)
    try:
        pid = wait_for(lambda: cluster.held_pid(VICTIM), 180, f"the ae trial to wait after epoch {HELD_AT}")
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic() - t0
        wait_for(lambda: not alive(pid), 30, f"the killed trial (pid {pid}) to go")
        cluster.release(VICTIM)  # the restarted trial would not wait again (a hold is used once); tidy all the same
        proc.wait(timeout=240)
    finally:
        cluster.release(VICTIM)
        kill_group(proc)
    sweep = Sweep.find(cluster, storage, proc)
    print(f"\nR1/R5 sweep: killed pid {pid} at {killed_at:.1f} s, sweep {time.monotonic() - t0:.1f} s")
    return sweep, pid


def test_r1_killed_worker_resumes_from_its_last_checkpoint(faulty_sweep):
    sweep, killed_pid = faulty_sweep
    rows = sweep.results(VICTIM)
    before = [r["epoch"] for r in rows if r["pid"] == killed_pid]
    after = [r for r in rows if r["pid"] != killed_pid and names.EVAL_WALL_TIME not in r]  # not the final report
    assert max(before) == HELD_AT, f"the kill landed elsewhere than at the hold: {before}"
    assert after, rows
    # restarted from a checkpoint, not from scratch, with no epoch skipped: from the last reported epoch's, or (1 run
    # in 4 here, the kill landing while Tune had not yet registered that report's checkpoint) an earlier one
    assert 1 < after[0]["epoch"] <= max(before) + 1, (before, [r["epoch"] for r in after])
    assert [r["epoch"] for r in after] == list(range(int(after[0]["epoch"]), EPOCHS + 1))
    assert sweep.ray_statuses()[VICTIM] == "TERMINATED"
    run = sweep.runs()[VICTIM]  # one run per trial: runs() fails on duplicates
    assert run.info.status == "FINISHED"
    for key in PER_EPOCH_KEYS:  # every step once: none lost with the worker, none replayed
        assert sweep.steps(run.info.run_id, key) == list(range(1, EPOCHS + 1)), key
    print(f"R1: killed after epoch {int(max(before))}, resumed at epoch {int(after[0]['epoch'])}; "
          f"{len(PER_EPOCH_KEYS) * EPOCHS} per-epoch rows, each step once")


def test_r5_only_the_diverged_trial_fails_with_its_reason(faulty_sweep):
    sweep, _ = faulty_sweep
    statuses = sweep.ray_statuses()
    assert statuses == {VICTIM: "TERMINATED", "eae__lam0.01__mu1__d4__s0": "TERMINATED", DIVERGED: "ERROR"}
    runs = sweep.runs()
    assert {k: r.info.status for k, r in runs.items()} == {
        VICTIM: "FINISHED", "eae__lam0.01__mu1__d4__s0": "FINISHED", DIVERGED: "FAILED"}
    assert runs[DIVERGED].data.tags[names.T_FAILURE].startswith("diverged: loss became")
    assert sweep.returncode == 0  # some trials finished


def test_r8_no_run_left_running_after_faults(faulty_sweep):
    sweep, _ = faulty_sweep
    sweep.assert_no_orphans()


def test_r3_driver_killed_then_resume_completes_without_duplicates(cluster, tmp_path):
    spec = write_spec(tmp_path, "resume", methods=["ae", {"name": "eae", "lambdas": [0.01, 0.1]}], epochs=EPOCHS)
    storage = tmp_path / "results"
    cluster.hold(VICTIM, HELD_AT)  # the ae trial waits mid-run while the two eae trials finish on the other CPU
    t0 = time.monotonic()
    proc = cluster.driver("run", str(spec), "--address", cluster.ray_address, "--tracking-uri", cluster.mlflow_uri,
                          "--storage-path", str(storage), cwd=tmp_path)
    store = cluster.store()

    def two_finished_one_held():
        if cluster.held_pid(VICTIM) is None or not storage.exists() or not any(storage.iterdir()):
            return None
        sweep = Sweep.find(cluster, storage)
        done = [r for r in store.trial_runs(sweep.sweep_id) if r.info.status == "FINISHED"]
        return sweep if len(done) == 2 and _tune_saw_terminated(storage / sweep.sweep_id) >= 2 else None

    try:
        sweep = wait_for(two_finished_one_held, 240, "two trials finished and the third waiting mid-run")
        held_pid = cluster.held_pid(VICTIM)
        proc.send_signal(signal.SIGKILL)  # the driver alone: its trials die with it, as the job ends
        proc.wait(timeout=30)
        wait_for(lambda: not alive(held_pid), 60, f"the dead driver's trial (pid {held_pid}) to go")
    finally:
        cluster.release(VICTIM)
        kill_group(proc)
    killed_at = time.monotonic() - t0
    runs = sweep.runs()
    finished = {k: (r.info.end_time, sweep.steps(r.info.run_id, names.TRAIN_LOSS))
                for k, r in runs.items() if r.info.status == "FINISHED"}
    interrupted = [k for k, r in runs.items() if r.info.status == "RUNNING"]
    assert sorted(finished) == sorted(k for k in runs if k != VICTIM) and interrupted == [VICTIM]
    assert sweep.steps(runs[VICTIM].info.run_id, names.TRAIN_LOSS) == list(range(1, HELD_AT + 1))

    t1 = time.monotonic()
    resume = cluster.driver("resume", sweep.sweep_id, "--address", cluster.ray_address,
                            "--tracking-uri", cluster.mlflow_uri, cwd=tmp_path)
    try:
        assert resume.wait(timeout=240) == 0
    finally:
        kill_group(resume)
    resumed_in = time.monotonic() - t1

    assert set(sweep.ray_statuses().values()) == {"TERMINATED"} and len(sweep.ray_statuses()) == 3
    runs = sweep.runs()  # no duplicates
    assert len(runs) == 3 and all(r.info.status == "FINISHED" for r in runs.values())
    for key, (end_time, steps) in finished.items():  # untouched by the resume
        assert runs[key].info.end_time == end_time
        assert sweep.steps(runs[key].info.run_id, names.TRAIN_LOSS) == steps
    rid = runs[interrupted[0]].info.run_id
    for key in PER_EPOCH_KEYS:
        assert sweep.steps(rid, key) == list(range(1, EPOCHS + 1)), key
    parents = store.find_runs(f"tags.`{names.T_SWEEP_ID}` = '{sweep.sweep_id}' and tags.`{names.T_ROLE}` = 'sweep'")
    assert len(parents) == 1  # the same parent run, reused
    sweep.assert_no_orphans()
    print(f"\nR3: driver killed at {killed_at:.1f} s with 2/3 finished, the third held at epoch {HELD_AT} (pid "
          f"{held_pid}, gone with the driver); resume took {resumed_in:.1f} s; "
          f"3 runs, 0 duplicates, 0 RUNNING")


def _tune_saw_terminated(experiment_dir) -> int:
    """TERMINATED trials in Tune's newest experiment-state snapshot (what a restore will see)."""
    snaps = sorted(experiment_dir.glob("experiment_state-*.json"))
    if not snaps:
        return 0
    try:
        data = json.loads(snaps[-1].read_text())
    except (json.JSONDecodeError, OSError):  # caught mid-write
        return 0
    return sum(json.loads(t)["status"] == "TERMINATED" for t, _ in data["trial_data"])


def test_r8_cleanup_closes_runs_orphaned_by_a_dead_driver(cluster, tmp_path):
    """A driver killed for good (no resume): `esweep cleanup` marks its RUNNING runs KILLED with the reason."""
    spec = write_spec(tmp_path, "orphans", methods=["ae"], epochs=EPOCHS)
    storage = tmp_path / "results"
    cluster.hold(VICTIM, 2)
    proc = cluster.driver("run", str(spec), "--address", cluster.ray_address, "--tracking-uri", cluster.mlflow_uri,
                          "--storage-path", str(storage), cwd=tmp_path)
    try:
        held_pid = wait_for(lambda: cluster.held_pid(VICTIM), 180, "the trial to wait after epoch 2")
        kill_group(proc)
        wait_for(lambda: not alive(held_pid), 60, f"the dead driver's trial (pid {held_pid}) to go")
    finally:
        cluster.release(VICTIM)
        kill_group(proc)
    sweep = Sweep.find(cluster, storage)
    assert [r.info.status for r in sweep.runs().values()] == ["RUNNING"]
    out = cluster.driver("cleanup", sweep.sweep_id, "--tracking-uri", cluster.mlflow_uri, "--stale-after", "0",
                         cwd=tmp_path)
    assert out.wait(timeout=120) == 0
    (run,) = sweep.runs().values()
    assert run.info.status == ORPHAN_STATUS
    assert run.data.tags[names.T_FAILURE].startswith("orphaned: left RUNNING with no live trial")
