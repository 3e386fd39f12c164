"""Shared helpers: side-by-side interleaved timing, provenance header, and the RATIO lines the smoke test reads."""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from statistics import median

import torch

RATIO_PREFIX = "RATIO"


def base_parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--smoke", action="store_true", help="tiny sizes: seconds, for CI")
    p.add_argument("--device", default="cpu", help="'cpu' or 'cuda'")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds per measurement (default: 3, smoke 1)")
    return p


def resolve_rounds(args: argparse.Namespace) -> int:
    return args.rounds if args.rounds is not None else (1 if args.smoke else 3)


def header(title: str, module: str, argv: list[str] | None) -> None:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    dev = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    print(f"\n== {title} ==")
    print(
        f"torch {torch.__version__} | {platform.processor() or platform.machine()} | {os.cpu_count()} cores, "
        f"{torch.get_num_threads()} torch threads | {dev} | load average {load:.1f} (others' jobs add noise)"
    )
    args = " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    print(f"reproduce: python -m {module} {args}".rstrip())


def sync(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def interleaved(fns: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Run each measurement once per round, alternating, so load from other processes hits every side alike.

    Each fn returns its own figure (e.g. images/s); the caller takes the median over rounds.
    """
    out: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            out[k].append(fn())
    return out


def med(xs: list[float]) -> float:
    return median(xs)


def ratio_line(name: str, value: float, target: str | None = None, met: bool | None = None) -> str:
    verdict = "" if met is None else f" -> target {target}: {'met' if met else 'NOT met'}"
    line = f"{RATIO_PREFIX} {name}: {value:.2f}x{verdict}"
    print(line)
    return line


class Timer:
    def __init__(self, device: torch.device | str = "cpu"):
        self.device = device

    def __enter__(self) -> Timer:
        sync(self.device)
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        sync(self.device)
        self.s = time.perf_counter() - self.t0
