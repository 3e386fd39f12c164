"""Which knob matters, for any sweep (grid, targeted, search): fANOVA parameter importance (Hutter et al. 2014, the
variance of the fitted forest's main effect of a parameter over the total) through Optuna's evaluator.

Each finished trial (seed) becomes an Optuna trial with ``create_trial``: method and target categorical, lambda as
log10, mu and d as numbers. A parameter a method does not take ('-': ae has no lambda) sits one step below the
values the others take, so the forest can split it off as it would a smaller lambda. Its uncertainty: the range of
the importance over bootstrap resamples of the configurations (each with all its seeds), on smaller forests, which
cost ~25 ms a tree on 2 cores."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from evaluators import names

LOG_LAMBDA = "log10 lambda"
CATEGORICAL = (names.P_METHOD, names.P_TARGET)
NUMERIC = {LOG_LAMBDA: names.P_LAMBDA, names.P_MU: names.P_MU, names.P_LATENT_DIM: names.P_LATENT_DIM}
N_TREES = 32  # the forest of the fit on every trial
N_BOOTSTRAP = 10  # resamples behind the range, each fitted with BOOTSTRAP_TREES trees
BOOTSTRAP_TREES = 8
MIN_TRIALS = 4


class ImportanceError(ValueError):
    pass


def _number(value) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return math.nan
    return x if math.isfinite(x) else math.nan


def encode_params(trials: pd.DataFrame) -> pd.DataFrame:
    """The parameters fANOVA sees, one column each, for every trial row; a parameter with one value is left out
    (it explains nothing), as is a numeric one with one value where a method takes it."""
    out = pd.DataFrame(index=trials.index)
    for param in CATEGORICAL:
        if param in trials:
            out[param] = trials[param].astype(str)
    for column, param in NUMERIC.items():
        if param not in trials:
            continue
        x = trials[param].map(_number)
        if column == LOG_LAMBDA:
            x = np.log10(x.where(x > 0))
        present = x.dropna()
        if present.nunique() < 2:
            continue  # one value where present: whether it is present at all is the method's, already a column
        step = 1.0 if column == LOG_LAMBDA else max(float(present.max() - present.min()), 1.0)
        out[column] = x.fillna(float(present.min()) - step)  # absent: one step (a decade for lambda) below
    return out[[c for c in out if out[c].nunique() > 1]]


def fanova(params: pd.DataFrame, values: np.ndarray, seed: int = 0, n_trees: int = N_TREES) -> dict[str, float]:
    """Normalised fANOVA importance (summing to 1) of each column of ``params`` for ``values``."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances
    from optuna.trial import create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    categorical = [c for c in params if not pd.api.types.is_numeric_dtype(params[c])]
    dists = {
        c: CategoricalDistribution(sorted(params[c].unique())) if c in categorical
        else FloatDistribution(float(params[c].min()), float(params[c].max()))
        for c in params
    }
    study = optuna.create_study()
    study.add_trials([
        create_trial(params={c: v if c in categorical else float(v) for c, v in row.items()}, distributions=dists,
                     value=float(y))
        for row, y in zip(params.to_dict("records"), values, strict=True)
    ])
    found = get_param_importances(study, evaluator=FanovaImportanceEvaluator(n_trees=n_trees, seed=seed))
    return {c: float(found.get(c, 0.0)) for c in params}


@dataclass(frozen=True)
class Importance:
    """One parameter's importance for one metric: the fit on every trial, its range over bootstrap resamples, and n
    (trials) and configurations behind it."""

    metric: str
    param: str
    importance: float
    low: float
    high: float
    n: int
    configurations: int


def importance(
    trials: pd.DataFrame, metric: str, seed: int = 0, n_bootstrap: int = N_BOOTSTRAP, n_trees: int = N_TREES
) -> list[Importance]:
    """Importance of each varying parameter for ``metric`` over the finished trial rows that have it (one row per
    seed; ``config_key`` groups them for the bootstrap), most important first; ``low``/``high``: its range over
    ``n_bootstrap`` resamples of the configurations."""
    if metric not in trials:
        raise ImportanceError(f"--importance: no trial has {metric!r}")
    finished = trials["status"].eq("FINISHED") if "status" in trials else True
    rows = trials[finished & trials[metric].map(_number).notna()]
    params = encode_params(rows)
    if len(rows) < MIN_TRIALS or params.empty:
        raise ImportanceError(
            f"--importance: {metric} needs >= {MIN_TRIALS} finished trials over >= 1 varying parameter "
            f"(has {len(rows)} trials, varying: {', '.join(params.columns) or 'none'})"
        )
    values = rows[metric].map(_number).to_numpy()
    if np.ptp(values) == 0:
        raise ImportanceError(f"--importance: {metric} takes one value over all {len(rows)} trials; nothing to explain")
    found = fanova(params, values, seed, n_trees)
    groups = rows["config_key"].to_numpy() if "config_key" in rows else np.arange(len(rows))
    keys = np.unique(groups)
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {c: [] for c in params}
    for _ in range(n_bootstrap if len(keys) > 1 else 0):
        picked = np.concatenate([np.flatnonzero(groups == k) for k in rng.choice(keys, len(keys))])
        sample = params.iloc[picked].reset_index(drop=True)
        sample = sample[[c for c in sample if sample[c].nunique() > 1]]  # constant in this resample: explains nothing
        got = fanova(sample, values[picked], seed, BOOTSTRAP_TREES) if len(sample.columns) and np.ptp(values[picked]) else {}
        for c in params:
            draws[c].append(got.get(c, 0.0))
    out = []
    for c in params:
        low, high = (min(draws[c]), max(draws[c])) if draws[c] else (math.nan, math.nan)
        out.append(Importance(metric, c, found[c], float(low), float(high), len(rows), len(keys)))
    return sorted(out, key=lambda i: -i.importance)


def importance_frame(found: list[Importance]) -> pd.DataFrame:
    return pd.DataFrame([vars(i) for i in found])
