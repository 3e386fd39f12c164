"""Fidelity and diversity apart, from the features already extracted for FID: precision, recall and F-score
(Kynkäänniemi et al. 2019, k = 3) and density and coverage (Naeem et al. 2020, k = 5).

Each real (reference) sample's k-NN ball and each generated sample's k-NN ball estimate the two manifolds:
- precision: the fraction of generated samples inside some real ball (are samples realistic?);
- recall: the fraction of real samples inside some generated ball (is the data's variety produced?);
- density: generated samples per real ball, over k, averaged (> 1 where samples crowd the dense regions);
- coverage: the fraction of real samples whose own ball holds a generated sample (robust to generated outliers).

Precision/recall follow torch-fidelity 0.4's ``prc`` exactly (``metric_prc.prc_features_to_metric(generated,
real)``: balls closed, ``<=``; tests/evaluators/test_eval_prdc.py checks they agree); density/coverage follow the
``prdc`` package (open balls, ``<``). Distances are computed in row chunks, so n x n matrices never sit in memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

PRC_NEIGHBORHOOD = 3  # Kynkäänniemi et al. 2019, sec. 3; torch-fidelity's prc_neighborhood
DC_NEIGHBORHOOD = 5  # Naeem et al. 2020 (their recommended k)
CHUNK_ROWS = 1024  # rows of a distance block: 1024 x 10,000 float64 = 80 MB


@dataclass(frozen=True)
class PrdcResult:
    precision: float
    recall: float
    f_score: float
    density: float
    coverage: float
    n_generated: int
    n_reference: int


def _as_tensor(features: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    t = features if isinstance(features, torch.Tensor) else torch.from_numpy(np.asarray(features))
    t = t.detach().to(device=device, dtype=torch.float64)
    if t.ndim != 2 or t.shape[0] < 2:
        raise ValueError(f"features must have shape (n >= 2, F), got {tuple(t.shape)}")
    return t


def _distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.cdist(x, y)


def knn_radii(x: torch.Tensor, ks: tuple[int, ...]) -> dict[int, torch.Tensor]:
    """Per sample, the distance to its k-th nearest other sample, for each k (self is the 0th neighbour)."""
    k_max = max(ks)
    if len(x) <= k_max:
        raise ValueError(f"a k-NN radius with k = {k_max} needs more than {k_max} samples, got {len(x)}")
    nearest = torch.cat(
        [_distances(c, x).topk(k_max + 1, dim=1, largest=False).values for c in x.split(CHUNK_ROWS)]
    )
    return {k: nearest[:, k] for k in ks}


def f_score(precision: float, recall: float) -> float:
    # harmonic mean, with torch-fidelity's guard against 0 / 0
    return 2 * precision * recall / max(1e-5, precision + recall)


def prdc_from_features(
    gen: np.ndarray | torch.Tensor,
    ref: np.ndarray | torch.Tensor,
    *,
    prc_k: int = PRC_NEIGHBORHOOD,
    dc_k: int = DC_NEIGHBORHOOD,
    ref_radii: dict[int, torch.Tensor] | None = None,
    device: str | torch.device = "cpu",
) -> PrdcResult:
    """Precision, recall, F-score, density and coverage of generated features against reference (real) ones,
    each (n, F), in that order: generated first, as in torch-fidelity 0.4. ``ref_radii`` (``knn_radii(ref,
    (prc_k, dc_k))``) may be passed to reuse the reference's balls across samplers."""
    if prc_k < 1 or dc_k < 1:
        raise ValueError(f"neighbourhoods must be >= 1, got prc_k={prc_k}, dc_k={dc_k}")
    device = torch.device(device)
    g, r = _as_tensor(gen, device), _as_tensor(ref, device)
    if g.shape[1] != r.shape[1]:
        raise ValueError(f"features must share F, got {tuple(g.shape)} and {tuple(r.shape)}")
    real = ref_radii if ref_radii is not None else knn_radii(r, (prc_k, dc_k))
    real_prc, real_dc = real[prc_k].to(device), real[dc_k].to(device)
    gen_prc = knn_radii(g, (prc_k,))[prc_k]
    in_real_ball = torch.zeros(len(g), dtype=torch.bool, device=device)
    in_gen_ball = torch.zeros(len(r), dtype=torch.bool, device=device)
    nearest_gen = torch.full((len(r),), torch.inf, dtype=torch.float64, device=device)
    dc_hits = torch.zeros((), dtype=torch.float64, device=device)
    for start in range(0, len(g), CHUNK_ROWS):
        d = _distances(g[start : start + CHUNK_ROWS], r)  # (chunk of generated, reference)
        # precision (Kynkäänniemi et al. eq. 1-2): generated sample inside some real k-NN ball
        in_real_ball[start : start + len(d)] = (d <= real_prc).any(dim=1)
        # recall (eq. 1-2, roles swapped): real sample inside some generated k-NN ball
        in_gen_ball |= (d <= gen_prc[start : start + len(d), None]).any(dim=0)
        # density (Naeem et al. sec. 3): real k-NN balls holding each generated sample, counted
        dc_hits += (d < real_dc).sum(dtype=torch.float64)
        nearest_gen = torch.minimum(nearest_gen, d.min(dim=0).values)
    precision = float(in_real_ball.double().mean())
    recall = float(in_gen_ball.double().mean())
    density = float(dc_hits) / (dc_k * len(g))
    # coverage (Naeem et al. sec. 3): real samples whose own k-NN ball holds a generated sample
    coverage = float((nearest_gen < real_dc).double().mean())
    return PrdcResult(precision, recall, f_score(precision, recall), density, coverage, len(g), len(r))
