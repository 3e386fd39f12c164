"""The eccentric loss: formula, reference agreement, and the paper's sphere property (Li & Blair sec. 2-3)."""

import math

import pytest
import torch

from benchmarks.eccentric_loss import reference_eccentric_loss  # Li & Blair A.3, verbatim
from trainers.losses import eccentric_loss, eccentric_M


@pytest.mark.parametrize(("mu", "d", "expected"), [(1.0, 64, 129.0159), (1.5, 64, 64.3386), (64.5, 64, 1.000123)])
def test_M_formula(mu, d, expected):
    assert eccentric_M(mu, d) == pytest.approx(expected, rel=1e-3)


def test_M_paper_value_mu1_d64():
    assert round(eccentric_M(1.0, 64), 2) == 129.02


@pytest.mark.parametrize("mu", [1.0, 4.5, 64.5])
@pytest.mark.parametrize("d", [2, 8, 64])
def test_matches_reference_code(mu, d):
    z = torch.randn(50, d, dtype=torch.float64) * 1.7
    assert eccentric_loss(z, mu).item() == pytest.approx(reference_eccentric_loss(z, mu).item(), rel=1e-9, abs=1e-9)


@pytest.mark.parametrize(("mu", "d"), [(1.0, 2), (4.5, 8), (64.5, 64)])
def test_closed_form_gradient_matches_autograd_through_reference(mu, d):
    z = torch.randn(40, d, dtype=torch.float64) * 1.7
    z[1] = z[0]  # a coincident pair
    ours, ref = z.clone().requires_grad_(), z.clone().requires_grad_()
    eccentric_loss(ours, mu).backward()
    reference_eccentric_loss(ref, mu).backward()
    assert torch.allclose(ours.grad, ref.grad, rtol=1e-9, atol=1e-12)
    assert torch.autograd.gradcheck(lambda x: eccentric_loss(x, mu), z[:6].clone().requires_grad_())


def test_loss_under_vmap_matches_per_sample_loop():
    # packed trials (trainers/packed.py) take gradients of the loss under vmap
    from torch.func import grad, vmap

    zs = torch.randn(3, 30, 8, dtype=torch.float64)
    batched = vmap(grad(lambda z: eccentric_loss(z, 1.5)))(zs)
    looped = torch.stack([grad(lambda z: reference_eccentric_loss(z, 1.5))(z) for z in zs])
    assert torch.allclose(batched, looped, rtol=1e-9, atol=1e-12)


def test_finite_for_coincident_points():
    z = torch.ones(10, 8, requires_grad=True)
    loss = eccentric_loss(z, 1.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z.grad).all()


@pytest.mark.parametrize(("mu", "d"), [(0.5, 8), (0.2, 8), (1.0, 1)])
def test_bad_parameters_rejected(mu, d):
    with pytest.raises(ValueError, match="mu|dimension"):
        eccentric_loss(torch.randn(10, d), mu)


def test_loss_alone_drives_points_to_sphere_of_radius_sqrt_d():
    """Sec. 3: minimising l_mu over free points gives a sphere of radius sqrt(d); sec. 3.3: l ~ d(1 - 2 ln 2)."""
    d, n = 64, 400
    z = (torch.randn(n, d) * 0.3).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=0.05)
    for _ in range(1500):
        opt.zero_grad()
        loss = eccentric_loss(z, 1.0)
        loss.backward()
        opt.step()
    radii = z.detach().norm(dim=1)
    assert (radii / math.sqrt(d) - 1).abs().max() < 0.01
    assert loss.item() == pytest.approx(d * (1 - 2 * math.log(2)), rel=0.03)
