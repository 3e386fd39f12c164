"""Run every benchmark in one process: ``python -m benchmarks`` (CPU full suite), ``--smoke`` (CI, < 60 s), or
``python -m benchmarks NAME ...`` (those only, at full size)."""

from __future__ import annotations

import argparse
import time

from benchmarks import (
    eccentric_loss,
    fid_cost,
    fid_extras_cost,
    packing,
    scale_store,
    sweep_overhead,
    trainer_throughput,
)

SUITE = (
    ("trainer_throughput", trainer_throughput.main),
    ("eccentric_loss", eccentric_loss.main),
    ("fid_cost", fid_cost.main),
    ("fid_extras_cost", fid_extras_cost.main),
    ("packing", packing.main),
    ("sweep_overhead", sweep_overhead.main),
    ("scale_store", scale_store.main),
)
# Ray start-up alone takes 10-20 s on a loaded 2-core machine: the smoke run leaves the sweep out
SMOKE_SKIP = {"sweep_overhead"}
# filling a 10,000-trial store takes minutes (benchmarks/README.md): run by name only, or in the smoke at 50 trials
FULL_SKIP = {"scale_store"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--smoke", action="store_true", help="tiny sizes for CI (< 60 s, no Ray)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--only", action="append", choices=[n for n, _ in SUITE], help="run only these (repeatable)")
    p.add_argument("names", nargs="*", metavar="NAME", help=f"run only these: {', '.join(n for n, _ in SUITE)}")
    args = p.parse_args()
    unknown = set(args.names) - {n for n, _ in SUITE}
    if unknown:
        p.error(f"unknown benchmark(s) {', '.join(sorted(unknown))}; choose from {', '.join(n for n, _ in SUITE)}")
    only = set(args.only or []) | set(args.names)
    t0 = time.perf_counter()
    for name, fn in SUITE:
        if (only and name not in only) or (args.smoke and name in SMOKE_SKIP) or (
            not only and not args.smoke and name in FULL_SKIP
        ):
            continue
        fn((["--smoke"] if args.smoke else []) + ["--device", args.device])
    again = " ".join([*(["--smoke"] if args.smoke else []), *sorted(only)])
    print(f"\nsuite finished in {time.perf_counter() - t0:.0f} s; reproduce: python -m benchmarks {again}")


if __name__ == "__main__":
    main()
