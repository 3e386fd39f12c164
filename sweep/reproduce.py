"""`esweep reproduce`: each table of the papers as one sweep, and our numbers beside the published ones.

A table (package data under sweep/papers/) carries the paper's numbers with their source, the sweep that reproduces
it (a normal spec, the paper's protocol) and a smoke variant (embedded data, few epochs), and the paper's qualitative
claims. Our values come from the sweep's configuration runs through the leaderboard (`esweep leaderboard`'s code),
matched to the paper's rows by configuration (method, lambda, mu, d).
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from evaluators import names
from evaluators.metric_fid_bias import is_small_sample
from evaluators.registry import UnknownNameError
from sweep import leaderboard as lb
from sweep.spec import SpecError, SweepSpec, _format_validation_error, expand, parse_spec
from sweep.tracking import Store
from trainers import methods

PAPERS_DIR = "papers"
SCALES = ("paper", "smoke")
SCALE_LABELS = {"paper": "paper scale (the paper's protocol)", "smoke": "smoke (not a reproduction)"}
CONFIG_PARAMS = (names.P_METHOD, names.P_LAMBDA, names.P_MU, names.P_LATENT_DIM)
METRIC_PREFIXES = ("eval/", "xrun/")
FORMATS = ("table", "markdown", "json")
LEGEND = (
    "paper: as printed (its ± as the paper gives it, mostly a spread over runs); ours: mean ± 95% CI half-width over "
    "seeds (Student t; cross-run metrics over seed pairs), n = seeds (pairs); delta = ours - paper."
)
CLAIMS_LEGEND = (
    "claims are checked on means, comparison by comparison: pass = every comparison holds, fail = one does not, "
    "n/a = no comparison has both cells at this scale (or the claim is for paper scale only)."
)


class ReproduceError(ValueError):
    """A table or a reproduction that cannot be built; the message names the field and what it allows."""


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Source(_Strict):
    file: str = Field(description="the paper's file under shared/papers/")
    table: str = Field(description="the table as the paper numbers it")
    rows: str = Field(description="which of its rows are here")
    section: str | None = Field(None, description="where the protocol is stated")


class Column(_Strict):
    key: str
    label: str = Field(description="the paper's column heading")
    metric: str = Field(description="our metric: a per-trial eval/... or a cross-run xrun/... name")

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: str) -> str:
        if not v.startswith(METRIC_PREFIXES):
            raise ValueError(f"{v!r} is not one of our metrics; use an eval/... or xrun/... name (evaluators/names.py)")
        return v


class RowConfig(_Strict):
    """The configuration a paper row reports on, as the paper states it."""

    method: str
    lam: float | None = Field(None, alias="lambda", ge=0)
    mu: float | None = Field(None, gt=0.5)
    d: int = Field(ge=2)

    @model_validator(mode="after")
    def _params_taken(self) -> RowConfig:
        cls = methods.get(self.method)
        if (self.lam is not None) != cls.takes_lambda:
            raise ValueError(f"method {self.method!r} {'takes' if cls.takes_lambda else 'takes no'} lambda")
        if (self.mu is not None) != cls.takes_mu:
            raise ValueError(f"method {self.method!r} {'takes' if cls.takes_mu else 'takes no'} mu")
        return self

    def params(self) -> dict[str, Any]:
        return {names.P_METHOD: self.method, names.P_LAMBDA: self.lam, names.P_MU: self.mu, names.P_LATENT_DIM: self.d}


Number = int | float  # an int stays one, so a value prints as the paper printed it (81 ± 1, 53.7 ± 1.0)
PaperValue = Number | tuple[Number, Number] | None  # a value, or (value, its ±), or not given


class Row(_Strict):
    label: str
    config: RowConfig
    values: dict[str, PaperValue] = Field(description="column key -> the paper's value (or [value, ±])")
    metrics: dict[str, str] = Field(default_factory=dict, description="column key -> this row's metric, if not the column's")
    runs: int | None = Field(None, ge=1, description="runs the paper averaged, where it says per row")
    note: str | None = None


class Claim(_Strict):
    """A qualitative statement of the paper, checked on the paper's numbers and on ours.

    monotone: along the listed columns (``along: columns``) within each row, or along a config param (rows sorted by
    it, within each ``group_by`` group) for each listed column, values fall (decreasing) or rise (increasing).
    compare_columns: in each row, every listed column is less/greater than the column ``than``.
    compare_rows: each row selected by ``a`` is less/greater than each row selected by ``b`` that agrees with it on
    ``match_on`` (default: every config param named in neither), in each listed column.
    """

    id: str
    text: str
    cite: str = Field(description="where the paper says it")
    kind: Literal["monotone", "compare_columns", "compare_rows"]
    columns: list[str] = Field(min_length=1)
    where: dict[str, Any] = Field(default_factory=dict, description="config param -> value(s): the rows it is about")
    along: str | None = None
    group_by: list[str] = Field(default_factory=list)
    direction: Literal["decreasing", "increasing"] | None = None
    than: str | None = None
    a: dict[str, Any] | None = None
    b: dict[str, Any] | None = None
    match_on: list[str] | None = None
    relation: Literal["less", "greater"] | None = None
    scales: list[Literal["paper", "smoke"]] = Field(default_factory=lambda: list(SCALES))

    @model_validator(mode="after")
    def _fields_of_kind(self) -> Claim:
        needed = {
            "monotone": ("along", "direction"),
            "compare_columns": ("than", "relation"),
            "compare_rows": ("a", "b", "relation"),
        }[self.kind]
        missing = [f for f in needed if getattr(self, f) is None]
        if missing:
            raise ValueError(f"claim {self.id!r} ({self.kind}) needs {', '.join(missing)}")
        params = [*self.where, *self.group_by, *(self.a or {}), *(self.b or {}), *(self.match_on or [])]
        if self.along is not None and self.along != "columns":
            params.append(self.along)
        unknown = sorted(set(params) - set(CONFIG_PARAMS))
        if unknown:
            raise ValueError(f"claim {self.id!r}: unknown config param(s) {unknown}; choose from {list(CONFIG_PARAMS)}")
        return self


class Smoke(_Strict):
    note: str = Field(description="what differs from the paper's protocol, in words")
    overrides: dict[str, Any] = Field(description="spec fields replacing the paper's (evaluation merged key by key)")
    latent_dims: dict[int, int] = Field(default_factory=dict, description="the paper's d -> d at smoke scale")


class PaperTable(_Strict):
    id: str = Field(pattern=r"^[a-z0-9_]+$")
    title: str
    paper: str
    source: Source
    columns: list[Column] = Field(min_length=1)
    rows: list[Row] = Field(min_length=1)
    not_run: list[str] = Field(default_factory=list, description="paper rows or columns left out, and why")
    sweep: dict[str, Any] = Field(description="the spec that reproduces the table: the paper's protocol")
    smoke: Smoke
    choices: list[str] = Field(default_factory=list, description="settings the paper leaves out, and what we chose")
    claims: list[Claim] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> PaperTable:
        keys = [c.key for c in self.columns]
        if len(set(keys)) != len(keys):
            raise ValueError("column keys must be distinct")
        labels = [r.label for r in self.rows]
        if len(set(labels)) != len(labels):
            raise ValueError("row labels must be distinct")
        for row in self.rows:
            for key in [*row.values, *row.metrics]:
                if key not in keys:
                    raise ValueError(f"row {row.label!r}: unknown column {key!r}; columns: {keys}")
            for key, metric in row.metrics.items():
                Column(key=key, label=key, metric=metric)
        ids = [c.id for c in self.claims]
        if len(set(ids)) != len(ids):
            raise ValueError("claim ids must be distinct")
        for claim in self.claims:
            for key in [*claim.columns, *([claim.than] if claim.than else [])]:
                if key not in keys:
                    raise ValueError(f"claim {claim.id!r}: unknown column {key!r}; columns: {keys}")
        return self

    def column(self, key: str) -> Column:
        return next(c for c in self.columns if c.key == key)

    def metric(self, row: Row, key: str) -> str:
        return row.metrics.get(key) or self.column(key).metric


# --- the registry ---------------------------------------------------------------------------------------------------
def _validation_message(exc: ValidationError) -> str:
    return _format_validation_error(exc).replace("invalid sweep spec:", "").strip()


def parse_table(data: Any, origin: str = "table") -> PaperTable:
    if not isinstance(data, dict):
        raise ReproduceError(f"{origin}: the top level must be a mapping of fields")
    try:
        table = PaperTable.model_validate(data)
    except ValidationError as exc:
        raise ReproduceError(f"{origin}: invalid table:\n  {_validation_message(exc)}") from None
    except UnknownNameError as exc:
        raise ReproduceError(f"{origin}: invalid table: {exc}") from None
    for scale in SCALES:  # both specs validate, and every row is one of their configurations
        build_spec(table, scale)
    return table


@lru_cache(maxsize=1)
def load_tables() -> dict[str, PaperTable]:
    """Every registered table (package data sweep/papers/*.yaml), by id, in the order of the papers and their tables."""
    folder = resources.files("sweep") / PAPERS_DIR
    tables: dict[str, PaperTable] = {}
    for path in sorted((p for p in folder.iterdir() if p.name.endswith(".yaml")), key=lambda p: p.name):
        table = parse_table(yaml.safe_load(path.read_text()), f"sweep/{PAPERS_DIR}/{path.name}")
        if table.id != path.name.removesuffix(".yaml"):
            raise ReproduceError(f"sweep/{PAPERS_DIR}/{path.name}: id {table.id!r} must be the file's name")
        tables[table.id] = table
    return dict(sorted(tables.items(), key=lambda kv: (kv[1].source.file, kv[1].source.table)))  # the papers' order


def get_table(table_id: str) -> PaperTable:
    tables = load_tables()
    if table_id not in tables:
        raise ReproduceError(f"TABLE: unknown table {table_id!r}; choose one of {', '.join(tables)}")
    return tables[table_id]


def check_scale(scale: str) -> str:
    if scale not in SCALES:
        raise ReproduceError(f"--scale: unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    return scale


# --- the sweep ------------------------------------------------------------------------------------------------------
def scaled_params(table: PaperTable, row: Row, scale: str) -> dict[str, Any]:
    """The configuration a row runs as at ``scale``: the paper's, or its smoke stand-in (the paper's lambda, in the
    paper's own reconstruction units, and d mapped)."""
    p = row.config.params()
    if scale == "smoke":
        p[names.P_LATENT_DIM] = table.smoke.latent_dims.get(p[names.P_LATENT_DIM], p[names.P_LATENT_DIM])
    return p


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def spec_dict(table: PaperTable, scale: str) -> dict[str, Any]:
    data = copy.deepcopy(table.sweep)
    if scale == "smoke":
        data = _merge(data, table.smoke.overrides)
    return data


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, str) or isinstance(b, str):
        return str(a) == str(b)
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)


def build_spec(
    table: PaperTable, scale: str, *, data_root: str | None = None, seeds: list[int] | None = None,
    epochs: int | None = None, fid_samples: int | None = None,
) -> SweepSpec:
    """The sweep for ``table`` at ``scale``, validated as any spec, with every row one of its configurations and every
    column something its evaluation computes. ``seeds``, ``epochs`` and ``fid_samples`` (for a table with FID)
    replace the scale's: a quicker look."""
    check_scale(scale)
    data = spec_dict(table, scale)
    if data_root is not None:
        data["data_root"] = data_root
    if seeds is not None:
        data["seeds"] = seeds
    if epochs is not None:
        data["epochs"] = epochs
    if fid_samples is not None:
        if not data.get("evaluation", {}).get("fid_samples"):
            raise ReproduceError(f"--fid-samples: table {table.id} computes no FID")
        data["evaluation"] = {**data["evaluation"], "fid_samples": fid_samples}
    where = f"table {table.id} at {scale} scale"
    try:
        spec = parse_spec(data)
    except SpecError as exc:
        raise ReproduceError(f"{where}: {exc}") from None
    configs = [
        {names.P_METHOD: t.train.method, names.P_LAMBDA: t.train.lam, names.P_MU: t.train.effective_mu,
         names.P_LATENT_DIM: t.train.latent_dim}
        for t in expand(spec)
    ]
    evaluation = spec.evaluation
    for row in table.rows:
        params = scaled_params(table, row, scale)
        if not any(all(_same(params[k], c[k]) for k in CONFIG_PARAMS) for c in configs):
            raise ReproduceError(f"{where}: row {row.label!r} ({_words(params)}) is not a configuration of the sweep")
        for key in row.values:
            problem = _uncomputed(table.metric(row, key), evaluation, len(spec.seeds))
            if problem:
                raise ReproduceError(f"{where}: row {row.label!r}, column {key!r}: {problem}")
    return spec


def _uncomputed(metric: str, evaluation, n_seeds: int) -> str | None:
    """Why the sweep's evaluation would not give ``metric`` (None when it does)."""
    if metric.startswith(names.EVAL_FID_PREFIX):
        sampler = metric.removeprefix(names.EVAL_FID_PREFIX)
        if evaluation.fid_samples == 0:
            return f"{metric} needs evaluation.fid_samples > 0"
        if sampler not in evaluation.samplers:
            return f"{metric} needs sampler {sampler!r} in evaluation.samplers {evaluation.samplers}"
    if metric.startswith((names.EVAL_KNN_ERROR_PREFIX, "eval/attr/")) and not evaluation.knn:
        return f"{metric} needs evaluation.knn: true"
    if metric.startswith("xrun/") and not (evaluation.crossrun and n_seeds >= 2):
        return f"{metric} needs evaluation.crossrun: true and at least 2 seeds"
    return None


def _words(params: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in params.items() if v is not None)


def sweep_tags(table: PaperTable, scale: str, overrides: str = "") -> dict[str, str]:
    tags = {names.T_REPRODUCE_TABLE: table.id, names.T_REPRODUCE_SCALE: scale}
    if overrides:
        tags[names.T_REPRODUCE_OVERRIDES] = overrides
    return tags


# --- our numbers beside the paper's ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cell:
    row: Row
    column: Column
    metric: str
    paper: Number | None
    paper_pm: Number | None
    ours: float | None
    ours_ci95: float | None
    ours_n: int
    ran: bool  # the row's configuration has a run with finished seeds

    @property
    def delta(self) -> float | None:
        return None if self.paper is None or self.ours is None else self.ours - self.paper


@dataclass(frozen=True)
class ClaimResult:
    claim: Claim
    paper: str
    ours: str
    held: int
    total: int
    failures: tuple[str, ...]

    @property
    def detail(self) -> str:
        if self.ours in ("n/a", "n/a (paper scale only)"):
            return ""
        shown = "; ".join(self.failures[:3]) + ("; ..." if len(self.failures) > 3 else "")
        return f"{self.held}/{self.total} hold" + (f"; fails: {shown}" if shown else "")


@dataclass
class Reproduction:
    table: PaperTable
    scale: str
    sweep_id: str
    spec: dict[str, Any]
    overrides: str
    cells: list[Cell] = field(default_factory=list)
    claims: list[ClaimResult] = field(default_factory=list)

    @property
    def label(self) -> str:
        return SCALE_LABELS[self.scale]


def _float(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _param(value: str) -> Any:
    """A configuration run's param back as a value: '-' is None, numbers are floats."""
    if value in ("-", "", None):
        return None
    f = _float(value)
    return value if f is None else f


def board_row(board: pd.DataFrame, params: dict[str, Any]) -> pd.Series | None:
    """The leaderboard row of the configuration ``params`` (a plain one: not lambda-targeted)."""
    if board.empty:
        return None
    for _, r in board.iterrows():
        if r[names.P_TARGET] not in ("-", "", None):
            continue
        if all(_same(params[k], _param(r[k]) if k != names.P_METHOD else r[k]) for k in CONFIG_PARAMS):
            return r
    return None


def paper_cells(table: PaperTable, board: pd.DataFrame, scale: str) -> list[Cell]:
    cells = []
    for row in table.rows:
        ours = board_row(board, scaled_params(table, row, scale))
        for column in table.columns:
            if column.key not in row.values:
                continue
            value = row.values[column.key]
            mean, pm = (value if isinstance(value, tuple) else (value, None))
            metric = table.metric(row, column.key)
            stats = {s: None if ours is None else _float(ours.get(f"{metric}_{s}")) for s in ("mean", "ci95", "n")}
            ran = ours is not None and int(ours.get("seeds", 0) or 0) > 0
            cells.append(Cell(row, column, metric, mean, pm, stats["mean"], stats["ci95"], int(stats["n"] or 0), ran))
    return cells


def _selects(row: Row, where: dict[str, Any]) -> bool:
    params = row.config.params()
    for key, wanted in where.items():
        options = wanted if isinstance(wanted, list) else [wanted]
        if not any(_same(params[key], o) for o in options):
            return False
    return True


def _holds(x: float, y: float, relation: str) -> bool:
    return x < y if relation == "less" else x > y


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def check_claim(claim: Claim, table: PaperTable, value) -> tuple[str, int, int, tuple[str, ...]]:
    """Every comparison the claim makes, with ``value(row, column key)`` (None where missing); comparisons with a
    missing cell are skipped. Returns (status, held, total, failures): pass, fail, or n/a when none was made."""
    rows = [r for r in table.rows if _selects(r, claim.where)]
    comparisons: list[tuple[float | None, float | None, str, str]] = []  # x, y, relation, what
    if claim.kind == "monotone":  # consecutive cells of each sequence; a missing cell is stepped over
        relation = "less" if claim.direction == "decreasing" else "greater"
        sequences: list[list[tuple[float | None, str]]] = []
        if claim.along == "columns":
            sequences = [[(value(r, c), f"{r.label}: {c}") for c in claim.columns] for r in rows]
        else:
            groups: dict[tuple, list[Row]] = {}
            for r in rows:
                groups.setdefault(tuple(str(r.config.params()[g]) for g in claim.group_by), []).append(r)
            for group in groups.values():
                ordered = sorted(group, key=lambda r: r.config.params()[claim.along] or 0.0)
                sequences += [[(value(r, col), f"{col}: {r.label}") for r in ordered] for col in claim.columns]
        for seq in sequences:
            present = [(v, what) for v, what in seq if v is not None]
            for (v1, w1), (v2, w2) in zip(present, present[1:], strict=False):
                comparisons.append((v2, v1, relation, f"{w2} vs {w1.split(': ')[-1]}"))
    elif claim.kind == "compare_columns":
        for r in rows:
            for col in claim.columns:
                comparisons.append((value(r, col), value(r, claim.than), claim.relation, f"{r.label}: {col} vs {claim.than}"))
    else:
        named = set(claim.a or {}) | set(claim.b or {})
        match_on = claim.match_on if claim.match_on is not None else [p for p in CONFIG_PARAMS if p not in named]
        for ra in (r for r in rows if _selects(r, claim.a or {})):
            for rb in (r for r in rows if _selects(r, claim.b or {})):
                if ra is rb or not all(_same(ra.config.params()[k], rb.config.params()[k]) for k in match_on):
                    continue
                for col in claim.columns:
                    comparisons.append((value(ra, col), value(rb, col), claim.relation, f"{col}: {ra.label} vs {rb.label}"))
    held, total, failures = 0, 0, []
    for x, y, relation, what in comparisons:
        if x is None or y is None:
            continue
        total += 1
        if _holds(x, y, relation):
            held += 1
        else:
            failures.append(f"{what} ({_fmt(x)} vs {_fmt(y)})")
    status = "n/a" if total == 0 else "pass" if held == total else "fail"
    return status, held, total, tuple(failures)


def check_claims(table: PaperTable, cells: list[Cell], scale: str) -> list[ClaimResult]:
    paper = {(c.row.label, c.column.key): c.paper for c in cells}
    ours = {(c.row.label, c.column.key): c.ours for c in cells}
    results = []
    for claim in table.claims:
        p_status, *_ = check_claim(claim, table, lambda r, k: paper.get((r.label, k)))
        if scale not in claim.scales:
            results.append(ClaimResult(claim, p_status, "n/a (paper scale only)", 0, 0, ()))
            continue
        status, held, total, failures = check_claim(claim, table, lambda r, k: ours.get((r.label, k)))
        results.append(ClaimResult(claim, p_status, status, held, total, failures))
    return results


def reproduction(store: Store, sweep: str | None) -> Reproduction | None:
    """The side-by-side comparison of a sweep that reproduces a table (None for any other sweep)."""
    sweep_id, board = lb.leaderboard(store, sweep)
    run = store.sweep_run(sweep_id)
    tags = run.data.tags
    table_id = tags.get(names.T_REPRODUCE_TABLE)
    if not table_id:
        return None
    table = get_table(table_id)
    scale = check_scale(tags.get(names.T_REPRODUCE_SCALE, "paper"))
    spec = _spec_artifact(store, run.info.run_id)
    cells = paper_cells(table, board, scale)
    return Reproduction(
        table, scale, sweep_id, spec, tags.get(names.T_REPRODUCE_OVERRIDES, ""), cells, check_claims(table, cells, scale)
    )


def _spec_artifact(store: Store, run_id: str) -> dict[str, Any]:
    from sweep.orchestrate import SPEC_ARTIFACT

    try:
        return yaml.safe_load(store.read_artifact_bytes(run_id, SPEC_ARTIFACT)) or {}
    except Exception:  # an older sweep without its spec: the settings line says less
        return {}


# --- output ---------------------------------------------------------------------------------------------------------
def _pm(mean: float | None, pm: float | None) -> str:
    """Ours: three significant figures, the half-width to two."""
    if mean is None:
        return "-"
    return f"{mean:.3g}" if pm is None else f"{mean:.3g} ± {pm:.2g}"


def _as_printed(mean: Number | None, pm: Number | None) -> str:
    """The paper's value with as many decimals as its ± (YAML drops trailing zeros: 39.0 ± 7.2 reads 39 and 7.2)."""
    if mean is None:
        return "-"
    if pm is None:
        return f"{mean:g}"
    text = repr(pm)
    decimals = 0 if isinstance(pm, int) or "." not in text or "e" in text else len(text.split(".")[1])
    return f"{mean:.{decimals}f} ± {text}"


def small_sample_fid(rep: Reproduction, metric: str) -> int | None:
    """The generated images behind an FID cell when they are fewer than Inception's features (biased up), else None."""
    n = (rep.spec.get("evaluation") or {}).get("fid_samples")
    return int(n) if metric.startswith(names.EVAL_FID_PREFIX) and n and is_small_sample(int(n)) else None


def cells_frame(rep: Reproduction) -> pd.DataFrame:
    rows = []
    for c in rep.cells:
        small = small_sample_fid(rep, c.metric)
        if c.ours is not None:
            ours = _pm(c.ours, c.ours_ci95) + f" (n={c.ours_n})"
        else:  # the configuration did not run (or failed), or ran without giving this metric at this scale
            ours = "not run" if not c.ran else "not measured"
        delta = "-" if c.delta is None else f"{c.delta:+.3g}"
        metric = c.metric if small is None else f"{c.metric} [{small} imgs: small-sample, biased up]"
        rows.append({"row": c.row.label, "column": c.column.label, "metric": metric, "paper": _as_printed(c.paper, c.paper_pm),
                     f"ours, {rep.scale}": ours, "delta": delta})
    return pd.DataFrame(rows)


def claims_frame(rep: Reproduction) -> pd.DataFrame:
    return pd.DataFrame([
        {"claim": r.claim.text, "paper": r.paper, f"ours, {rep.scale}": r.ours, "detail": r.detail}
        for r in rep.claims
    ])


def settings(rep: Reproduction) -> str:
    s = rep.spec
    if not s:
        return ""
    ev = s.get("evaluation", {})
    fid = f", FID from {ev.get('fid_samples')} samples" if ev.get("fid_samples") else ""
    return (f"{s.get('dataset')}, {s.get('epochs')} epochs, seeds {s.get('seeds')}, batch {s.get('batch_size')}, "
            f"lr {s.get('lr')}{fid}")


def heading(rep: Reproduction) -> list[str]:
    t = rep.table
    lines = [
        f"{t.paper}, {t.source.table}: {t.title}",
        f"source: shared/papers/{t.source.file}, {t.source.table} ({t.source.rows})",
        f"scale: {rep.label}" + (f"; overrides: {rep.overrides}" if rep.overrides else ""),
    ]
    if rep.scale == "smoke":
        lines.append(f"smoke: {t.smoke.note}")
    if settings(rep):
        lines.append(f"ran: {settings(rep)}")
    lines.append(f"sweep: {rep.sweep_id} (esweep leaderboard {rep.sweep_id})")
    return lines


def to_json(rep: Reproduction) -> dict[str, Any]:
    t = rep.table
    return {
        "table": t.id, "title": t.title, "paper": t.paper, "source": t.source.model_dump(),
        "scale": rep.scale, "label": rep.label, "is_reproduction": rep.scale == "paper",
        "overrides": rep.overrides, "sweep_id": rep.sweep_id, "settings": settings(rep),
        "smoke_note": t.smoke.note if rep.scale == "smoke" else None,
        "cells": [
            {"row": c.row.label, "config": c.row.config.params(), "column": c.column.key, "label": c.column.label,
             "metric": c.metric, "paper": {"mean": c.paper, "pm": c.paper_pm},
             "ours": {"mean": c.ours, "ci95": c.ours_ci95, "n": c.ours_n}, "delta": c.delta,
             "small_sample": small_sample_fid(rep, c.metric) is not None}
            for c in rep.cells
        ],
        "claims": [
            {"id": r.claim.id, "text": r.claim.text, "cite": r.claim.cite, "paper": r.paper, "ours": r.ours,
             "held": r.held, "total": r.total, "failures": list(r.failures)}
            for r in rep.claims
        ],
        "choices": t.choices, "not_run": t.not_run,
    }


def render(rep: Reproduction, fmt: str) -> str:
    if fmt not in FORMATS:
        raise ReproduceError(f"--format: unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "json":
        return json.dumps(to_json(rep), indent=1)
    cells, claims = cells_frame(rep), claims_frame(rep)
    if fmt == "markdown":
        parts = ["\n".join(f"- {line}" for line in heading(rep)), lb.markdown_table(cells), f"_{LEGEND}_"]
        if len(claims):
            parts += [lb.markdown_table(claims), f"_{CLAIMS_LEGEND}_"]
        return "\n\n".join(parts)
    parts = ["\n".join(heading(rep)), cells.to_string(index=False), LEGEND]
    if len(claims):
        parts += [claims.to_string(index=False), CLAIMS_LEGEND]
    if rep.table.not_run:
        parts.append("not run: " + " ".join(rep.table.not_run))
    return "\n\n".join(parts)


def report_tables(rep: Reproduction) -> list[tuple[str, pd.DataFrame]]:
    """The section of `esweep report` for a reproduction: our numbers beside the paper's, then its claims."""
    title = f"{rep.table.paper}, {rep.table.source.table} — {rep.label}"
    tables = [(f"{title}: {' | '.join(heading(rep)[1:])}. {LEGEND}", cells_frame(rep))]
    if rep.claims:
        tables.append((f"{title}: the paper's claims. {CLAIMS_LEGEND}", claims_frame(rep)))
    return tables


def list_frame() -> pd.DataFrame:
    rows = []
    for t in load_tables().values():
        paper, smoke = build_spec(t, "paper"), build_spec(t, "smoke")
        rows.append({
            "table": t.id, "source": f"{t.source.file[:3]} {t.source.table.split(' (')[0]}", "rows": len(t.rows),
            "paper": f"{len(expand(paper))} trials, {paper.dataset}, {paper.epochs} ep",
            "smoke": f"{len(expand(smoke))} trials, {smoke.dataset}, {smoke.epochs} ep",
            "title": t.title,
        })
    return pd.DataFrame(rows)
