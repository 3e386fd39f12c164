"""Fréchet Inception Distance (Heusel et al. 2017): features -> (mu, sigma) -> distance, plus cached reference stats.

The maths is pure float64 numpy; the feature network is injected (``FeatureNet``), so everything but the network
itself is tested offline with cheap feature functions.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from evaluators.feature_extractor_inception_fidhelper import FeatureNet

DEFAULT_FID_SAMPLES = 10_000
DEFAULT_BATCH_SIZE = 64  # images per Inception pass and per cooperatively extracted reference shard
CACHE_ENV = "ESWEEP_FID_CACHE"
@dataclass(frozen=True)
class FidStats:
    mu: np.ndarray
    sigma: np.ndarray
    n: int
    # the reference features themselves (float32), for KID; None where only the statistics are known
    features: np.ndarray | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class FidResult:
    fid: float
    n_samples: int
    n_reference: int
    extractor: str


def as_float64(features: np.ndarray | torch.Tensor) -> np.ndarray:
    f = features.detach().cpu().numpy() if isinstance(features, torch.Tensor) else np.asarray(features)
    f = f.astype(np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features must have shape (n >= 2, F), got {f.shape}")
    return f


def stats_from_features(features: np.ndarray | torch.Tensor) -> FidStats:
    f = as_float64(features)
    return FidStats(f.mean(axis=0), np.cov(f, rowvar=False), f.shape[0])


def fid_from_stats(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    # Fréchet distance of two Gaussians (Heusel et al. 2017): ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2})
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shape mismatch: mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs {s2.shape}")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt_product(s1, s2))


def _sqrt_eigvalsh_sum(m: np.ndarray) -> float:
    return float(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum())


def psd_sqrt(m: np.ndarray) -> np.ndarray:
    """The symmetric square root of a covariance matrix (negative round-off eigenvalues clipped to 0)."""
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float:
    """Tr (S1 S2)^{1/2} = Tr (A S2 A)^{1/2} with A = S1^{1/2}: symmetric eigensolves, ~2x faster than eigvals."""
    a = psd_sqrt(s1)
    return _sqrt_eigvalsh_sum(a @ s2 @ a)


def fid_from_features_and_stats(features: np.ndarray | torch.Tensor, ref: FidStats) -> float:
    """FID of a feature set against reference statistics.

    With n <= F features S1 = X^T X / (n - 1) has rank < n, and the non-zero eigenvalues of S1 S2 are those of the
    n x n matrix X S2 X^T / (n - 1): the same value as ``fid_from_stats`` at a fraction of the cost for small n.
    """
    f = as_float64(features)
    if f.shape[0] > f.shape[1]:
        gen = stats_from_features(f)
        return fid_from_stats(gen.mu, gen.sigma, ref.mu, ref.sigma)
    mu = f.mean(axis=0)
    x = f - mu
    n = f.shape[0]
    diff = mu - ref.mu
    tr1 = float((x * x).sum()) / (n - 1)
    return float(
        diff @ diff + tr1 + np.trace(ref.sigma) - 2.0 * _sqrt_eigvalsh_sum(x @ ref.sigma @ x.T / (n - 1))
    )


def fid_from_features(f1: np.ndarray | torch.Tensor, f2: np.ndarray | torch.Tensor) -> float:
    a, b = as_float64(f1), as_float64(f2)
    small, large = (a, b) if len(a) <= len(b) else (b, a)
    return fid_from_features_and_stats(small, stats_from_features(large))


# what every image goes through before the extractor's own preprocessing (a provenance param of every run)
GENERATED_INPUT = "float images clamped to [0, 1], x255 rounded to uint8 [0, 255], grayscale repeated to RGB"


def to_uint8_rgb(x: torch.Tensor) -> torch.Tensor:
    """Images for the extractor: uint8 (N, 3, H, W); floats are taken in [0, 1], grayscale is repeated."""
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected images (N, 1|3, H, W), got {tuple(x.shape)}")
    if x.dtype != torch.uint8:
        x = (x.float().clamp(0, 1) * 255).round().to(torch.uint8)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def extract_features(batches: Iterable[torch.Tensor], net: FeatureNet) -> np.ndarray:
    """Features (float64) of an iterable of image batches (uint8 or [0, 1] floats), each sent to the net's device."""
    out = [net.forward(to_uint8_rgb(b).to(net.device)).double().cpu() for b in batches]
    if not out:
        raise ValueError("no images to extract features from")
    return torch.cat(out).numpy()


def batched(x: torch.Tensor, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterable[torch.Tensor]:
    return (x[i : i + batch_size] for i in range(0, len(x), batch_size))


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "esweep" / "fid")


def reference_key(images: torch.Tensor, extractor_name: str) -> str:
    """Content key: hash of the images' bytes and shape, and the extractor's name."""
    h = hashlib.sha256()
    h.update(f"{extractor_name}|{tuple(images.shape)}|{images.dtype}|".encode())
    h.update(images.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:32]


def _load_reference(path: Path) -> FidStats | None:
    """The cached statistics, or None where there are none (or only ones written before KID, without features)."""
    try:
        with np.load(path) as d:
            if "features" in d:
                return FidStats(d["mu"], d["sigma"], int(d["n"]), d["features"])
    except FileNotFoundError:
        pass
    return None


def _load_shard(path: Path) -> np.ndarray | None:
    try:
        with np.load(path) as d:
            return d["features"]
    except FileNotFoundError:  # removed once the whole reference was written
        return None


def _save_npz(path: Path, **arrays) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.{threading.get_ident()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def reference_stats(
    images: torch.Tensor,
    net: FeatureNet,
    cache_dir: str | Path | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> FidStats:
    """Statistics and features (float32, for KID) of the reference (test) images, computed once per content key
    and cached on disk. A cache file without features (written before KID) is computed again.

    Concurrent workers share the work: the images are cut into shards of one batch, each extracted by whichever
    worker locks it first (a worker skips a shard another holds, then waits only for the shards still running),
    so two trials that reach evaluation together each extract half instead of one waiting for the other.
    """
    from filelock import FileLock, Timeout

    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    key = reference_key(images, net.name)
    path = cache / f"{key}.npz"
    if (done := _load_reference(path)) is not None:
        return done
    shard_dir = cache / f"{key}.shards"
    shard_dir.mkdir(exist_ok=True)
    starts = range(0, len(images), batch_size)
    feats: dict[int, np.ndarray] = {}

    def take(i: int, start: int) -> None:
        shard = shard_dir / f"{i:06d}.npz"
        if (f := _load_shard(shard)) is None:
            f = extract_features([images[start : start + batch_size]], net).astype(np.float32)
            _save_npz(shard, features=f)
        feats[i] = f

    for i, start in enumerate(starts):  # first pass: every shard no other worker holds
        lock = FileLock(str(shard_dir / f"{i:06d}.lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue
        except FileNotFoundError:  # the shards were removed: the whole reference has been written
            return _load_reference(path) or reference_stats(images, net, cache_dir, batch_size)
        try:
            if (done := _load_reference(path)) is not None:
                return done
            take(i, start)
        finally:
            lock.release()
    for i, start in enumerate(starts):  # second pass: wait for the shards others were extracting
        if i not in feats:
            lock = FileLock(str(shard_dir / f"{i:06d}.lock"))
            try:
                lock.acquire()
            except FileNotFoundError:
                return _load_reference(path) or reference_stats(images, net, cache_dir, batch_size)
            try:
                if (done := _load_reference(path)) is not None:
                    return done
                take(i, start)
            finally:
                lock.release()
    with FileLock(str(path) + ".lock"):
        if (done := _load_reference(path)) is not None:
            return done
        features = np.concatenate([feats[i] for i in range(len(starts))])
        stats = stats_from_features(features)
        stats = FidStats(stats.mu, stats.sigma, stats.n, features)
        _save_npz(path, mu=stats.mu, sigma=stats.sigma, n=stats.n, features=features, extractor=net.name)
        shutil.rmtree(shard_dir, ignore_errors=True)
        return stats


def decoded_batches(
    decode: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor, device: torch.device, batch_size: int
) -> Iterable[torch.Tensor]:
    """Decode latents batch by batch on ``device``; images in [0, 1], so only a batch is held at a time."""
    for zb in batched(z, batch_size):
        with torch.no_grad():
            yield decode(zb.to(device))


def features_of_latents(
    decode: Callable[[torch.Tensor], torch.Tensor],
    z: torch.Tensor,
    net: FeatureNet,
    device: torch.device,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> np.ndarray:
    """Features (float64) of the images decoded from latents ``z``: one network pass, for FID, KID and FID-inf."""
    return extract_features(decoded_batches(decode, z, device, batch_size), net)


def fid_of_latents(
    decode: Callable[[torch.Tensor], torch.Tensor],
    z: torch.Tensor,
    reference: FidStats,
    net: FeatureNet,
    device: torch.device,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> FidResult:
    """FID between images decoded from latents ``z`` and the reference statistics."""
    feats = features_of_latents(decode, z, net, device, batch_size)
    return FidResult(fid_from_features_and_stats(feats, reference), len(feats), reference.n, net.name)


def fid_of_images(
    images: torch.Tensor,
    reference: FidStats,
    net: FeatureNet,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> FidResult:
    feats = extract_features(batched(images, batch_size), net)
    return FidResult(fid_from_features_and_stats(feats, reference), len(feats), reference.n, net.name)
