"""Run every benchmark in one process: ``python -m benchmarks`` (CPU full suite) or ``--smoke`` (CI, < 60 s)."""

from __future__ import annotations

import argparse
import time

from benchmarks import eccentric_loss, fid_cost, fid_extras_cost, packing, sweep_overhead, trainer_throughput

SUITE = (
    ("trainer_throughput", trainer_throughput.main),
    ("eccentric_loss", eccentric_loss.main),
    ("fid_cost", fid_cost.main),
    ("fid_extras_cost", fid_extras_cost.main),
    ("packing", packing.main),
    ("sweep_overhead", sweep_overhead.main),
)
# Ray start-up alone takes 10-20 s on a loaded 2-core machine: the smoke run leaves the sweep out
SMOKE_SKIP = {"sweep_overhead"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--smoke", action="store_true", help="tiny sizes for CI (< 60 s, no Ray)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--only", action="append", choices=[n for n, _ in SUITE], help="run only these (repeatable)")
    args = p.parse_args()
    t0 = time.perf_counter()
    for name, fn in SUITE:
        if (args.only and name not in args.only) or (args.smoke and name in SMOKE_SKIP):
            continue
        fn((["--smoke"] if args.smoke else []) + ["--device", args.device])
    print(f"\nsuite finished in {time.perf_counter() - t0:.0f} s; reproduce: python -m benchmarks {'--smoke' if args.smoke else ''}")


if __name__ == "__main__":
    main()
