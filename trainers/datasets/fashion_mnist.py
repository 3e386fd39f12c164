"""Fashion-MNIST: the same four IDX files as MNIST (torchvision's FashionMNIST layout), padded to 32x32."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from trainers.datasets import DatasetSpec, ImageData, register
from trainers.datasets.mnist import load_idx_dataset

CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip


def load_fashion_mnist(root: Path, download: bool) -> ImageData:
    data = load_idx_dataset("fashion-mnist", root, download, "FashionMNIST")
    return dataclasses.replace(data, label_names=CLASSES)


register(
    DatasetSpec(
        "fashion-mnist",
        load_fashion_mnist,
        "mnist-conv",
        "Fashion-MNIST 60k/10k from IDX files, padded to 32x32",
    )
)
