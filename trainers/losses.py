"""Regulariser losses shared by several methods."""

from __future__ import annotations

import math

import torch


def eccentric_M(mu: float, d: int) -> float:
    """M = 2d (1 + 1/(2 mu (d-1))) / (2 mu - 1), Li & Blair sec. 2 (derived in appendix A.2)."""
    if not mu > 0.5:
        raise ValueError(f"mu must be > 0.5, got {mu}")
    if d < 2:
        raise ValueError(f"latent dimension d must be >= 2, got {d}")
    return 2.0 * d * (1.0 + 1.0 / (2.0 * mu * (d - 1))) / (2.0 * mu - 1.0)


def _eccentric_forward(z: torch.Tensor, mu: float, M: float) -> tuple[torch.Tensor, torch.Tensor]:
    """l_mu and w_ij = 1 / (1 + |z_i - z_j|^2 / M), the one n x n buffer its gradient needs."""
    n = z.shape[0]
    sq = (z * z).sum(dim=1)
    # t_ij = |z_i - z_j|^2 / M from one addmm on the Gram matrix, clamped at 0 in place against rounding, so that
    # coincident points give log(1) = 0
    t = torch.addmm((sq[:, None] + sq[None, :]).div_(M), z, z.T, alpha=-2.0 / M).clamp_min_(0.0)
    repulsion = torch.log1p(t).sum()
    # Li & Blair eq. (1) as in A.3: sum_ij ||z_i||^2 / (n-1) - mu M sum_ij log(1 + t_ij) / (n(n-1))
    loss = (n * sq.sum() - mu * M * repulsion) / (n * (n - 1))
    return loss, t.add_(1.0).reciprocal_()


def _eccentric_backward(z: torch.Tensor, w: torch.Tensor, mu: float, grad_loss: torch.Tensor) -> torch.Tensor:
    # d l_mu / d z_i = (2n z_i - 4 mu (z_i sum_j w_ij - sum_j w_ij z_j)) / (n(n-1)): one matmul, no n x n pass
    n = z.shape[0]
    grad = (2.0 * n) * z - (4.0 * mu) * (z * w.sum(dim=1, keepdim=True) - w @ z)
    return grad * (grad_loss / (n * (n - 1)))


class _EccentricLoss(torch.autograd.Function):
    """l_mu with its gradient in closed form; autograd through addmm, clamp and log1p needs three n x n passes
    and keeps three n x n buffers. Old-style (ctx in forward): the cheapest dispatch for the eager step."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, mu: float, M: float) -> torch.Tensor:
        loss, w = _eccentric_forward(z, mu, M)
        ctx.mu = mu
        ctx.save_for_backward(z, w)
        return loss

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        z, w = ctx.saved_tensors
        return _eccentric_backward(z, w, ctx.mu, grad_loss), None, None


class _EccentricLossVmap(torch.autograd.Function):
    """The same, in the form torch.func transforms accept: packed trials (trainers/packed.py) run it under vmap."""

    generate_vmap_rule = True

    @staticmethod
    def forward(z: torch.Tensor, mu: float, M: float) -> tuple[torch.Tensor, torch.Tensor]:
        return _eccentric_forward(z, mu, M)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        z, mu, _ = inputs
        ctx.mu = mu
        ctx.mark_non_differentiable(output[1])
        ctx.save_for_backward(z, output[1])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss: torch.Tensor, _grad_w: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        z, w = ctx.saved_tensors
        return _eccentric_backward(z, w, ctx.mu, grad_loss), None, None


def eccentric_loss(z: torch.Tensor, mu: float = 1.0) -> torch.Tensor:
    """l_mu of Li & Blair eq. (1): pairwise K_{mu,M} summed over all (i, j) and divided by n(n-1), as in A.3.

    Finite for coincident points; forward + backward hold two n x n buffers at peak, where autograd through the
    reference code holds more (benchmarks/eccentric_loss.py measures time and memory against it).
    """
    if z.ndim != 2:
        z = z.reshape(z.shape[0], -1)
    n, d = z.shape
    M = eccentric_M(mu, d)
    if n < 2:
        raise ValueError(f"eccentric_loss needs at least 2 points, got {n}")
    if torch._C._are_functorch_transforms_active():
        return _EccentricLossVmap.apply(z, float(mu), M)[0]
    return _EccentricLoss.apply(z, float(mu), M)


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, diag exp(logvar)) || N(0, I)), summed over dimensions, averaged over the batch (Kingma &
    Welling 2014, appendix B)."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1).mean()


# sigma^2 scales of the IMQ kernel, as in Tolstikhin et al. 2018's released WAE code
IMQ_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def _imq(sq_dist: torch.Tensor, d: int, scales: tuple[float, ...]) -> torch.Tensor:
    # k(x, y) = C / (C + ||x - y||^2) with C = 2 d sigma^2 (Tolstikhin et al. sec. 4), summed over scales
    return sum(c / (c + sq_dist) for c in (2.0 * d * s for s in scales))


def mmd_imq(x: torch.Tensor, y: torch.Tensor, scales: tuple[float, ...] = IMQ_SCALES) -> torch.Tensor:
    """Unbiased MMD^2 between samples x (n, d) and y (m, d) under the multi-scale inverse multiquadratic kernel
    (Tolstikhin et al. 2018, Algorithm 2)."""
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"mmd_imq needs two (n, d) samples of equal d, got {tuple(x.shape)} and {tuple(y.shape)}")
    n, d = x.shape
    m = y.shape[0]
    if n < 2 or m < 2:
        raise ValueError(f"mmd_imq needs at least 2 points per sample, got {n} and {m}")
    if not scales or min(scales) <= 0:
        raise ValueError(f"IMQ scales must be positive, got {scales}")
    k_xx = _imq(torch.cdist(x, x).pow(2), d, scales)
    k_yy = _imq(torch.cdist(y, y).pow(2), d, scales)
    k_xy = _imq(torch.cdist(x, y).pow(2), d, scales)
    # the unbiased estimator drops the diagonal self-similarities k(x_i, x_i)
    xx = (k_xx.sum() - k_xx.diagonal().sum()) / (n * (n - 1))
    yy = (k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    return xx + yy - 2.0 * k_xy.mean()


def kozachenko_leonenko_entropy(z: torch.Tensor, k: int = 1) -> torch.Tensor:
    """Differential entropy (nats) of the sample z (n, d) by the Kozachenko-Leonenko k-nearest-neighbour estimator
    H = psi(n) - psi(k) + log V_d + (d / n) sum_i log eps_i, eps_i the distance from z_i to its k-th neighbour
    and V_d = pi^(d/2) / Gamma(d/2 + 1) the unit-ball volume (Ghose 2020 sec. 2.3.2; Kraskov et al. 2004 eq. 20).
    """
    if z.ndim != 2:
        raise ValueError(f"kozachenko_leonenko_entropy needs (n, d) codes, got {tuple(z.shape)}")
    n, d = z.shape
    if not 1 <= k < n:
        raise ValueError(f"need 1 <= k < n, got k={k} for n={n} points")
    # exact pairwise distances: the matmul shortcut is imprecise for close neighbours, which dominate here
    dist = torch.cdist(z, z, compute_mode="donot_use_mm_for_euclid_dist")
    dist = dist.masked_fill(torch.eye(n, dtype=torch.bool, device=z.device), float("inf"))
    eps = dist.topk(k, dim=1, largest=False).values[:, -1]
    log_unit_ball = 0.5 * d * math.log(math.pi) - math.lgamma(0.5 * d + 1.0)
    const = _digamma(n) - _digamma(k) + log_unit_ball
    # coincident codes would give log 0; the floor keeps the estimate finite
    return const + d * eps.clamp_min(1e-12).log().mean()


def _digamma(x: int) -> float:
    return float(torch.special.digamma(torch.tensor(float(x), dtype=torch.float64)))


def rae_embedding_loss(z: torch.Tensor) -> torch.Tensor:
    """L_z = ||z||^2 / 2, averaged over the batch (Ghosh et al. 2020 sec. 4, the RAE code penalty)."""
    return 0.5 * z.pow(2).flatten(1).sum(dim=1).mean()
