"""Every on-disk dataset loads from tiny files written in its real format, offline; a missing file is named."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from trainers import datasets
from trainers.datasets import DatasetMissingError
from trainers.datasets.mnist import IDX_FILES


def write_idx(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_idx_set(folder: Path, n_train: int = 6, n_test: int = 4) -> None:
    rng = np.random.default_rng(0)
    write_idx(folder / IDX_FILES["train_x"], rng.integers(0, 256, (n_train, 28, 28)))
    write_idx(folder / IDX_FILES["train_y"], np.arange(n_train) % 10)
    write_idx(folder / IDX_FILES["test_x"], rng.integers(0, 256, (n_test, 28, 28)))
    write_idx(folder / IDX_FILES["test_y"], np.arange(n_test) % 10)


@pytest.mark.parametrize(("name", "folder"), [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_idx_datasets(tmp_path, name, folder):
    write_idx_set(tmp_path / folder / "raw")
    data = datasets.load(name, tmp_path, download=False)
    assert data.train_x.shape == (6, 1, 32, 32) and data.test_x.shape == (4, 1, 32, 32)
    assert data.train_x.dtype == torch.uint8
    assert data.train_y.tolist() == [0, 1, 2, 3, 4, 5]
    assert len(data.label_names) == 10
    assert datasets.DATASETS.get(name).default_arch == "mnist-conv"


def test_idx_missing_file_is_named(tmp_path):
    write_idx_set(tmp_path / "FashionMNIST" / "raw")
    (tmp_path / "FashionMNIST" / "raw" / IDX_FILES["test_y"]).unlink()
    with pytest.raises(DatasetMissingError, match=IDX_FILES["test_y"]):
        datasets.load("fashion-mnist", tmp_path, download=False)


def write_cifar(root: Path, per_batch: int = 3) -> np.ndarray:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6 * per_batch, 3 * 32 * 32), dtype=np.uint8)
    for i, name in enumerate([f"data_batch_{b}" for b in range(1, 6)] + ["test_batch"]):
        rows = images[i * per_batch : (i + 1) * per_batch]
        batch = {b"data": rows, b"labels": [int(v) % 10 for v in range(i, i + per_batch)]}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    return images


def test_cifar10(tmp_path):
    images = write_cifar(tmp_path)
    data = datasets.load("cifar10", tmp_path, download=False)
    assert data.train_x.shape == (15, 3, 32, 32) and data.test_x.shape == (3, 3, 32, 32)
    assert torch.equal(data.train_x[0], torch.from_numpy(images[0].reshape(3, 32, 32)))
    assert data.train_y[:3].tolist() == [0, 1, 2]
    assert data.label_names[0] == "airplane"


def test_cifar10_missing_file_is_named(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetMissingError, match="data_batch_3"):
        datasets.load("cifar10", tmp_path, download=False)


ATTRS = ("5_o_Clock_Shadow", "Smiling", "Young")


def write_celeba(root: Path, partitions=(0, 0, 0, 1, 2, 2)) -> list[np.ndarray]:
    from PIL import Image

    folder = root / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True)
    files = [f"{i + 1:06d}.jpg" for i in range(len(partitions))]
    pixels = []
    for i, f in enumerate(files):
        # a flat colour per image survives JPEG, crop and resize, so the test can check which image went where
        colour = np.array([40 * i, 255 - 40 * i, 128], dtype=np.uint8)
        pixels.append(colour)
        Image.fromarray(np.broadcast_to(colour, (218, 178, 3)).copy()).save(folder / "img_align_celeba" / f)
    (folder / "list_eval_partition.txt").write_text("".join(f"{f} {p}\n" for f, p in zip(files, partitions, strict=True)))
    rows = [f"{f} " + " ".join("1" if (i + a) % 2 else "-1" for a in range(len(ATTRS))) for i, f in enumerate(files)]
    (folder / "list_attr_celeba.txt").write_text(f"{len(files)}\n{' '.join(ATTRS)}\n" + "\n".join(rows) + "\n")
    return pixels


def test_celeba_loads_caches_and_memory_maps(tmp_path):
    colours = write_celeba(tmp_path)
    data = datasets.load("celeba", tmp_path, download=False)
    assert data.train_x.shape == (3, 3, 64, 64) and data.test_x.shape == (2, 3, 64, 64)
    assert data.label_names == ATTRS
    assert data.train_y.shape == (3, 3) and set(data.train_y.unique().tolist()) <= {0, 1}
    assert data.train_y[0].tolist() == [0, 1, 0] and data.test_y[0].tolist() == [0, 1, 0]  # rows 1 and 5
    centre = data.test_x[1, :, 32, 32].int()
    assert (centre - torch.from_numpy(colours[5]).int()).abs().max() <= 3
    assert (tmp_path / "celeba" / "esweep_cache_64.npy").exists()

    # the cache alone now suffices: the JPEGs may go
    for jpg in (tmp_path / "celeba" / "img_align_celeba").iterdir():
        jpg.unlink()
    again = datasets.load("celeba", tmp_path, download=False)
    assert torch.equal(again.train_x, data.train_x) and torch.equal(again.test_x, data.test_x)


def test_celeba_missing_files_are_named(tmp_path):
    write_celeba(tmp_path)
    (tmp_path / "celeba" / "img_align_celeba" / "000002.jpg").unlink()
    with pytest.raises(DatasetMissingError, match="000002.jpg"):
        datasets.load("celeba", tmp_path, download=False)
    (tmp_path / "celeba" / "list_attr_celeba.txt").unlink()
    with pytest.raises(DatasetMissingError, match="list_attr_celeba.txt"):
        datasets.load("celeba", tmp_path, download=False)


def test_digits_offline_and_deterministic():
    a, b = datasets.load("digits"), datasets.load("digits")
    assert a.train_x.shape == (1437, 1, 8, 8) and a.test_x.shape == (360, 1, 8, 8)
    assert a.train_x.dtype == torch.uint8 and int(a.train_x.max()) == 255
    assert torch.equal(a.test_y, b.test_y) and torch.equal(a.train_x, b.train_x)
    assert torch.bincount(a.test_y).tolist() == pytest.approx([36] * 10, abs=1)  # stratified
    spec = datasets.DATASETS.get("digits")
    assert spec.default_arch == "mlp-small" and not spec.needs_data_root


def test_digits_attributes_are_binary_functions_of_the_digit():
    plain, attrs = datasets.load("digits"), datasets.load("digits-attributes")
    assert torch.equal(plain.train_x, attrs.train_x) and torch.equal(plain.test_x, attrs.test_x)
    y, a = plain.train_y, attrs.train_y
    assert a.shape == (len(y), 12) and a.dtype == torch.int64 and set(a.unique().tolist()) == {0, 1}
    assert torch.equal(a[:, :10].argmax(dim=1), y) and (a[:, :10].sum(dim=1) == 1).all()
    assert torch.equal(a[:, 10], (y % 2 == 0).long()) and torch.equal(a[:, 11], (y > 4).long())
    assert attrs.label_names[-2:] == ("even", "above_4") and not datasets.DATASETS.get("digits-attributes").needs_data_root
