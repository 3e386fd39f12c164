"""The layout holds: no import circle among the project's modules (lazy imports included), layers import one way
(sweep -> trainers -> evaluators), only sweep imports Ray or MLflow, and any sweep module can be imported first."""

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


PACKAGES = ("evaluators", "trainers", "sweep")
LOWER = {"sweep": ("trainers", "evaluators"), "trainers": ("evaluators",), "evaluators": ()}  # who may import whom


def _project_modules() -> dict[str, Path]:
    found = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imported(name: str, path: Path, known) -> set[str]:
    """Every project module `name` imports, at the top or inside a function (a lazy import still closes a circle)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = ".".join(pkg[: len(pkg) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            # a module's own parent packages are imported before it, so naming them orders nothing
            if target and target != name and not name.startswith(target + "."):
                out.add(target)
    return out


def import_graph() -> dict[str, set[str]]:
    known = _project_modules()
    return {name: _imported(name, path, known) for name, path in known.items()}


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The graph's strongly connected components of more than one module (Tarjan), each a circle of imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return circles


def test_no_import_circle_among_project_modules():
    assert import_circles(import_graph()) == []


def test_the_circle_finder_finds_a_planted_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_circles(graph) == [["a", "b", "c"]]


def test_layers_import_one_way_sweep_then_trainers_then_evaluators():
    for name, targets in import_graph().items():
        layer = name.split(".")[0]
        for target in targets:
            other = target.split(".")[0]
            assert other == layer or other in LOWER[layer], f"{name} ({layer}) imports {target} ({other})"


def test_only_sweep_imports_ray_or_mlflow():
    for name, path in _project_modules().items():
        if name.startswith("sweep"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] in ("ray", "mlflow") for n in names), f"{name} imports {names}"


def test_read_only_cli_commands_never_load_torch():
    """`esweep leaderboard`, `ui`, `compare`, `report` start without torch (~3 s of a 10 s budget at 10,000 trials)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    code = "import sys; import sweep.cli, sweep.leaderboard, sweep.compare, sweep.ui, sweep.report, sweep.tradeoff; print('torch' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and res.stdout.strip() == "False", res.stderr[-3000:]
