"""`python -m benchmarks --smoke` runs end to end and prints a RATIO line for every benchmark it runs (and the scale
benchmark, on a 50-trial sqlite store, its FIGURE lines)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


# ~60 s on an idle 2-core machine, but 115 s was measured while others loaded it: slow tier
@pytest.mark.slow
def test_benchmarks_smoke_prints_every_ratio():
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ratios = [line for line in proc.stdout.splitlines() if line.startswith("RATIO ")]
    for expected in (
        "RATIO throughput mlp-small ours/naive",
        "RATIO throughput mnist-conv ours/naive",
        "RATIO eccentric loss time ref/ours",
        "RATIO eccentric loss peak memory ref/ours",
        "RATIO FID cold/cached cost",
        "RATIO packing mlp-small K=4 packed/separate",
    ):
        assert any(line.startswith(expected) for line in ratios), (expected, ratios)
    figures = [line for line in proc.stdout.splitlines() if line.startswith("FIGURE scale_store sqlite ")]
    for expected in ("fill", "aggregation", "esweep leaderboard", "esweep report"):
        assert any(line.startswith(f"FIGURE scale_store sqlite {expected}: ") for line in figures), (expected, figures)
    assert "reproduce: python -m benchmarks" in proc.stdout
