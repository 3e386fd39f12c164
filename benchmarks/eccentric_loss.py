"""Eccentric loss: trainers.losses.eccentric_loss vs Li & Blair's reference code (appendix A.3), time and peak memory.

Time: forward + backward of each, interleaved, median over rounds. Peak memory: on GPU, torch.cuda.max_memory_allocated
above the inputs; on CPU, the torch profiler's memory events (profile_memory=True): each op's own allocations and
each free, summed in time order, the running maximum of that sum over one forward + backward.
"""

from __future__ import annotations

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.common import Timer, base_parser, header, interleaved, med, ratio_line, resolve_rounds
from trainers.losses import eccentric_loss

FULL_BATCHES = (100, 256, 1024, 4096)
SMOKE_BATCHES = (100,)
DIMS = (8, 64)


def reference_eccentric_loss(z, scale=1):
    """Li & Blair appendix A.3, verbatim apart from formatting (tests/test_losses.py checks ours against it)."""
    x0 = torch.squeeze(z)
    x1 = x0.transpose(0, 1)
    batch = x0.size()[0]
    dim = x0.size()[1]
    norm = 2 * dim * (1 + 1 / (2 * scale * (dim - 1))) / (2 * scale - 1)
    xx = torch.bmm(x0.view(batch, 1, dim), x0.view(batch, dim, 1)).squeeze(2)
    xx0 = xx.expand(batch, batch)
    xx1 = xx0.transpose(0, 1)
    xy = xx0 + xx1 - 2 * torch.matmul(x0, x1)
    result = torch.sum(xx) - scale * norm * torch.sum(torch.log(1 + xy / norm)) / batch
    return result / (batch - 1)


def _fwd_bwd(fn, z: torch.Tensor) -> None:
    zz = z.detach().requires_grad_()
    fn(zz, 1.0).backward()


def peak_bytes(fn, z: torch.Tensor) -> int:
    if z.device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        _fwd_bwd(fn, z)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        _fwd_bwd(fn, z)
    events = sorted(
        (e for e in prof.events() if e.self_cpu_memory_usage != 0), key=lambda e: e.time_range.start
    )
    current = peak = 0
    for e in events:
        current += e.self_cpu_memory_usage
        peak = max(peak, current)
    return peak


def timer(fn, z: torch.Tensor, reps: int):
    def run() -> float:
        with Timer(z.device) as t:
            for _ in range(reps):
                _fwd_bwd(fn, z)
        return t.s / reps

    run()
    return run


def main(argv: list[str] | None = None) -> list[str]:
    args = base_parser(__doc__.splitlines()[0]).parse_args(argv)
    header("2. eccentric loss vs reference code (forward + backward)", "benchmarks.eccentric_loss", argv)
    device = torch.device(args.device)
    rounds = resolve_rounds(args)
    worst_time, worst_mem = float("inf"), float("inf")
    for d in DIMS[:1] if args.smoke else DIMS:
        for n in SMOKE_BATCHES if args.smoke else FULL_BATCHES:
            z = torch.randn(n, d, device=device, generator=None)
            reps = max(1, 20_000_000 // (n * n))
            res = interleaved({"ours": timer(eccentric_loss, z, reps), "ref": timer(reference_eccentric_loss, z, reps)}, rounds)
            t_ours, t_ref = med(res["ours"]), med(res["ref"])
            m_ours, m_ref = peak_bytes(eccentric_loss, z), peak_bytes(reference_eccentric_loss, z)
            n2 = n * n * z.element_size()
            print(
                f"d {d:2d} n {n:4d} | time ours {t_ours * 1e3:8.3f} ms ref {t_ref * 1e3:8.3f} ms (ref/ours {t_ref / t_ours:4.2f})"
                f" | peak ours {m_ours / 2**20:7.2f} MiB ({m_ours / n2:4.1f} n^2 floats) ref {m_ref / 2**20:7.2f} MiB"
                f" ({m_ref / n2:4.1f} n^2)"
            )
            worst_time = min(worst_time, t_ref / t_ours)
            worst_mem = min(worst_mem, m_ref / max(m_ours, 1))
    # a ratio >= 1 means ours is no slower / uses no more memory; 0.9 allows for timing noise on a shared machine
    ratio_line("eccentric loss time ref/ours (worst case)", worst_time, ">= 1 (0.9 for noise)", worst_time >= 0.9)
    ratio_line("eccentric loss peak memory ref/ours (worst case)", worst_mem, ">= 1", worst_mem >= 1.0)
    return []


if __name__ == "__main__":
    main()
