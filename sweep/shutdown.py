"""Stopping on a signal: SIGINT, SIGTERM and SIGHUP end a command the same way, leaving no child it started.

A command that starts Ray or a server runs inside ``stop_on_signals()``: a signal raises ``Interrupted`` in the main
thread, so the command's ``finally`` blocks stop what it started, and the process exits ``128 + signum`` (130 for
Ctrl-C), as a shell reports a process killed by that signal. During a Tune fit (``tune_stops_on_signals()``) the
first signal asks Tune to stop instead, as its own Ctrl-C does: Tune saves the experiment state and stops the trials,
so `esweep resume` continues from there; ``Interrupted`` is raised once the fit has returned. A second signal does
not wait for that; once ``Interrupted`` is raised, further signals are ignored while the command cleans up.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
CHILD_GRACE_S = 10.0  # how long a child server has to stop after SIGTERM before it is killed


class Interrupted(Exception):  # noqa: N818 - named for what happened, like KeyboardInterrupt
    """A stop signal arrived; ``exit_code`` is what the command exits with."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


@dataclass
class _State:
    active: bool = False
    handled: tuple[int, ...] = ()
    received: int | None = None
    raised: bool = False
    in_fit: bool = False


_state = _State()


def _handle(signum: int, frame) -> None:
    if _state.raised:  # the command is stopping what it started: let it finish (its waits are bounded)
        return
    first = _state.received is None
    _state.received = _state.received or signum
    tune_stop = signal.getsignal(signal.SIGUSR1)  # Tune's "stop the run" handler, registered by each fit
    if _state.in_fit and first and callable(tune_stop):
        tune_stop(signum, frame)
        return
    _state.raised = True
    raise Interrupted(_state.received)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within: SIGINT, SIGTERM and SIGHUP raise ``Interrupted`` (see the module's docstring). Outside the main
    thread, where Python allows no handler, it changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    # a signal ignored on entry stays ignored: `nohup esweep run` goes on when its terminal closes
    _state.handled = tuple(s for s, handler in previous.items() if handler != signal.SIG_IGN)
    _state.active, _state.received, _state.raised, _state.in_fit = True, None, False, False
    reclaim()
    try:
        yield
    finally:
        _state.active = False
        for s, handler in previous.items():
            signal.signal(s, handler)


def reclaim() -> None:
    """Take the signals back after a library set its own (``ray.init`` sets a SIGTERM handler that exits 1)."""
    if _state.active:
        for s in _state.handled:
            signal.signal(s, _handle)


@contextmanager
def tune_stops_on_signals() -> Iterator[None]:
    """Around ``tuner.fit()``: a signal lets Tune stop and save its state; then ``Interrupted`` is raised. Outside
    ``stop_on_signals`` (the Python API) Tune keeps its own Ctrl-C handling."""
    if not _state.active:
        yield
        return
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # Ctrl-C comes here like the others, not to Tune alone
    _state.in_fit = True
    try:
        yield
    finally:
        _state.in_fit = False
    if _state.received is not None and not _state.raised:
        _state.raised = True
        raise Interrupted(_state.received)


def start_child(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    """A child server in a process group of its own, so ``stop_child`` reaches every process it starts."""
    return subprocess.Popen(cmd, env=env, start_new_session=True)


def stop_child(proc: subprocess.Popen, grace_s: float = CHILD_GRACE_S) -> None:
    """SIGTERM the child's process group, wait up to ``grace_s``, then SIGKILL whatever of the group is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            continue
        try:  # the leader is gone; its group's other processes (workers) may not be
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        break
    proc.wait()
