"""The tests' hold (sweep.trainable, ESWEEP_TEST_HOLD_DIR): a trial stops after the epoch named, waits until the
file is removed or names a later epoch, is held once per epoch, and nothing is read when the variable is unset."""

import os
import threading
import time

from sweep.trainable import HOLD_DIR_ENV, _hold_if_asked

KEY = "ae__lam-__mu-__d4__s0"


def _run_epochs(epochs, passed):
    for epoch in epochs:
        _hold_if_asked(KEY, epoch)
        passed.append(epoch)


def _until(predicate, what):
    deadline = time.monotonic() + 60
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_hold_moves_on_and_releases(tmp_path, monkeypatch):
    monkeypatch.setenv(HOLD_DIR_ENV, str(tmp_path))
    hold, held = tmp_path / f"{KEY}.hold", tmp_path / f"{KEY}.held"
    hold.write_text("2")
    passed: list[int] = []
    trial = threading.Thread(target=_run_epochs, args=(range(1, 6), passed))
    trial.start()
    _until(lambda: held.exists(), "the trial to stop at epoch 2")
    assert held.read_text() == f"{os.getpid()} 2" and passed == [1]  # stopped after reporting 2, before moving on
    hold.write_text("4")  # moved: it goes on to epoch 4 and stops there
    _until(lambda: held.read_text().endswith(" 4"), "the trial to stop at epoch 4")
    assert passed == [1, 2, 3]
    hold.unlink()
    trial.join(timeout=60)
    assert passed == [1, 2, 3, 4, 5]
    hold.write_text("4")  # a restarted trial replaying epoch 4 is not held again
    _run_epochs([4], passed)
    assert passed[-1] == 4


def test_nothing_is_read_without_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(HOLD_DIR_ENV, raising=False)
    (tmp_path / f"{KEY}.hold").write_text("1")
    passed: list[int] = []
    _run_epochs([1], passed)
    assert passed == [1] and not (tmp_path / f"{KEY}.held").exists()
