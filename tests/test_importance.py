"""fANOVA parameter importance on planted trials (no MLflow): a metric that depends on one parameter only puts
>= 90% of the importance on it, whatever the random stream (run under --seed 0, 1, 2)."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from evaluators import names
from sweep.importance import LOG_LAMBDA, ImportanceError, encode_params, importance


def planted_trials(rng: np.random.Generator, metric, dims=(2, 4, 8, 16), lambdas: int = 3, seeds: int = 2) -> pd.DataFrame:
    """A grid sweep as a spec expands it: ae, and eae (mu 1 or 2) and vae at ``lambdas`` lambdas drawn log-uniform,
    crossed with every d; ``metric(method, lam, d)`` plus seed noise (sd 0.05)."""
    rows = []
    grid = [("ae", None)] + [(m, float(10 ** rng.uniform(-3, 1))) for m in ("eae", "vae") for _ in range(lambdas)]
    for c, ((method, lam), d) in enumerate(itertools.product(grid, dims)):
        mu = f"{rng.choice([1.0, 2.0]):g}" if method == "eae" else "-"
        for seed in range(seeds):
            rows.append({
                "config_key": f"c{c}", names.P_METHOD: method, names.P_TARGET: "-",
                names.P_LAMBDA: "-" if lam is None else f"{lam:g}", names.P_MU: mu, names.P_LATENT_DIM: str(d),
                names.P_SEED: str(seed), "status": "FINISHED", "m": metric(method, lam, d) + rng.normal(0, 0.05),
            })
    return pd.DataFrame(rows)


def test_a_metric_that_depends_only_on_d_puts_at_least_90_percent_on_d(test_seed):
    rng = np.random.default_rng(test_seed)
    trials = planted_trials(rng, lambda method, lam, d: math.log2(d))
    found = {i.param: i for i in importance(trials, "m", seed=test_seed)}
    assert found[names.P_LATENT_DIM].importance >= 0.9, found
    assert sum(i.importance for i in found.values()) == pytest.approx(1.0)
    d = found[names.P_LATENT_DIM]
    assert d.n == 56 and d.configurations == 28 and d.low <= d.high


def test_a_metric_that_depends_only_on_the_method_puts_at_least_90_percent_on_it(test_seed):
    rng = np.random.default_rng(test_seed + 1)
    effect = {"ae": 0.0, "eae": 2.0, "vae": 4.0}
    trials = planted_trials(rng, lambda method, lam, d: effect[method])
    found = {i.param: i.importance for i in importance(trials, "m", seed=test_seed)}
    # lambda is absent exactly for ae, so its sentinel carries part of the method's effect
    assert found[names.P_METHOD] + found.get(LOG_LAMBDA, 0.0) + found.get(names.P_MU, 0.0) >= 0.9, found
    assert found[names.P_LATENT_DIM] < 0.1, found


def test_lambda_is_on_a_log_scale_and_an_absent_one_sits_a_decade_below():
    trials = pd.DataFrame({names.P_METHOD: ["ae", "eae", "eae"], names.P_LAMBDA: ["-", "0.01", "10"],
                           names.P_LATENT_DIM: ["8", "8", "8"], names.P_MU: ["-", "2", "2"]})
    params = encode_params(trials)
    assert list(params[LOG_LAMBDA]) == pytest.approx([-3.0, -2.0, 1.0])
    assert names.P_LATENT_DIM not in params  # one value: explains nothing, left out
    assert set(params[names.P_METHOD]) == {"ae", "eae"}


def test_too_few_trials_or_nothing_varying_is_a_clear_error():
    rng = np.random.default_rng(0)
    trials = planted_trials(rng, lambda method, lam, d: 1.0, dims=(8,), lambdas=0, seeds=3)
    with pytest.raises(ImportanceError, match="needs >= 4 finished trials"):
        importance(trials, "m")
    with pytest.raises(ImportanceError, match="no trial has 'eval/nope'"):
        importance(trials, "eval/nope")
