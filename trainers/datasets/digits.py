"""scikit-learn's 8x8 digits (1,797 images, shipped with scikit-learn, offline): tiny, for smoke tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from trainers.datasets import DatasetSpec, ImageData, register

TEST_FRACTION = 0.2


def load_digits(root: Path, download: bool) -> ImageData:
    """A fixed stratified 80/20 split; pixel values 0..16 scaled to 0..255."""
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_load_digits()
    x = np.rint(bunch.data * (255.0 / 16.0)).astype(np.uint8).reshape(-1, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    train_idx, test_idx = train_test_split(
        np.arange(len(y)), test_size=TEST_FRACTION, stratify=y, random_state=0
    )
    return ImageData(
        train_x=torch.from_numpy(x[train_idx]),
        train_y=torch.from_numpy(y[train_idx]),
        test_x=torch.from_numpy(x[test_idx]),
        test_y=torch.from_numpy(y[test_idx]),
        label_names=tuple(str(i) for i in range(10)),
    )


register(
    DatasetSpec(
        "digits",
        load_digits,
        "mlp-small",
        "scikit-learn's 1,797 8x8 digits (offline), stratified 80/20 train/test, values scaled to 0..255",
        needs_data_root=False,
    )
)

ATTRIBUTES = (*(f"is_{k}" for k in range(10)), "even", "above_4")


def load_digits_attributes(root: Path, download: bool) -> ImageData:
    """The same images and split, labelled with binary attributes of the digit instead of the class, so that
    attribute classifiers (Li & Blair Table 3, CelebA's 40 attributes) can be exercised offline."""
    data = load_digits(root, download)

    def attributes(y: torch.Tensor) -> torch.Tensor:
        one_hot = torch.nn.functional.one_hot(y, 10)
        return torch.cat([one_hot, (y % 2 == 0)[:, None], (y > 4)[:, None]], dim=1).to(torch.int64)

    return ImageData(data.train_x, attributes(data.train_y), data.test_x, attributes(data.test_y), ATTRIBUTES)


register(
    DatasetSpec(
        "digits-attributes",
        load_digits_attributes,
        "mlp-small",
        "scikit-learn's digits (offline), labelled with 12 binary attributes (is_0 .. is_9, even, above_4)",
        needs_data_root=False,
    )
)
