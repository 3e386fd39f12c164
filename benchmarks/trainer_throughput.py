"""Trainer throughput (images/s): our loop's step vs a naive DataLoader loop, side by side in one process.

ours  : trainers.loop's step as ``train`` runs it: the images live on the device as one uint8 tensor, a batch
        is indexed there by a device-side permutation and scaled by ``to_unit``, the model's own optimiser and
        the loop's layout policy (``step_memory_format``), losses summed on the device, one host sync per epoch.
before: the same step with the loop's settings before issue 7 (NCHW everywhere, for-loop Adam): the
        before/after of the loop's speed changes, measured in the same run.
naive : a torch DataLoader over a TensorDataset of per-sample float tensors (shuffle, batch 100), eager fp32,
        default Adam, ``loss.item()`` each step, the same model.

GPU-only options (off by default, to be measured): --amp bf16, --compile {default,reduce-overhead} (CUDA graphs).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, TensorDataset

from benchmarks.common import Timer, base_parser, header, interleaved, med, ratio_line, resolve_rounds
from trainers import loop, networks
from trainers.config import TrainConfig
from trainers.loop import build_model, to_unit

TARGET = 1.5


@dataclass(frozen=True)
class Case:
    arch: str
    batch_size: int
    steps: int  # timed steps per round and side


FULL = (
    Case("mlp-small", 100, 300),
    Case("mnist-conv", 100, 20),
    Case("cifar-conv", 100, 2),
    Case("celeba-conv", 8, 1),  # tiny on CPU: one step at batch 8 is already seconds
)
SMOKE = (Case("mlp-small", 100, 20), Case("mnist-conv", 20, 2))


def _cfg(arch: str) -> TrainConfig:
    return TrainConfig(method="eae", dataset="mnist5k", arch=arch, lam=0.1, lr=1e-3, device="cpu")


def _images(arch: str, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, *networks.get(arch).image_shape), dtype=torch.uint8, generator=g)


def _maybe_compile(model, mode: str | None):
    if mode:
        model.compute_loss = torch.compile(model.compute_loss, mode=mode)
    return model


def ours_runner(case: Case, x: torch.Tensor, device: torch.device, before: bool, amp: bool, compile_mode: str | None):
    cfg = _cfg(case.arch)
    torch.manual_seed(0)
    model = build_model(cfg, tuple(x.shape[1:])).to(device)
    fmt = torch.contiguous_format if before else loop.step_memory_format(device, model)
    model = _maybe_compile(model.to(memory_format=fmt), compile_mode)
    if before:
        optimizers = [torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)]
    else:
        optimizers = model.configure_optimizers(cfg.lr, cfg.weight_decay)
    model.train()
    train_x = x.to(device)
    gen = torch.Generator().manual_seed(0)
    n, bs = len(train_x), case.batch_size
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()

    def run() -> float:
        order = torch.randperm(n, generator=gen).to(device)
        sums = torch.zeros(3, device=device)
        with Timer(device) as t:
            for b in range(case.steps):
                i = b % (n // bs)
                xb = to_unit(train_x[order[i * bs : (i + 1) * bs]]).contiguous(memory_format=fmt)
                with autocast:
                    out = model.train_step(xb, optimizers)
                sums += torch.stack([out.loss.detach(), out.recon.detach(), out.reg.detach()])
            sums.tolist()  # the loop's one sync per epoch
        return case.steps * bs / t.s

    run()  # warm-up (allocator, oneDNN primitive cache, compile)
    return run


def naive_runner(case: Case, x: torch.Tensor, device: torch.device):
    cfg = _cfg(case.arch)
    torch.manual_seed(0)
    model = build_model(cfg, tuple(x.shape[1:])).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    model.train()
    loader = DataLoader(TensorDataset(x.float() / 255.0), batch_size=case.batch_size, shuffle=True)

    def run() -> float:
        done = 0
        with Timer(device) as t:
            while done < case.steps:
                for (xb,) in loader:
                    xb = xb.to(device)
                    opt.zero_grad()
                    out = model.compute_loss(xb)
                    out.loss.backward()
                    opt.step()
                    out.loss.item()
                    done += 1
                    if done == case.steps:
                        break
        return case.steps * case.batch_size / t.s

    run()
    return run


def main(argv: list[str] | None = None) -> list[str]:
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--arch", action="append", help="only these architectures (repeatable)")
    p.add_argument("--amp", action="store_true", help="bf16 autocast in our step (GPU)")
    p.add_argument("--compile", dest="compile_mode", choices=["default", "reduce-overhead"], help="torch.compile ours")
    args = p.parse_args(argv)
    header("1. trainer throughput: our loop step vs naive DataLoader loop (images/s)", "benchmarks.trainer_throughput", argv)
    device = torch.device(args.device)
    rounds = resolve_rounds(args)
    cases = [c for c in (SMOKE if args.smoke else FULL) if not args.arch or c.arch in args.arch]
    lines = []
    for case in cases:
        x = _images(case.arch, max(10 * case.batch_size, 1000) if case.arch in ("mlp-small", "mnist-conv") else 2 * case.batch_size)
        fns = {
            "naive": naive_runner(case, x, device),
            "before": ours_runner(case, x, device, True, False, None),
            "ours": ours_runner(case, x, device, False, args.amp, args.compile_mode),
        }
        res = interleaved(fns, rounds)
        fmt = loop.step_memory_format(device, build_model(_cfg(case.arch), tuple(x.shape[1:])))
        layout = "channels_last" if fmt == torch.channels_last else "NCHW"
        print(
            f"{case.arch:12s} batch {case.batch_size:3d}, {case.steps} steps x {rounds} rounds | "
            + " | ".join(f"{k} {med(v):8.0f} img/s" for k, v in res.items())
            + f" | ours uses {layout}"
        )
        r = med(res["ours"]) / med(res["naive"])
        lines.append(ratio_line(f"throughput {case.arch} ours/naive", r, f">= {TARGET}", r >= TARGET))
        lines.append(ratio_line(f"throughput {case.arch} ours/before (loop speed-ups)", med(res["ours"]) / med(res["before"])))
    return lines


if __name__ == "__main__":
    main()
