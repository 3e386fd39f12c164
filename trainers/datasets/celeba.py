"""CelebA aligned faces: centre-crop 140x140, resize to 64x64 (Ghose 2020, 'Preprocessing datasets'), the 40
binary attributes as labels. Train = the official partition 0, test = partition 2 (validation, 1, unused).

Decoding ~200k JPEGs takes minutes, so the uint8 result is cached once per node as a .npy under data_root (built
under a file lock, so parallel first users decode once) and memory-mapped afterwards.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock

from trainers.datasets import DatasetSpec, ImageData, missing_files_error, register

FOLDER = "celeba"
IMAGES = "img_align_celeba"
PARTITION = "list_eval_partition.txt"
ATTRIBUTES = "list_attr_celeba.txt"
CROP = 140
SIZE = 64
CACHE = f"esweep_cache_{SIZE}.npy"
TRAIN_PARTITION, TEST_PARTITION = 0, 2


def read_partition(path: Path) -> tuple[list[str], np.ndarray]:
    """``<file> <0|1|2>`` per line -> file names and partition ids."""
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return [r[0] for r in rows], np.array([int(r[1]) for r in rows], dtype=np.int64)


def read_attributes(path: Path) -> tuple[tuple[str, ...], dict[str, np.ndarray]]:
    """Line 1: count; line 2: the attribute names; then ``<file> +-1 ...`` -> names and {file: {0,1} vector}."""
    lines = path.read_text().splitlines()
    names = tuple(lines[1].split())
    table = {}
    for line in lines[2:]:
        parts = line.split()
        if parts:
            table[parts[0]] = (np.array([int(v) for v in parts[1:]], dtype=np.int64) > 0).astype(np.int64)
    return names, table


def _decode(path: Path) -> np.ndarray:
    from PIL import Image
    from torchvision.transforms import functional as TF

    with Image.open(path) as img:
        img = TF.resize(TF.center_crop(img.convert("RGB"), CROP), [SIZE, SIZE], antialias=True)
        return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)


def _build_cache(folder: Path, files: list[str], cache: Path) -> None:
    tmp = cache.with_name(cache.name + ".tmp.npy")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(files), 3, SIZE, SIZE))
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # PIL decodes outside the GIL
        for i, img in enumerate(pool.map(_decode, (folder / IMAGES / f for f in files), chunksize=64)):
            out[i] = img
    out.flush()
    del out
    os.replace(tmp, cache)


def _cache_is_valid(cache: Path, n: int) -> bool:
    if not cache.exists():
        return False
    return np.load(cache, mmap_mode="r").shape == (n, 3, SIZE, SIZE)


def _rows(images: np.ndarray, mask: np.ndarray) -> torch.Tensor:
    idx = np.flatnonzero(mask)
    # the official partitions are contiguous, so a slice keeps the split memory-mapped instead of copying it
    part = images[idx[0] : idx[-1] + 1] if len(idx) and idx[-1] - idx[0] + 1 == len(idx) else images[idx]
    # a read-only memory map: the loop only reads it (or copies it to the device)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(part)


def load_celeba(root: Path, download: bool) -> ImageData:
    folder = root / FOLDER
    cache = folder / CACHE

    def missing_files() -> list[str]:
        missing = [f"{FOLDER}/{f}" for f in (PARTITION, ATTRIBUTES) if not (folder / f).exists()]
        if not missing and not cache.exists():
            files, _ = read_partition(folder / PARTITION)
            absent = [f for f in files if not (folder / IMAGES / f).exists()]
            missing += [f"{FOLDER}/{IMAGES}/{f}" for f in absent[:5]]
            if len(absent) > 5:
                missing.append(f"... ({len(absent)} images in all)")
        return missing

    missing = missing_files()
    download_error = ""
    if missing and download:
        import torchvision.datasets as tvd

        try:
            tvd.CelebA(str(root), split="all", target_type="attr", download=True)
        except Exception as exc:  # offline (or Google Drive's quota): fall through to the clear error below
            download_error = f" (download failed: {exc.__class__.__name__}: {exc})"
        missing = missing_files()
    if missing:
        raise missing_files_error(
            "celeba",
            root,
            missing,
            f"Place the aligned CelebA images and list files there or run online{download_error}.",
        )

    files, partition = read_partition(folder / PARTITION)
    names, table = read_attributes(folder / ATTRIBUTES)
    unlabelled = [f for f in files if f not in table]
    if unlabelled:
        raise ValueError(
            f"celeba: {len(unlabelled)} images have no row in {ATTRIBUTES}, e.g. {unlabelled[0]}"
        )
    with FileLock(str(cache) + ".lock"):
        if not _cache_is_valid(cache, len(files)):
            _build_cache(folder, files, cache)
    images = np.load(cache, mmap_mode="r")
    labels = torch.from_numpy(np.stack([table[f] for f in files]))
    train, test = partition == TRAIN_PARTITION, partition == TEST_PARTITION
    return ImageData(
        train_x=_rows(images, train),
        train_y=labels[torch.from_numpy(train)],
        test_x=_rows(images, test),
        test_y=labels[torch.from_numpy(test)],
        label_names=names,
    )


register(
    DatasetSpec(
        "celeba",
        load_celeba,
        "celeba-conv",
        "CelebA aligned faces, centre-crop 140, resized to 64x64; official train/test partitions; 40 attributes",
    )
)
