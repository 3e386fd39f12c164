"""Nothing left behind: `esweep ui` and `esweep run`, started as a user starts them and stopped by SIGINT, SIGTERM or
SIGHUP, exit 128 + the signal's number and leave no process they started; `esweep run`'s runs are left for resume."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil  # Ray's own copy, importable once ray is (conftest imports it)
import pytest
import yaml

from evaluators import names
from sweep.shutdown import Interrupted
from sweep.tracking import Store
from sweep.trainable import HOLD_DIR_ENV

ROOT = Path(__file__).resolve().parents[1]
SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
TRIAL = "ae__lam-__mu-__d4__s0"


def test_exit_codes_are_the_shells():
    assert [Interrupted(s).exit_code for s in SIGNALS] == [130, 143, 129]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _default_signals() -> None:
    # as a terminal starts it: a suite run under nohup would otherwise hand esweep SIGHUP already ignored, which
    # esweep keeps ignored by design (test_a_signal_ignored_on_entry_stays_ignored_...), and the SIGHUP cases fail
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_DFL)


def _esweep(args: list[str], cwd: Path, log: Path, **env: str) -> subprocess.Popen:
    """`esweep ARGS` in a session of its own (as a terminal or a process manager starts it), default signal dispositions."""
    env = {**os.environ, **env, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    with log.open("w") as out:
        return subprocess.Popen([sys.executable, "-m", "sweep.cli", *args], cwd=cwd, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_default_signals)


def _wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"esweep exited {proc.returncode} while waiting for {what}:\n{log.read_text()[-3000:]}"
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}:\n{log.read_text()[-3000:]}") from None


def _stop_and_check(proc: subprocess.Popen, sig: int, log: Path, timeout: float = 120) -> list[str]:
    """Send ``sig`` to esweep alone, as `kill` or a process manager does; returns the command lines it stopped."""
    children = psutil.Process(proc.pid).children(recursive=True)
    assert children, "esweep had started nothing to stop"
    commands = [" ".join(_cmdline(p)) for p in children]
    proc.send_signal(sig)
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError(f"esweep did not exit within {timeout} s of {sig.name}:\n{log.read_text()[-3000:]}") from None
    assert code == 128 + sig, f"exit {code} on {sig.name}:\n{log.read_text()[-3000:]}"
    _, alive = psutil.wait_procs(children, timeout=15)
    survivors = [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
    for p in survivors:  # not left behind by the test either
        p.kill()
    assert survivors == [], f"{len(survivors)} of {len(children)} children outlived esweep: {survivors}"
    return commands


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_ui_stops_its_mlflow_server_on_each_signal(tmp_path, sig):
    port = _free_port()
    log = tmp_path / "ui.log"
    proc = _esweep(["ui", "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--port", str(port)], tmp_path, log)
    try:
        _wait_for(lambda: not _port_free(port), 180, f"the MLflow UI on port {port}", proc, log)
        stopped = _stop_and_check(proc, sig, log)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert _port_free(port)
    print(f"\nesweep ui, {sig.name}: exit {128 + sig}, {len(stopped)} children stopped, port {port} free")


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_run_stops_ray_and_leaves_its_runs_for_resume_on_each_signal(tmp_path, sig):
    """The trial waits after epoch 1 (a test-only hold), so the signal lands mid-run on any machine's speed."""
    spec = {"name": "stopped", "dataset": "digits", "arch": "mlp-small", "methods": ["ae"], "latent_dims": [4],
            "seeds": [0], "epochs": 3, "batch_size": 50, "max_train": 200, "device": "cpu",
            "evaluation": {"fid_samples": 0, "knn": False, "plots": False, "crossrun": False}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    holds = tmp_path / "holds"
    holds.mkdir()
    (holds / f"{TRIAL}.hold").write_text("1")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    log = tmp_path / "run.log"
    args = ["spec.yaml", "--tracking-uri", uri, "--storage-path", str(tmp_path / "results"), "--num-cpus", "1"]
    proc = _esweep(["run", *args], tmp_path, log, **{HOLD_DIR_ENV: str(holds)})
    try:
        _wait_for(lambda: (holds / f"{TRIAL}.held").exists(), 240, "the trial to wait after epoch 1", proc, log)
        stopped = _stop_and_check(proc, sig, log)
    finally:
        (holds / f"{TRIAL}.hold").unlink(missing_ok=True)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert any("raylet" in c for c in stopped), f"no Ray process was among those stopped: {stopped}"
    store = Store(uri)
    (parent,) = store.find_runs(f"tags.`{names.T_ROLE}` = 'sweep'")
    sweep_id = parent.data.tags[names.T_SWEEP_ID]
    (run,) = store.trial_runs(sweep_id)
    assert (parent.info.status, run.info.status) == ("KILLED", "KILLED")
    assert run.data.tags[names.T_FAILURE] == (f"interrupted: the driver was stopped by {sig.name}; "
                                              f"`esweep resume {sweep_id}` continues it")
    if sig != signal.SIGTERM:
        return
    res = subprocess.run([sys.executable, "-m", "sweep.cli", "resume", sweep_id, "--tracking-uri", uri,
                          "--num-cpus", "1"], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    # quiet: what it resumes, one line per state, and no traceback
    assert f"resuming sweep {sweep_id}: 1 trials" in res.stdout
    assert f"1 interrupted: continue from their last checkpoints: {TRIAL} (epoch 1)" in res.stdout
    assert "Traceback" not in res.stdout + res.stderr, res.stdout[-2000:] + res.stderr[-3000:]
    (run,) = store.trial_runs(sweep_id)
    assert run.info.status == "FINISHED" and store.sweep_run(sweep_id).info.status == "FINISHED"
    steps = sorted(m.step for m in store.client.get_metric_history(run.info.run_id, names.TRAIN_LOSS))
    assert steps == [1, 2, 3]
    assert names.T_FAILURE not in store.sweep_run(sweep_id).data.tags


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:  # already gone
        return []


def test_a_signal_ignored_on_entry_stays_ignored_and_the_others_raise():
    """`nohup esweep run` keeps running when its terminal closes; SIGTERM still stops it, with its exit code."""
    from sweep.shutdown import stop_on_signals

    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with stop_on_signals():
            os.kill(os.getpid(), signal.SIGHUP)  # ignored: nothing happens
            with pytest.raises(Interrupted) as caught:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)  # the handler runs at the next bytecode; the sleep is only an upper bound
        assert caught.value.exit_code == 143
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN  # restored on the way out
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_once_interrupted_further_signals_wait_for_the_cleanup():
    from sweep.shutdown import stop_on_signals

    cleaned = False
    with stop_on_signals():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # an upper bound: the handler runs at the next bytecode
        except Interrupted as exc:
            os.kill(os.getpid(), signal.SIGINT)  # a second Ctrl-C while cleaning up
            time.sleep(0.2)
            cleaned = exc.exit_code == 143
    assert cleaned
