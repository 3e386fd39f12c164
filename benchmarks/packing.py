"""Packing: aggregate images/s of K trials of one architecture on one device, K separate models stepped in turn
vs one vmapped pack (trainers.packed: torch.func.stack_module_state + functional_call + vmap over K).

BatchNorm in training mode: the pack passes each variant's running statistics as stacked buffers with vmap
in_dims=0, so batch statistics are per variant and the running-stat updates land in each variant's own slice
(no replace_all_batch_norm_modules_, which would drop running statistics and change evaluation).
"""

from __future__ import annotations

import torch

from benchmarks.common import Timer, base_parser, header, interleaved, med, ratio_line, resolve_rounds
from trainers import networks
from trainers.config import TrainConfig
from trainers.loop import build_model, to_unit
from trainers.packed import PackedModel

BATCH = 100
# (arch, steps per round, K values); the CPU full suite caps mnist-conv at K = 16 (K = 32 separate steps ~1 min)
FULL = (("mlp-small", 40, (1, 4, 16, 32)), ("mnist-conv", 2, (1, 4, 16)))
SMOKE = (("mlp-small", 5, (1, 4)),)
GPU_FULL = (("mlp-small", 40, (1, 4, 16, 32)), ("mnist-conv", 10, (1, 4, 16, 32)), ("cifar-conv", 5, (1, 4, 16)))


def _models(arch: str, k: int, device: torch.device):
    out = []
    for seed in range(k):
        torch.manual_seed(seed)
        cfg = TrainConfig(method="eae", dataset="mnist5k", arch=arch, lam=0.1 * (seed + 1), lr=1e-3)
        out.append(build_model(cfg, networks.get(arch).image_shape).to(device).train())
    return out


def runners(arch: str, k: int, steps: int, device: torch.device):
    shape = networks.get(arch).image_shape
    x = torch.randint(0, 256, (k, BATCH, *shape), dtype=torch.uint8, device=device)
    separate = _models(arch, k, device)
    opts = [m.configure_optimizers(1e-3, 1e-6) for m in separate]
    pack = PackedModel(_models(arch, k, device))
    pack_opt = pack.optimizer(1e-3, 1e-6)

    def run_separate() -> float:
        with Timer(device) as t:
            for _ in range(steps):
                for i, (m, o) in enumerate(zip(separate, opts, strict=True)):
                    m.train_step(to_unit(x[i]), o)
        return k * BATCH * steps / t.s

    def run_packed() -> float:
        with Timer(device) as t:
            for _ in range(steps):
                pack.train_step(to_unit(x), pack_opt)
        return k * BATCH * steps / t.s

    run_separate()
    run_packed()
    return {"separate": run_separate, "packed": run_packed}


def main(argv: list[str] | None = None) -> list[str]:
    args = base_parser(__doc__.splitlines()[0]).parse_args(argv)
    header("5. packing K trials: K separate models vs one vmapped pack (aggregate images/s)", "benchmarks.packing", argv)
    device = torch.device(args.device)
    rounds = resolve_rounds(args)
    plan = SMOKE if args.smoke else (GPU_FULL if device.type == "cuda" else FULL)
    for arch, steps, ks in plan:
        for k in ks:
            res = interleaved(runners(arch, k, steps, device), rounds)
            sep, pk = med(res["separate"]), med(res["packed"])
            print(f"{arch:11s} K {k:2d} | separate {sep:8.0f} img/s | packed {pk:8.0f} img/s")
            ratio_line(f"packing {arch} K={k} packed/separate", pk / sep)
    return []


if __name__ == "__main__":
    main()
