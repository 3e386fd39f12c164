"""CIFAR-10: the python pickles of cifar-10-batches-py (data_batch_1..5, test_batch), 32x32x3, no preprocessing
(Ghose 2020, 'Preprocessing datasets')."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from trainers.datasets import DatasetSpec, ImageData, missing_files_error, register

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _missing(folder: Path) -> list[str]:
    return [f"{FOLDER}/{f}" for f in TRAIN_FILES + TEST_FILES if not (folder / f).exists()]


def _read_batches(folder: Path, files: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for name in files:
        with open(folder / name, "rb") as f:
            batch = pickle.load(f, encoding="bytes")  # the official format: a dict with b"data" and b"labels"
        xs.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(batch[b"labels"], dtype=np.int64))
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))


def load_cifar10(root: Path, download: bool) -> ImageData:
    folder = root / FOLDER
    missing = _missing(folder)
    download_error = ""
    if missing and download:
        import torchvision.datasets as tvd

        try:
            tvd.CIFAR10(str(root), train=True, download=True)
        except Exception as exc:  # offline: fall through to the clear error below
            download_error = f" (download failed: {exc.__class__.__name__}: {exc})"
        missing = _missing(folder)
    if missing:
        raise missing_files_error(
            "cifar10",
            root,
            missing,
            f"Place the CIFAR-10 python batches there or run online{download_error}.",
        )
    train_x, train_y = _read_batches(folder, TRAIN_FILES)
    test_x, test_y = _read_batches(folder, TEST_FILES)
    return ImageData(train_x, train_y, test_x, test_y, label_names=CLASSES)


register(
    DatasetSpec("cifar10", load_cifar10, "cifar-conv", "CIFAR-10 50k/10k from the python pickles, 32x32x3")
)
