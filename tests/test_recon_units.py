"""What lambda multiplies: the reconstruction term's units are explicit, the papers' per-pixel mean by default, and
each paper table trains in its own paper's units (issue 19)."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from evaluators import names
from sweep import reproduce
from sweep.spec import SpecError, expand, parse_spec
from sweep.trainable import trial_params
from trainers import methods
from trainers.config import TrainConfig
from trainers.loop import build_model
from trainers.methods.base import recon_loss

GOOD = {"name": "t", "dataset": "mnist5k", "methods": ["ae", "eae"], "lambdas": [0.1], "seeds": [0]}


def test_the_three_reductions_are_the_same_error_in_different_units(test_seed):
    g = torch.Generator().manual_seed(test_seed)
    x, x_hat = torch.rand(7, 1, 32, 32, generator=g), torch.rand(7, 1, 32, 32, generator=g)
    mean = recon_loss(x_hat, x, "mean")
    assert torch.equal(mean, F.mse_loss(x_hat, x))  # torch's default, the papers' units
    # per image: 1,024 pixels summed, averaged over the 7 images; over the minibatch: the 7 summed too
    torch.testing.assert_close(recon_loss(x_hat, x, "sum"), mean * 1024)
    torch.testing.assert_close(recon_loss(x_hat, x, "batch-sum"), mean * 1024 * 7)
    torch.testing.assert_close(recon_loss(x_hat, x, "sum", 0.05), mean * 1024 * 0.05)
    with pytest.raises(ValueError, match="mean, sum, batch-sum"):
        recon_loss(x_hat, x, "median")


@pytest.mark.parametrize("name", methods.METHODS.names())
def test_every_method_trains_in_per_pixel_mean_units_by_default(name, test_seed):
    torch.manual_seed(test_seed)
    cls = methods.get(name)
    cfg = TrainConfig(method=name, dataset="digits", latent_dim=4, lam=0.1 if cls.takes_lambda else None)
    assert cfg.recon == "mean" and cfg.recon_scale == 1.0
    model = build_model(cfg, (1, 8, 8))
    assert (model.recon, model.recon_scale) == ("mean", 1.0)
    if cls.compute_loss is methods.AutoencoderMethod.compute_loss:
        x = torch.rand(16, 1, 8, 8)
        model.eval()  # batch norm from running statistics, so the recon term can be recomputed exactly
        out = model.compute_loss(x)
        torch.testing.assert_close(out.recon, F.mse_loss(model.decode(model.training_latent(x)), x))


def test_a_models_recon_term_follows_its_convention(test_seed):
    torch.manual_seed(test_seed)
    mean_cfg = TrainConfig(method="eae", dataset="digits", latent_dim=4, lam=0.1)
    sum_cfg = mean_cfg.model_copy(update={"recon": "batch-sum", "recon_scale": 0.5})
    a, b = build_model(mean_cfg, (1, 8, 8)).eval(), build_model(sum_cfg, (1, 8, 8)).eval()
    b.load_state_dict(a.state_dict())
    x = torch.rand(10, 1, 8, 8)
    oa, ob = a.compute_loss(x), b.compute_loss(x)
    torch.testing.assert_close(ob.recon, oa.recon * 64 * 10 * 0.5)
    torch.testing.assert_close(ob.reg, oa.reg)  # lambda's regulariser is the same: only its weight's meaning moved


@pytest.mark.parametrize(
    ("patch", "field", "allowed"),
    [
        ({"recon": "median"}, "recon", "'mean', 'sum' or 'batch-sum'"),
        ({"recon_scale": 0}, "recon_scale", "greater than 0"),
        ({"methods": [{"name": "eae", "recon": "pixels"}]}, "methods.0.recon", "'mean', 'sum' or 'batch-sum'"),
        ({"methods": [{"name": "eae", "recon_scale": -1}]}, "methods.0.recon_scale", "greater than 0"),
    ],
)
def test_a_bad_convention_is_named_with_its_allowed_values(patch, field, allowed):
    with pytest.raises(SpecError) as err:
        parse_spec({**GOOD, **patch})
    assert f"{field}:" in str(err.value) and allowed in str(err.value)


def test_a_spec_chooses_the_convention_per_sweep_and_per_method_and_the_run_records_it():
    spec = parse_spec(
        {**GOOD, "recon": "sum", "methods": ["ae", {"name": "eae", "recon": "batch-sum", "recon_scale": 0.05}]}
    )
    by_method = {t.train.method: t.train for t in expand(spec)}
    assert (by_method["ae"].recon, by_method["ae"].recon_scale) == ("sum", 1.0)
    assert (by_method["eae"].recon, by_method["eae"].recon_scale) == ("batch-sum", 0.05)
    params = trial_params(by_method["eae"])
    assert params[names.P_RECON] == "batch-sum" and params[names.P_RECON_SCALE] == "0.05"
    assert trial_params(expand(parse_spec(GOOD))[0].train)[names.P_RECON] == "mean"


# each table's rows in its own paper's units, as its YAML states them (the paper and equation cited there)
PAPER_UNITS = {
    "table1": {"eae": ("mean", 1.0), "vae": ("mean", 1.0), "wae-mmd": ("mean", 1.0), "ae": ("mean", 1.0)},
    "table2": {"eae": ("mean", 1.0)},
    "table3": {"eae": ("mean", 1.0)},
    "mu_fid": {"eae": ("mean", 1.0)},
    "align_001": {"eae": ("mean", 1.0)},
    # Ghose eq. (2.2) sums over the minibatch; Tolstikhin et al.'s lambda = 100 is against 0.05 ||x - y||^2
    "ghose_fid": {"entropic": ("batch-sum", 1.0), "wae-mmd": ("sum", 0.05), "vae": ("sum", 1.0), "rae-l2": ("sum", 1.0)},
    "geng_fid": {"gmpdm": ("sum", 1.0), "wae-mmd": ("sum", 0.05), "vae": ("sum", 1.0)},
}


@pytest.mark.parametrize("table_id", sorted(PAPER_UNITS))
@pytest.mark.parametrize("scale", reproduce.SCALES)
def test_each_paper_table_trains_in_its_own_papers_units(table_id, scale):
    table = reproduce.get_table(table_id)
    assert "recon" in table.sweep, f"{table_id}: the YAML must state its paper's reconstruction units"
    units = {t.train.method: (t.train.recon, t.train.recon_scale) for t in expand(reproduce.build_spec(table, scale))}
    for method, expected in PAPER_UNITS[table_id].items():
        assert units[method] == expected, (table_id, scale, method)


def test_smoke_reproductions_run_the_papers_own_lambdas():
    # no more "x 1000" at smoke scale: a row's lambda is the paper's, in the paper's units
    for table_id in reproduce.load_tables():
        table = reproduce.get_table(table_id)
        for row in table.rows:
            assert reproduce.scaled_params(table, row, "smoke")[names.P_LAMBDA] == row.config.params()[names.P_LAMBDA]
