import os
import random

import numpy as np
import pytest
import ray
import torch

os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="also run tests marked slow")
    parser.addoption(
        "--seed", type=int, default=None,
        help="global seed every test starts from (torch, numpy, random); default $ESWEEP_TEST_SEED, else 0",
    )


def global_seed(config) -> int:
    seed = config.getoption("--seed")
    return int(os.environ.get("ESWEEP_TEST_SEED", "0")) if seed is None else seed


def pytest_terminal_summary(terminalreporter, config):
    # printed under -q too, so a failure's log says how to rerun it
    terminalreporter.write_line(f"esweep test seed: {global_seed(config)} (rerun with --seed N or ESWEEP_TEST_SEED=N)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def test_seed(request) -> int:
    """The run's global seed: tests of a statistical property draw their data from it (offset per stream)."""
    return global_seed(request.config)


@pytest.fixture(autouse=True)
def _seed_everything(test_seed):
    # every test starts from the same global state, whatever ran before it, so a failure reruns alone
    random.seed(test_seed)
    np.random.seed(test_seed)
    torch.manual_seed(test_seed)


@pytest.fixture
def one_thread():
    """torch on one thread for the test: the 2 shared cores are not oversubscribed by intra-op threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def local_ray():
    """A fresh 2-CPU local Ray for one test module (address='local': never a cluster another test started)."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


_exit_status: list[int] = []


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    _exit_status.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """Leave the test process with pytest's own exit status, skipping the interpreter's finalisation.

    CI once saw every test pass and the summary print, then a segfault (exit 139) in interpreter shutdown: the
    destructors of the native libraries this suite loads into one process (torch with a TorchScript Inception
    module, Ray's gRPC core, MLflow's sqlalchemy engines) run in an unspecified order there. Nothing the tests
    check happens after this point; the report is written and the status is pytest's. ESWEEP_TEST_FINALIZE=1
    restores the normal interpreter exit, to look for the crash.
    """
    if not _exit_status or os.environ.get("ESWEEP_TEST_FINALIZE") == "1":
        return
    import sys
    import threading

    alive = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    if alive:
        print(f"\nthreads alive at exit: {', '.join(sorted(alive))}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_exit_status[0])
