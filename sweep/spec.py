"""The YAML sweep spec: strict, validated whole in the driver before Ray schedules anything."""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from evaluators.registry import UnknownNameError
from trainers import methods, networks
from trainers.config import DEFAULT_BATCH_SIZE, DEFAULT_LR, DEFAULT_WEIGHT_DECAY, TrainConfig
from trainers.datasets import DATASETS


class SpecError(ValueError):
    """A spec that cannot run; the message names the field and what it allows."""


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Resources(_Strict):
    cpu: float = Field(1.0, gt=0, description="CPUs per trial")
    gpu: float = Field(0.0, ge=0, description="GPUs per trial (fractions share a GPU)")


class MethodEntry(_Strict):
    """A method with optional grids of its own, overriding the sweep-wide lambdas/mus."""

    name: str
    lambdas: list[float] | None = Field(None, min_length=1)
    mus: list[float] | None = Field(None, min_length=1)

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        methods.get(v)
        return v

    @field_validator("lambdas")
    @classmethod
    def _lambda_range(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and any(x < 0 for x in v):
            raise ValueError("every lambda must be >= 0")
        return v

    @field_validator("mus")
    @classmethod
    def _mu_range(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and any(not x > 0.5 for x in v):
            raise ValueError("every mu must be > 0.5")
        return v

    @model_validator(mode="after")
    def _params_taken(self) -> MethodEntry:
        cls = methods.get(self.name)
        if self.lambdas is not None and not cls.takes_lambda:
            raise ValueError(f"method {self.name!r} takes no lambda; remove 'lambdas'")
        if self.mus is not None and not cls.takes_mu:
            raise ValueError(f"method {self.name!r} takes no mu; remove 'mus'")
        return self


class SweepSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="sweep name (letters, digits, _.-)")
    dataset: str = Field("mnist5k", description="registered dataset")
    arch: str | None = Field(None, description="architecture; default: the dataset's")
    methods: list[str | MethodEntry] = Field(min_length=1, description="methods, by name or with their own grids")
    lambdas: list[float] = Field(default_factory=lambda: [1e-3], min_length=1, description="lambda grid (>= 0)")
    mus: list[float] = Field(default_factory=lambda: [1.0], min_length=1, description="mu grid (> 0.5), eccentric only")
    latent_dims: list[int] = Field(default_factory=lambda: [8], min_length=1, description="latent dimensions (>= 2)")
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1, description="seeds (>= 0)")
    epochs: int = Field(5, ge=1, le=100_000)
    batch_size: int = Field(DEFAULT_BATCH_SIZE, ge=2, le=65_536)
    lr: float = Field(DEFAULT_LR, gt=0, le=1.0)
    weight_decay: float = Field(DEFAULT_WEIGHT_DECAY, ge=0, le=1.0)
    max_train: int | None = Field(None, ge=2, description="use only the first N training images")
    resources: Resources = Field(default_factory=Resources)
    max_failures: int = Field(1, ge=0, le=100, description="retries per trial after a crash")
    max_concurrent: int | None = Field(None, ge=1, description="trials at once (default: as resources allow)")
    tracking_uri: str | None = Field(None, description="MLflow tracking URI (default: sqlite file in the cwd)")
    storage_path: str | None = Field(None, description="Ray results and checkpoints (default ./esweep-results)")
    data_root: str | None = Field(None, description="folder of on-disk datasets")
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @field_validator("lambdas")
    @classmethod
    def _lambda_range(cls, v: list[float]) -> list[float]:
        if any(x < 0 for x in v):
            raise ValueError("every lambda must be >= 0")
        return v

    @field_validator("mus")
    @classmethod
    def _mu_range(cls, v: list[float]) -> list[float]:
        if any(not x > 0.5 for x in v):
            raise ValueError("every mu must be > 0.5")
        return v

    @field_validator("latent_dims")
    @classmethod
    def _dims(cls, v: list[int]) -> list[int]:
        if any(x < 2 or x > 4096 for x in v):
            raise ValueError("every latent dimension must be in [2, 4096]")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        if any(x < 0 for x in v):
            raise ValueError("every seed must be >= 0")
        if len(set(v)) != len(v):
            raise ValueError("seeds must be distinct")
        return v

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, v: str) -> str:
        DATASETS.get(v)
        return v

    @field_validator("arch")
    @classmethod
    def _arch(cls, v: str | None) -> str | None:
        if v is not None:
            networks.get(v)
        return v

    @field_validator("methods")
    @classmethod
    def _methods(cls, v: list[str | MethodEntry]) -> list[str | MethodEntry]:
        seen = set()
        for entry in v:
            name = entry if isinstance(entry, str) else entry.name
            methods.get(name)
            if name in seen:
                raise ValueError(f"method {name!r} is listed twice")
            seen.add(name)
        return v

    def method_entries(self) -> list[MethodEntry]:
        return [MethodEntry(name=m) if isinstance(m, str) else m for m in self.methods]


@dataclass(frozen=True)
class TrialSpec:
    key: str  # unique within the sweep, stable across restarts: how a trial finds its MLflow run
    config_key: str  # the same for every seed of one configuration (a leaderboard row)
    train: TrainConfig


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:g}"


def expand(spec: SweepSpec) -> list[TrialSpec]:
    """The grid method x lambda x mu x d x seed, lambda and mu only for methods that take them."""
    trials = []
    for entry in spec.method_entries():
        cls = methods.get(entry.name)
        lams = (entry.lambdas or spec.lambdas) if cls.takes_lambda else [None]
        mus = (entry.mus or spec.mus) if cls.takes_mu else [None]
        for lam, mu, d, seed in itertools.product(lams, mus, spec.latent_dims, spec.seeds):
            config_key = f"{entry.name}__lam{_fmt(lam)}__mu{_fmt(mu)}__d{d}"
            cfg = TrainConfig(
                method=entry.name,
                dataset=spec.dataset,
                arch=spec.arch,
                latent_dim=d,
                lam=lam,
                mu=mu,
                seed=seed,
                epochs=spec.epochs,
                batch_size=spec.batch_size,
                lr=spec.lr,
                weight_decay=spec.weight_decay,
                max_train=spec.max_train,
                data_root=spec.data_root,
                device=spec.device,
            )
            trials.append(TrialSpec(f"{config_key}__s{seed}", config_key, cfg))
    return trials


def _format_validation_error(exc: ValidationError) -> str:
    lines = []
    errors = exc.errors()
    if len(errors) > 1:  # a union member's type mismatch is noise next to the real error
        errors = [e for e in errors if e["type"] not in ("string_type", "model_type", "dict_type")] or errors
    for err in errors:
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("function-after", "str", "MethodEntry")))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field (not allowed)"
        lines.append(f"{loc or '<spec>'}: {msg}")
    return "invalid sweep spec:\n  " + "\n  ".join(dict.fromkeys(lines))


def parse_spec(data: Any) -> SweepSpec:
    if not isinstance(data, dict):
        raise SpecError("invalid sweep spec: the top level must be a mapping of fields")
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_format_validation_error(exc)) from None
    except UnknownNameError as exc:
        raise SpecError(f"invalid sweep spec: {exc}") from None
    try:
        trials = expand(spec)
    except (ValidationError, ValueError) as exc:
        raise SpecError(f"invalid sweep spec: {exc}") from None
    for trial in trials:
        if trial.train.max_train is not None and trial.train.max_train < trial.train.batch_size:
            raise SpecError(f"invalid sweep spec:\n  max_train: must be >= batch_size ({trial.train.batch_size})")
    return spec


BUILTIN_DIR = "specs"


def builtin_specs() -> dict[str, str]:
    """Built-in spec names -> their YAML text (package data)."""
    folder = resources.files("sweep") / BUILTIN_DIR
    return {p.name.removesuffix(".yaml"): p.read_text() for p in folder.iterdir() if p.name.endswith(".yaml")}


def load_spec(path_or_name: str | Path) -> SweepSpec:
    """A YAML file path, or the name of a built-in spec."""
    path = Path(path_or_name)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.exists():
            raise SpecError(f"spec file not found: {path}")
        text = path.read_text()
    else:
        specs = builtin_specs()
        if str(path_or_name) not in specs:
            raise SpecError(f"unknown built-in spec {str(path_or_name)!r}; built-in specs: {', '.join(sorted(specs))}")
        text = specs[str(path_or_name)]
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"spec is not valid YAML: {exc}") from None
    return parse_spec(data)


def spec_digest(spec: SweepSpec) -> str:
    return hashlib.sha256(json.dumps(spec.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:12]
