"""Packed trials: K lambda/seed variants of one method and architecture trained as one vmapped model.

Small models (mlp-small, mnist-conv) leave a device mostly idle, so K trials side by side share its kernels:
``torch.func.stack_module_state`` stacks the K models' parameters and buffers along a new leading dimension and
``vmap`` runs one functional forward/backward over all K. Each variant keeps its own weights, batch order, Adam
moments, BatchNorm running statistics and metrics, so a packed run reproduces K unpacked ``trainers.loop.train``
runs within float tolerance (tests/test_packed.py). BatchNorm in training mode needs nothing special here: its
running statistics are stacked buffers passed to vmap with in_dims=0, so each variant updates its own slice in
place. Adam is elementwise, so one Adam over the stacked tensors is K independent Adams.

Only methods whose step is the base one (loss = recon + lambda * regulariser, one Adam) can be packed; methods
that draw random numbers in their step (e.g. vae) get independent streams per variant (vmap randomness
"different"), equal in distribution to, but not the same draws as, unpacked runs.

A variant that diverges does not take its pack-mates down: its NaNs stay in its own slices, so it is marked,
no longer reported or evaluated, and the others train on. The whole pack checkpoints and resumes as one
(``checkpoint`` / ``resume_state``); each variant's report still carries a state that resumes it unpacked.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from evaluators import names
from evaluators.metric_convergence import convergence_metrics
from trainers import optim
from trainers.config import TrainConfig
from trainers.datasets import ImageData
from trainers.loop import (
    DivergedError,
    TrainResult,
    _rng_state,
    build_model,
    cached_dataset,
    encode_images,
    evaluate,
    global_rng_state,
    resolve_device,
    set_global_rng_state,
    step_memory_format,
    to_unit,
)
from trainers.methods.base import AutoencoderMethod

# report(variant_index, metrics, state): the loop's report, once per variant per epoch
PackedReport = Callable[[int, dict[str, float], dict[str, Any]], None]
# checkpoint(epoch, state): the whole pack's resume_state, once per epoch after the variants' reports
PackCheckpoint = Callable[[int, dict[str, Any]], None]
# on_diverged(variant_index, reason): once, in the epoch the variant's loss became non-finite
PackDiverged = Callable[[int, str], None]

# fields in which the variants of one pack may differ; everything else must be equal
VARYING_FIELDS = ("lam", "seed")


def packable(cls: type[AutoencoderMethod]) -> bool:
    """True when the method trains with the base step: one Adam on recon + lambda * regulariser."""
    base = AutoencoderMethod
    return all(getattr(cls, f) is getattr(base, f) for f in ("compute_loss", "train_step", "configure_optimizers"))


def check_packable(cfgs: list[TrainConfig]) -> None:
    """Raise ValueError unless ``cfgs`` can train as one pack: same everything but lambda and seed."""
    from trainers import methods

    if not cfgs:
        raise ValueError("a pack needs at least one config")
    first = cfgs[0].model_dump(exclude=set(VARYING_FIELDS))
    for i, cfg in enumerate(cfgs[1:], start=1):
        other = cfg.model_dump(exclude=set(VARYING_FIELDS))
        diff = sorted(k for k in first if first[k] != other[k])
        if diff:
            raise ValueError(f"config {i} differs from config 0 in {diff}; a pack may differ only in {VARYING_FIELDS}")
    if not packable(methods.get(cfgs[0].method)):
        valid = sorted(n for n in methods.METHODS.names() if packable(methods.get(n)))
        raise ValueError(f"method {cfgs[0].method!r} has its own training step and cannot be packed; packable: {valid}")
    if cfgs[0].control is not None:
        raise ValueError("lambda control changes lambda per step and cannot be packed")


class _Losses(nn.Module):
    """forward(x) -> (recon, reg) of one method, so functional_call can drive ``compute_loss``."""

    def __init__(self, method: AutoencoderMethod):
        super().__init__()
        self.method = method

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.method.compute_loss(x)
        return out.recon, out.reg


class PackedModel:
    """K models of one class and architecture as stacked tensors; ``train_step`` trains all K at once."""

    def __init__(self, models: list[AutoencoderMethod], lams: list[float] | None = None):
        if len({type(m) for m in models}) != 1:
            raise ValueError("all packed models must be of one method class")
        self.models = models
        self._wrappers = [_Losses(m) for m in models]
        # a parameter-free template: functional_call swaps the stacked slices in for each variant
        self._template = copy.deepcopy(self._wrappers[0]).to("meta")
        params, buffers = stack_module_state(self._wrappers)
        self.params = params
        self.buffers = buffers
        device = next(iter(params.values())).device
        self.lams = torch.tensor(lams if lams is not None else [m.lam for m in models], device=device)

    def __len__(self) -> int:
        return len(self.models)

    def optimizer(self, lr: float, weight_decay: float) -> torch.optim.Optimizer:
        # fused Adam over the stacked tensors: elementwise, so K independent Adams, as unpacked runs take
        return torch.optim.Adam(list(self.params.values()), lr=lr, weight_decay=weight_decay, fused=True)

    def _variant(self, params, buffers, x, lam) -> torch.Tensor:
        recon, reg = functional_call(self._template, (params, buffers), (x,))
        return torch.stack([recon + lam * reg, recon, reg])

    def losses(self, x: torch.Tensor, shared_batch: bool = False) -> torch.Tensor:
        """(K, 3) loss, recon, reg; ``x`` is (K, B, ...) or, with ``shared_batch``, one (B, ...) batch for all."""
        fn = vmap(self._variant, in_dims=(0, 0, None if shared_batch else 0, 0), randomness="different")
        out = fn(self.params, self.buffers, x, self.lams)
        self._template.method.last_z = None  # set inside vmap; meaningless outside it
        return out

    def train_step(self, x: torch.Tensor, opt: torch.optim.Optimizer, shared_batch: bool = False) -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        out = self.losses(x, shared_batch)
        out[:, 0].sum().backward()  # variants share no parameters, so each gets the gradient of its own loss
        opt.step()
        return out.detach()

    @torch.no_grad()
    def unstack(self) -> None:
        """Copy each variant's slice back into its own model (for evaluation, checkpoints and results)."""
        for k, wrapper in enumerate(self._wrappers):
            for name, t in wrapper.named_parameters():
                t.copy_(self.params[name][k])
            for name, t in wrapper.named_buffers():
                t.copy_(self.buffers[name][k])

    def optimizer_state(self, opt: torch.optim.Optimizer, k: int, layout: torch.memory_format) -> dict[str, Any]:
        """Variant k's slice of the stacked Adam state, as the state_dict of an unpacked run's optimizer (one
        FlatAdam over its parameters in ``layout``), so that the checkpoint resumes as an ordinary run."""
        full = opt.state_dict()
        per_param = [{key: v[k] if key != "step" and v.ndim > 0 else v for key, v in s.items()} for s in full["state"].values()]
        like = [
            p.detach().contiguous(memory_format=layout) if p.ndim == 4 else p.detach() for p in self.models[k].parameters()
        ]
        group = {key: v for key, v in full["param_groups"][0].items() if key != "params"}
        return optim.flat_adam_state(per_param, like, copy.deepcopy(group))


def _pack_state(
    cfgs: list[TrainConfig],
    packed: PackedModel,
    opt: torch.optim.Optimizer,
    gens: list[torch.Generator],
    epoch: int,
    diverged: dict[int, str],
    metrics: list[dict[str, float]],
    loss_histories: list[list[float]],
) -> dict[str, Any]:
    """Everything a restarted pack needs to continue exactly: a copy, so later steps do not change it."""
    return {
        "variants": [(cfg.lam, cfg.seed) for cfg in cfgs],
        "params": {k: v.detach().clone() for k, v in packed.params.items()},
        "buffers": {k: v.detach().clone() for k, v in packed.buffers.items()},
        "optimizer": copy.deepcopy(opt.state_dict()),
        "batch_orders": [g.get_state() for g in gens],
        **global_rng_state(),
        "epoch": epoch,
        "diverged": dict(diverged),
        "metrics": copy.deepcopy(metrics),
        "loss_histories": copy.deepcopy(loss_histories),
    }


@torch.no_grad()
def _load_pack_state(
    cfgs: list[TrainConfig],
    packed: PackedModel,
    opt: torch.optim.Optimizer,
    gens: list[torch.Generator],
    state: dict[str, Any],
) -> None:
    variants = [(cfg.lam, cfg.seed) for cfg in cfgs]
    if [tuple(v) for v in state["variants"]] != variants:
        raise ValueError(f"resume_state is of the pack {state['variants']}, not of {variants}")
    for name, t in packed.params.items():
        t.copy_(state["params"][name])
    for name, t in packed.buffers.items():
        t.copy_(state["buffers"][name])
    opt.load_state_dict(state["optimizer"])
    for g, s in zip(gens, state["batch_orders"], strict=True):
        g.set_state(s)
    set_global_rng_state(state)
    packed.unstack()


def train_packed(
    cfgs: list[TrainConfig],
    report: PackedReport | None = None,
    data: ImageData | None = None,
    *,
    resume_state: dict[str, Any] | None = None,
    checkpoint: PackCheckpoint | None = None,
    on_diverged: PackDiverged | None = None,
) -> list[TrainResult | None]:
    """Train ``cfgs`` (equal but for lambda and seed) as one pack; one TrainResult per config, in order.

    Same seeds and batch orders as ``trainers.loop.train``: variant k's weights come from ``manual_seed(seed_k)``
    and its batches from its own generator seeded with seed_k. Epoch time is the pack's, reported by every variant.

    A variant whose epoch loss is not finite is diverged: ``on_diverged(k, reason)`` is called once, it is no
    longer reported or evaluated and its result is None, while the others train on (vmapped variants share no
    parameters and Adam is elementwise, so its NaNs stay in its own slice). DivergedError only when all diverged.
    ``checkpoint(epoch, state)`` gets the whole pack's state once per epoch, after the variants' reports;
    ``resume_state=state`` continues from it as if never interrupted.
    """
    check_packable(cfgs)
    cfg0 = cfgs[0]
    device = resolve_device(cfg0.device)
    data = data if data is not None else cached_dataset(cfg0.dataset, cfg0.data_root)
    models = []
    for cfg in cfgs:
        torch.manual_seed(cfg.seed)
        models.append(build_model(cfg, data.image_shape).to(device))
    gens = [torch.Generator().manual_seed(cfg.seed) for cfg in cfgs]
    packed = PackedModel(models)
    layout = step_memory_format(device, models[0])  # the layout an unpacked run of these models trains in
    opt = packed.optimizer(cfg0.lr, cfg0.weight_decay)
    shared = len({cfg.seed for cfg in cfgs}) == 1  # one batch order: one gathered batch serves every variant

    start_epoch = 1
    diverged: dict[int, str] = {}
    metrics: list[dict[str, float]] = [{} for _ in cfgs]
    loss_histories: list[list[float]] = [[] for _ in cfgs]
    if resume_state is not None:
        _load_pack_state(cfgs, packed, opt, gens, resume_state)
        start_epoch = int(resume_state["epoch"]) + 1
        diverged = {int(k): r for k, r in resume_state["diverged"].items()}
        metrics = copy.deepcopy(resume_state["metrics"])
        # a checkpoint from before the loss history: its epochs' losses are unknown (NaN), not missing
        unknown = [[math.nan] * (start_epoch - 1) for _ in cfgs]
        loss_histories = copy.deepcopy(resume_state.get("loss_histories", unknown))

    train_x = data.train_x[: cfg0.max_train].to(device)
    probe_x = data.test_x[: cfg0.eval_probe].to(device)
    n, bs = len(train_x), cfg0.batch_size
    n_batches = n // bs
    if n_batches == 0:
        raise ValueError(f"batch_size {bs} exceeds the {n} training images")

    for m in models:
        m.train()
    for epoch in range(start_epoch, cfg0.epochs + 1):
        t0 = time.perf_counter()
        orders = torch.stack([torch.randperm(n, generator=g) for g in gens]).to(device)
        sums = torch.zeros(len(cfgs), 3, device=device)
        for b in range(n_batches):
            idx = orders[:, b * bs : (b + 1) * bs]
            xb = to_unit(train_x[idx[0]] if shared else train_x[idx])
            sums += packed.train_step(xb, opt, shared_batch=shared)
        means = (sums / n_batches).tolist()
        for k, row in enumerate(means):
            if k not in diverged and not all(math.isfinite(v) for v in row):
                # the message unpacked runs give (trainers.loop.train)
                diverged[k] = f"loss became {row[0]} in epoch {epoch} (lambda={models[k].lam:g})"
                if on_diverged is not None:
                    on_diverged(k, diverged[k])
        if len(diverged) == len(cfgs):
            raise DivergedError("every variant of the pack diverged: " + "; ".join(diverged[k] for k in sorted(diverged)))
        elapsed = time.perf_counter() - t0
        packed.unstack()
        for k, model in enumerate(models):
            if k in diverged:
                continue
            loss_histories[k].append(means[k][0])
            eval_metrics, _, _ = evaluate(model, probe_x)
            metrics[k] = {
                "epoch": float(epoch),
                names.TRAIN_LOSS: means[k][0],
                names.TRAIN_RECON: means[k][1],
                names.TRAIN_REG: means[k][2],
                names.TRAIN_EPOCH_TIME: elapsed,
                names.TRAIN_IMAGES_PER_S: n_batches * bs / elapsed,
                **eval_metrics,
            }
            if report is not None:
                state = {
                    "model": model.state_dict(),
                    "optimizers": [packed.optimizer_state(opt, k, layout)],
                    "epoch": epoch,
                    "lam": model.lam,
                    "rng": _rng_state(gens[k]),
                    "loss_history": list(loss_histories[k]),
                }
                report(k, metrics[k], state)
        if checkpoint is not None:
            checkpoint(epoch, _pack_state(cfgs, packed, opt, gens, epoch, diverged, metrics, loss_histories))

    results: list[TrainResult | None] = []
    test_x = data.test_x.to(device)
    for k, model in enumerate(models):
        if k in diverged:
            results.append(None)
            continue
        train_z = encode_images(model, train_x)
        model.finish_training(train_z)
        final, ev, test_z = evaluate(model, test_x)
        results.append(
            TrainResult(
                model,
                data,
                {**metrics[k], **final, **convergence_metrics(loss_histories[k])},
                ev.tolist(),
                test_z,
                cfg0.epochs,
                train_z.cpu(),
                loss_history=loss_histories[k],
            )
        )
    return results
