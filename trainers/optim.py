"""Adam over one contiguous buffer: the optimiser step of a small model is one fused kernel call, not a loop.

``torch.optim.Adam(fused=True)`` still walks its parameter list in Python on every step (state lookup, grad
checks), which costs as much as the kernel for the small networks (mlp-small: 12 tensors, 70 us against 32 us
for one flat tensor, benchmarks/trainer_throughput.py). Here every parameter becomes a view of one flat buffer
and its ``.grad`` a view of one flat gradient buffer, so the optimiser sees a single tensor. Adam is elementwise,
so the update is the same as per-tensor Adam.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


def _dense(p: torch.Tensor) -> bool:
    return p.is_contiguous() or (p.ndim == 4 and p.is_contiguous(memory_format=torch.channels_last))


class FlatAdam(torch.optim.Adam):
    """Fused Adam over the parameters re-pointed into one buffer (memory layouts such as channels_last kept).

    Backward accumulates into the bound ``.grad`` views in place; ``zero_grad`` zeroes the one buffer and
    re-binds any parameter whose ``.grad`` someone replaced or cleared, so the binding cannot silently go stale.
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float = 0.0):
        self._params = [p for p in params if p.requires_grad]
        if not self._params:
            raise ValueError("FlatAdam needs at least one parameter that requires grad")
        devices = {p.device for p in self._params}
        dtypes = {p.dtype for p in self._params}
        if len(devices) != 1 or len(dtypes) != 1 or not all(_dense(p) for p in self._params):
            raise ValueError("FlatAdam needs dense parameters of one device and dtype")
        total = sum(p.numel() for p in self._params)
        (device,), (dtype,) = devices, dtypes
        self.flat = torch.nn.Parameter(torch.empty(total, device=device, dtype=dtype))
        self.flat.grad = torch.zeros_like(self.flat)
        self._grads = []
        offset = 0
        with torch.no_grad():
            for p in self._params:
                k = p.numel()
                view = self.flat.data[offset : offset + k].as_strided(p.shape, p.stride())
                view.copy_(p)
                p.data = view
                grad = self.flat.grad[offset : offset + k].as_strided(p.shape, p.stride())
                p.grad = grad
                self._grads.append(grad)
                offset += k
        super().__init__([self.flat], lr=lr, weight_decay=weight_decay, fused=True)

    def zero_grad(self, set_to_none: bool = True) -> None:  # noqa: ARG002 - the buffer is kept, always
        self.flat.grad.zero_()
        for p, g in zip(self._params, self._grads, strict=True):
            if p.grad is not g:
                p.grad = g


def adam(params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """FlatAdam where it applies (dense parameters on one device), else per-tensor fused Adam."""
    params = list(params)
    try:
        return FlatAdam(params, lr=lr, weight_decay=weight_decay)
    except ValueError:
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)


def flat_adam_state(
    per_param: list[dict[str, torch.Tensor]], params: list[torch.Tensor], param_group: dict
) -> dict:
    """The ``state_dict`` that a FlatAdam over ``params`` (their shapes and strides) would hold, given each
    parameter's own Adam state in the same order: how a packed trial checkpoints a variant so that it resumes as an
    ordinary run (trainers/packed.py)."""
    flat: dict[str, torch.Tensor] = {}
    for key in ("exp_avg", "exp_avg_sq"):
        chunks = []
        for state, p in zip(per_param, params, strict=True):
            laid_out = torch.empty_strided(p.shape, p.stride(), dtype=state[key].dtype, device=state[key].device)
            chunks.append(laid_out.copy_(state[key]).as_strided((p.numel(),), (1,)))
        flat[key] = torch.cat(chunks)
    flat["step"] = per_param[0]["step"].clone()
    return {"state": {0: flat}, "param_groups": [{**param_group, "params": [0]}]}
