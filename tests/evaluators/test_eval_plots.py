import io

import numpy as np
import pytest
import torch
from PIL import Image

from evaluators import plots


def decode_bars(z):
    """A real, tiny decoder: latent coordinate k sets the brightness of row band k of a 1x8x8 image."""
    img = torch.sigmoid(z).repeat_interleave(8 // z.shape[1], dim=1)[:, :8]
    return img[:, None, :, None].expand(-1, 1, 8, 8).clone()


def check_png(data: bytes, path=None) -> Image.Image:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    img = Image.open(io.BytesIO(data))
    assert img.width > 100 and img.height > 100
    arr = np.asarray(img.convert("L"))
    assert arr.min() < arr.max()  # something was drawn
    if path is not None:
        assert path.read_bytes() == data
    return img


@pytest.fixture
def pca():
    mean = torch.zeros(4, dtype=torch.float64)
    return mean, torch.eye(4, dtype=torch.float64), torch.tensor([3.0, 2.0, 1.0, 0.5], dtype=torch.float64)


def test_spectrum_plot_writes_path(tmp_path):
    p = tmp_path / "s.png"
    check_png(
        plots.spectrum_plot([("run 1", [3, 2, 1]), ("run 2", torch.tensor([2.9, 2.1, 1.0]))], path=p), p
    )


def test_latent_scatter_plot():
    z = torch.randn(300, 3)
    check_png(plots.latent_scatter_plot(z, torch.randint(0, 10, (300,))))
    check_png(plots.latent_scatter_plot(z[:, :1]))


def test_eigen_images_plot_grid_size(pca):
    narrow = check_png(plots.eigen_images_plot(decode_bars, *pca, steps=(-2.0, 2.0)))
    wide = check_png(plots.eigen_images_plot(decode_bars, *pca, steps=(-2.0, -1.0, 0.0, 1.0, 2.0)))
    assert wide.width > narrow.width * 1.5


def test_component_grid_plot(pca):
    img = check_png(plots.component_grid_plot(decode_bars, *pca, horizontal=[1, 3], vertical=[2]))
    assert img.width > img.height  # 4 columns (2 components, all signs) by 2 rows


def test_image_grids_and_reconstructions():
    imgs = torch.rand(20, 3, 16, 16)
    check_png(plots.image_grid_plot(imgs, ncols=5, title="samples: standard"))
    u8 = torch.randint(0, 256, (8, 1, 32, 32), dtype=torch.uint8)
    check_png(plots.reconstructions_plot(u8, torch.rand(8, 1, 32, 32)))


def test_eccentricity_vs_fid_plot():
    check_png(plots.eccentricity_vs_fid_plot([("eae", 0.1, 53.7), ("eae", 0.5, 48.7), ("vae", 0.25, 50.0)]))


def test_correlation_heatmaps_plot():
    before = np.random.default_rng(0).uniform(-1, 1, (6, 6))
    check_png(plots.correlation_heatmaps_plot(before, np.eye(6)))


def test_trajectories_plot():
    series = {
        "eccentricity": ([1, 2, 3], [0.9, 0.6, 0.5]),
        "lambda": (np.arange(3), np.array([1e-3, 1e-4, 3e-4])),
    }
    check_png(
        plots.trajectories_plot(series, xlabel="epoch", target=0.5, logy=True, title="lambda targeting")
    )


def test_pareto_plot_one_panel_per_pair_of_metrics(tmp_path):
    pts = [
        plots.ParetoPoint("λ=1", "eae", (0.02, 0.05, 3.0), (0.001, 0.01, 0.2), True),
        plots.ParetoPoint("λ=10", "eae", (0.03, 0.03, 2.0), (float("nan"), 0.01, 0.2), True),
        plots.ParetoPoint("", "ae", (0.04, 0.09, 4.0), (0.002, 0.02, 0.3), False),
    ]
    two = check_png(plots.pareto_plot(["recon", "kid"], pts), None)
    three = check_png(plots.pareto_plot(["recon", "kid", "angle"], pts, path=tmp_path / "p.png"), tmp_path / "p.png")
    assert three.width > two.width * 2  # three pairs side by side


def test_importance_plot_and_parallel_coordinates():
    check_png(plots.importance_plot({
        "eval/kid/standard": [("d", 0.8, 0.6, 0.9), ("method", 0.2, 0.05, 0.3)],
        "eval/eccentricity": [("method", 1.0, float("nan"), float("nan"))],
    }))
    values = np.array([[0, 8, 0.02, 0.05], [1, 8, 0.03, np.nan], [1, 16, 0.01, 0.07]])
    check_png(plots.parallel_coordinates_plot(["method", "d", "recon", "kid"], values, ["ae", "eae", "eae"],
                                              {"method": ["ae", "eae"]}))


def test_the_joined_front_is_the_points_nothing_beats_on_both_means():
    pts = [(1.0, 3.0), (2.0, 2.0), (2.5, 2.5), (3.0, 1.0)]
    assert plots._staircase(pts, ("min", "min")) == [(1.0, 3.0), (2.0, 2.0), (3.0, 1.0)]
    assert plots._staircase(pts, ("min", "max")) == [(1.0, 3.0)]
