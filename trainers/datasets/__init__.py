"""Dataset registry: name -> loader(data_root, download) returning uint8 image tensors, ready to live on a device."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from evaluators.registry import Registry


class DatasetMissingError(FileNotFoundError):
    """Raised when a dataset's files are not under --data-root and cannot be downloaded."""


@dataclass(frozen=True)
class ImageData:
    """Images as uint8 (N, C, H, W); labels as int64 (N,) or, for attribute datasets, (N, A) in {0, 1}."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    label_names: tuple[str, ...] = field(default=())

    def __post_init__(self):
        for name in ("train_x", "test_x"):
            t = getattr(self, name)
            if t.dtype != torch.uint8 or t.ndim != 4:
                raise ValueError(f"{name} must be uint8 (N, C, H, W), got {t.dtype} {tuple(t.shape)}")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    load: Callable[[Path, bool], ImageData]
    default_arch: str
    description: str
    needs_data_root: bool = True


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def register(spec: DatasetSpec) -> DatasetSpec:
    return DATASETS.register(spec.name)(spec)


def load(name: str, data_root: str | Path | None = None, download: bool = True) -> ImageData:
    spec = DATASETS.get(name)
    root = Path(data_root) if data_root is not None else Path.home() / ".cache" / "esweep" / "data"
    return spec.load(root, download)


def missing_files_error(dataset: str, root: Path, missing: list[str], hint: str) -> DatasetMissingError:
    return DatasetMissingError(
        f"dataset {dataset!r}: missing under --data-root {root}: {', '.join(missing)}. {hint}"
    )


from trainers.datasets import celeba, cifar10, digits, fashion_mnist, mnist  # noqa: E402,F401  (registration)
