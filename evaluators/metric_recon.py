"""Reconstruction error: mean squared error per pixel, the figure the leaderboard shows."""

from __future__ import annotations

import torch


def recon_mse(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    if x.shape != x_hat.shape:
        raise ValueError(f"shape mismatch: {tuple(x.shape)} vs {tuple(x_hat.shape)}")
    return float(((x.to(torch.float64) - x_hat.to(torch.float64)) ** 2).mean())
