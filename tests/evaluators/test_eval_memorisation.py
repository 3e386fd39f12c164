"""Meehan et al.'s C_T and the copy fraction on planted feature sets: a generator returning training points is
flagged, one returning held-out test points is not, nor one drawing fresh points from the data's distribution.

Bounds: over 15 seeds (1000 training, 500 test, 500 generated points of a 5-mode mixture in 16 dimensions) fresh
samples gave C_T 0.15 +- 0.34, copies -8.98 +- 0.22, copies with noise of 0.3 per coordinate -8.62 +- 0.29."""

import numpy as np
import pytest
import torch
from torch import nn

from evaluators import names
from evaluators.metric_memorisation import (
    COPYING_THRESHOLD,
    copy_fraction,
    data_copying,
    default_cells,
    mann_whitney_z,
)
from evaluators.trial_eval import evaluate_trial

DIM = 16


@pytest.fixture
def world(test_seed):
    rng = np.random.default_rng(test_seed)
    centres = rng.standard_normal((5, DIM)) * 4

    def draw(n):
        return centres[rng.integers(0, len(centres), n)] + rng.standard_normal((n, DIM))

    return rng, draw, draw(1000), draw(500)


def test_a_copier_is_flagged(world):
    rng, _, train, test = world
    copies = train[rng.choice(len(train), 500, replace=False)]
    r = data_copying(copies, train, test)
    assert r.copying and r.ct < COPYING_THRESHOLD - 3
    assert r.copy_fraction == 1.0
    noisy = data_copying(copies + 0.3 * rng.standard_normal(copies.shape), train, test)
    assert noisy.copying and noisy.copy_fraction > 0.9  # near-copies too


def test_held_out_images_are_not_flagged(world):
    _, _, train, test = world
    r = data_copying(test.copy(), train, test)
    assert not r.copying and r.ct == 0.0  # the same distances on both sides: U = mn / 2 in every cell
    assert r.copy_fraction == 0.0  # a held-out image is never nearer to t than t's closest held-out image
    assert (r.n_generated, r.n_train, r.n_test, r.cells) == (500, 1000, 500, default_cells(500, 500)) == (500, 1000, 500, 10)


def test_fresh_samples_are_not_flagged(world):
    _, draw, train, test = world
    r = data_copying(draw(500), train, test)
    assert not r.copying and abs(r.ct) < 3  # ~9 of the sd seen over seeds
    assert r.cells_used == r.cells
    assert 0.2 < r.copy_fraction < 0.7  # 0.41 +- 0.02 over seeds


def test_cells_with_too_few_generated_samples_are_left_out(world):
    rng, _, train, test = world
    one_mode = train[:1] + rng.standard_normal((100, DIM)) * 0.01  # every sample near one training point
    r = data_copying(one_mode, train, test, cells=5)
    assert r.cells_used == 1 and r.copying
    assert np.isnan(data_copying(one_mode[:10], train, test, cells=5).ct)  # no cell holds 20


def test_mann_whitney_z_is_the_normal_approximation_of_u():
    a, b = np.array([1.0, 2.0, 3.0]), np.array([1.5, 2.5, 3.5, 4.5])
    u = sum((x > y) + 0.5 * (x == y) for x in a for y in b)  # pairs with a above b: 0 + 1 + 2
    assert u == 3
    assert mann_whitney_z(a, b) == pytest.approx((u - 6) / np.sqrt(12 * 8 / 12))
    assert mann_whitney_z(np.zeros(30), np.ones(30)) < -6  # every a below every b


def test_copy_fraction_of_exact_and_distant_points(world):
    _, _, train, test = world
    assert copy_fraction(train[:50], train, test) == 1.0
    assert copy_fraction(train[:50] + 100.0, train, test) == 0.0


def test_bad_input_is_refused(world):
    _, _, train, test = world
    with pytest.raises(ValueError, match="share F"):
        data_copying(train[:, :3], train, test)
    with pytest.raises(ValueError, match=r"cells must be in \[1, 1000\]"):
        data_copying(test, train, test, cells=0)
    with pytest.raises(ValueError, match="generated features must have shape"):
        data_copying(test[0], train, test)


class Copier(nn.Module):
    """A planted 'generator': decodes each latent batch to the next images of a fixed set, ignoring the latents."""

    def __init__(self, images: torch.Tensor):
        super().__init__()
        self.images = images.float() / 255.0
        self.next = 0

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        idx = (torch.arange(len(z)) + self.next) % len(self.images)
        self.next += len(z)
        return self.images[idx]


@pytest.mark.parametrize("source", ["train", "test"])
def test_a_copier_of_training_images_is_flagged_and_one_of_held_out_images_is_not(
    source, tmp_path, mnist5k, pixels_extractor, test_seed
):
    trained_on = mnist5k.train_x[:300]  # train_z encodes these: the images the model saw
    images = trained_on if source == "train" else mnist5k.test_x
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(test_seed))
    metrics, params, _ = evaluate_trial(
        Copier(images[order]), mnist5k, torch.randn(len(trained_on), 4), torch.randn(10, 4),
        samplers=("standard",), fid_samples=300, fid_extractor=pixels_extractor, fid_cache_dir=tmp_path,
        knn=False, plots=False,
    )  # fmt: skip
    assert params[names.P_CT_TRAIN_SIZE] == "300" and params[names.P_FID_REFERENCE_SIZE] == "1000"
    ct, fraction = metrics[names.eval_ct("standard")], metrics[names.eval_copy_fraction("standard")]
    if source == "train":
        assert ct < COPYING_THRESHOLD and fraction == 1.0
    else:
        assert ct > COPYING_THRESHOLD and fraction == 0.0
