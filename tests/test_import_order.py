"""The layout holds: no import cycle among the sweep modules that read MLflow back (any one can be imported first in
a fresh interpreter), and `evaluators` never imports `sweep`."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "modules",
    [
        ("sweep.analysis", "sweep.leaderboard"),
        ("sweep.leaderboard", "sweep.analysis"),
        ("sweep.aggregate", "sweep.compare", "sweep.report", "sweep.ui"),
        ("sweep.compare", "sweep.cli"),
        ("sweep.reproduce", "sweep.report"),
        ("sweep.report", "sweep.reproduce", "sweep.cli"),
        ("sweep.tradeoff", "sweep.report", "sweep.cli"),
    ],
)
def test_modules_import_in_either_order_in_a_fresh_interpreter(modules):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    code = "; ".join(f"import {m}" for m in modules)
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]


def test_evaluators_never_import_sweep():
    for path in sorted((ROOT / "evaluators").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                imported = [node.module or ""]
            else:
                continue
            assert not any(m == "sweep" or m.startswith("sweep.") for m in imported), f"{path.name} imports {imported}"


def test_read_only_cli_commands_never_load_torch():
    """`esweep leaderboard`, `ui`, `compare`, `report` start without torch (~3 s of a 10 s budget at 10,000 trials)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    code = "import sys; import sweep.cli, sweep.leaderboard, sweep.compare, sweep.ui, sweep.report, sweep.tradeoff; print('torch' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and res.stdout.strip() == "False", res.stderr[-3000:]
