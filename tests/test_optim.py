"""FlatAdam: one fused step over one buffer gives the same updates as per-tensor Adam, layouts kept."""

import torch

from trainers.config import TrainConfig
from trainers.loop import build_model
from trainers.optim import FlatAdam, flat_adam_state


def conv_model(seed: int):
    torch.manual_seed(seed)
    cfg = TrainConfig(method="eae", dataset="mnist5k", arch="mnist-conv", lam=0.1, latent_dim=8, device="cpu")
    return build_model(cfg, (1, 32, 32)).to(memory_format=torch.channels_last)


def steps(model, opt, n=3):
    g = torch.Generator().manual_seed(0)
    for _ in range(n):
        x = torch.rand(8, 1, 32, 32, generator=g).contiguous(memory_format=torch.channels_last)
        opt.zero_grad()
        model.compute_loss(x).loss.backward()
        opt.step()


def test_flat_adam_matches_per_tensor_adam_and_keeps_channels_last():
    flat_model, ref_model = conv_model(0), conv_model(0)
    conv_weight = next(p for p in flat_model.parameters() if p.ndim == 4)
    assert conv_weight.is_contiguous(memory_format=torch.channels_last)
    flat_opt = FlatAdam(flat_model.parameters(), lr=1e-3, weight_decay=1e-6)
    assert conv_weight.is_contiguous(memory_format=torch.channels_last)  # the view keeps the layout
    ref_opt = torch.optim.Adam(ref_model.parameters(), lr=1e-3, weight_decay=1e-6, fused=True)
    steps(flat_model, flat_opt)
    steps(ref_model, ref_opt)
    for (name, a), b in zip(flat_model.named_parameters(), ref_model.parameters(), strict=True):
        assert torch.equal(a, b), name  # the same fused kernel on the same gradients: bit for bit
    # the parameters are views of the one buffer that the optimiser steps
    assert conv_weight.untyped_storage().data_ptr() == flat_opt.flat.untyped_storage().data_ptr()


def test_cleared_grads_are_rebound_not_lost():
    model = conv_model(1)
    opt = FlatAdam(model.parameters(), lr=1e-2)
    before = [p.detach().clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)  # someone clears the grads: the next zero_grad must re-bind them
    steps(model, opt, n=1)
    moved = [not torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True)]
    assert all(moved)


def test_flat_state_from_per_parameter_states_resumes_like_the_real_one():
    model = conv_model(2)
    per_tensor = torch.optim.Adam(model.parameters(), lr=1e-3)
    steps(model, per_tensor, n=2)
    params = list(model.parameters())
    group = {k: v for k, v in per_tensor.state_dict()["param_groups"][0].items() if k != "params"}
    state = flat_adam_state([per_tensor.state[p] for p in params], params, group)
    flat_opt = FlatAdam(model.parameters(), lr=1e-3)
    flat_opt.load_state_dict(state)
    # each parameter's slice of the flat moments, read through its own layout, is its per-tensor moment
    offset = 0
    for p in params:
        k = p.numel()
        chunk = flat_opt.state[flat_opt.flat]["exp_avg"][offset : offset + k].as_strided(p.shape, p.stride())
        assert torch.equal(chunk, per_tensor.state[p]["exp_avg"])
        offset += k


def test_bf16_autocast_step_keeps_the_regulariser_in_fp32_and_tracks_fp32_training(test_seed):
    import pytest

    from trainers.config import TrainConfig
    from trainers.loop import train

    with pytest.raises(ValueError, match="amp: method 'vae'.*amp works with: .*eae"):
        TrainConfig(method="vae", amp="bf16")
    x = torch.rand(16, 1, 32, 32)
    model = conv_model(3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model.compute_loss(x)
    assert model.last_z.dtype == torch.bfloat16 and out.reg.dtype == torch.float32
    runs = {
        amp: train(
            TrainConfig(method="eae", dataset="digits", lam=0.5, epochs=2, lr=1e-3, amp=amp, device="cpu", seed=test_seed)
        )
        for amp in ("off", "bf16")
    }
    for key in ("train/loss", "eval/recon_mse"):
        assert runs["bf16"].metrics[key] == pytest.approx(runs["off"].metrics[key], rel=0.05), key
