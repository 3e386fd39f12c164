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
from trainers.control import ControlConfig
from trainers.datasets import DATASETS
from trainers.methods.base import DEFAULT_RECON, ReconReduction


class SpecError(ValueError):
    """A spec that cannot run; the message names the field and what it allows."""


def _check_lambdas(v: list[float] | None) -> list[float] | None:
    """A lambda grid, sweep-wide or a method's own."""
    if v is not None and any(x < 0 for x in v):
        raise ValueError("every lambda must be >= 0")
    return v


def _check_mus(v: list[float] | None) -> list[float] | None:
    if v is not None and any(not x > 0.5 for x in v):
        raise ValueError("every mu must be > 0.5")
    return v


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Resources(_Strict):
    cpu: float = Field(1.0, gt=0, description="CPUs per trial")
    gpu: float = Field(0.0, ge=0, description="GPUs per trial (fractions share a GPU)")


class EvaluationSpec(_Strict):
    """What every trial and every configuration is evaluated on, after training (see evaluators/)."""

    samplers: list[str] = Field(default_factory=lambda: ["standard", "matched"], description="latent samplers for FID")
    fid_samples: int = Field(10_000, ge=0, le=1_000_000, description="generated images per sampler (0: no FID)")
    fid_reference_size: int | None = Field(None, ge=2, description="test images for FID reference statistics")
    fid_reference: Literal["test", "train"] = Field(
        "test",
        description="reference images of every generation metric: unseen test images (Li & Blair) or as many of the "
        "training images (Geng et al.)",
    )
    feature_extractors: list[str] | None = Field(
        None,
        min_length=1,
        description="feature spaces of the generation metrics, e.g. [inception-v3-fidhelper, dinov2-vit-l-14]: the "
        "first gives eval/fid/..., each further one the same FD/KID/precision/recall/density/coverage under "
        "eval/<extractor>/... (default: the Inception network alone); each one's files must be on this machine",
    )
    memorisation: bool = Field(
        True,
        description="per sampler, Meehan et al.'s C_T data-copying test and the copy fraction (one extra feature "
        "pass over training images, cached); a copying configuration is flagged in the leaderboard",
    )
    knn: bool = Field(True, description="KNN error against labelled subset size (Li & Blair Table 2)")
    plots: bool = Field(True, description="spectrum, latent scatter, eigen-images, samples, reconstructions")
    crossrun: bool = Field(True, description="angles between seeds, raw and Hungarian-aligned (sec. 4.2)")
    fid_infinity: bool = Field(
        False, description="FID-infinity per sampler (Chong & Forsyth 2020): subset FIDs extrapolated to n = infinity"
    )
    log_model: Literal["all", "best", "none"] = Field(
        "all",
        description="log trained models to MLflow: every seed's, only each configuration's best seed by the judged "
        "metric (the others are removed when the sweep ends), or none",
    )

    @field_validator("samplers")
    @classmethod
    def _samplers(cls, v: list[str]) -> list[str]:
        from evaluators import sampler_latent

        for name in v:
            sampler_latent.get(name)
        return v

    @field_validator("feature_extractors")
    @classmethod
    def _extractors(cls, v: list[str] | None) -> list[str] | None:
        from evaluators.feature_extractor_files import missing_files

        if v is None:
            return v
        if len(set(v)) != len(v):
            raise ValueError("feature extractors must be distinct")
        for name in v:
            if missing := missing_files(name):
                files = " and ".join(str(path) for path, _ in missing)
                raise ValueError(f"{name!r} needs {files}, not on this machine (offline?); {missing[0][1]}")
        return v

    @model_validator(mode="after")
    def _fid_infinity_samples(self) -> EvaluationSpec:
        from evaluators.metric_fid_infinity import FID_INF_MIN_SAMPLES

        if self.fid_infinity and self.fid_samples < FID_INF_MIN_SAMPLES:
            raise ValueError(f"fid_infinity needs fid_samples >= {FID_INF_MIN_SAMPLES}, got {self.fid_samples}")
        return self


class TargetSpec(_Strict):
    """Lambda targeting (Li & Blair sec. 5): lambda regulated during training to hold a target, per trial."""

    eccentricity: list[float] | None = Field(None, min_length=1, description="target eccentricities, each in [0, 10)")
    reg: list[float] | None = Field(None, min_length=1, description="target values of the regulariser loss")
    initial_lambda: float | None = Field(None, gt=0, description="lambda at the start (default 1e-2)")
    control: dict[str, float] = Field(default_factory=dict, description="LambdaController settings (gains, bounds)")

    @field_validator("eccentricity")
    @classmethod
    def _ecc_range(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and any(not 0 <= x < 10 for x in v):
            raise ValueError("every target eccentricity must be in [0, 10)")
        return v

    @model_validator(mode="after")
    def _one_kind(self) -> TargetSpec:
        if (self.eccentricity is None) == (self.reg is None):
            raise ValueError("give exactly one of 'eccentricity' and 'reg'")
        try:
            ControlConfig(**{**self.control, **self.controls()[0]})
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ValueError(f"control.{'.'.join(map(str, first['loc']))}: {first['msg']}") from None
        return self

    def controls(self) -> list[dict[str, float]]:
        if self.eccentricity is not None:
            return [{"target_eccentricity": t} for t in self.eccentricity]
        return [{"target_reg": t} for t in self.reg or []]


class SearchSpec(_Strict):
    """A search instead of a grid: Optuna (through Ray Tune's OptunaSearch) over ranges, optional ASHA stopping."""

    algorithm: Literal["optuna"] = "optuna"
    metric: str = Field(description="any per-trial leaderboard metric, e.g. eval/fid/standard or eval/eccentricity")
    mode: Literal["min", "max"] = "min"
    target: float | None = Field(None, description="minimise |metric - target| instead of the metric itself")
    num_samples: int = Field(16, ge=1, le=100_000, description="trials the search runs")
    lambda_range: tuple[float, float] | None = Field(None, description="[low, high], sampled log-uniformly (> 0)")
    mu_range: tuple[float, float] | None = Field(None, description="[low, high], sampled uniformly (> 0.5)")
    asha: bool = Field(False, description="stop poor trials early (ASHA) on asha_metric, reported every epoch")
    asha_metric: str = Field("eval/recon_mse", description="per-epoch metric ASHA compares")
    asha_mode: Literal["min", "max"] = "min"
    grace_period: int = Field(1, ge=1, description="epochs every trial runs before ASHA may stop it")
    seed: int = Field(0, ge=0, description="the searcher's seed")

    @field_validator("metric", "asha_metric")
    @classmethod
    def _metric_name(cls, v: str) -> str:
        if not v.startswith(("eval/", "train/", "control/")):
            raise ValueError(f"{v!r} is not a per-trial metric; use an eval/..., train/... or control/... key")
        return v

    @field_validator("lambda_range")
    @classmethod
    def _lambda_range(cls, v):
        if v is not None and not 0 < v[0] < v[1]:
            raise ValueError("lambda_range must be [low, high] with 0 < low < high")
        return v

    @field_validator("mu_range")
    @classmethod
    def _mu_range(cls, v):
        if v is not None and not 0.5 < v[0] < v[1]:
            raise ValueError("mu_range must be [low, high] with 0.5 < low < high")
        return v

    @property
    def objective(self) -> str:
        return SEARCH_OBJECTIVE if self.target is not None else self.metric


SEARCH_OBJECTIVE = "search/objective"


class MethodEntry(_Strict):
    """A method with optional grids of its own, overriding the sweep-wide lambdas/mus."""

    name: str
    lambdas: list[float] | None = Field(None, min_length=1)
    mus: list[float] | None = Field(None, min_length=1)
    recon: ReconReduction | None = Field(None, description="this method's reconstruction units (default: the sweep's)")
    recon_scale: float | None = Field(None, gt=0, description="this method's factor on the reconstruction term")

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        methods.get(v)
        return v

    _lambda_range = field_validator("lambdas")(_check_lambdas)
    _mu_range = field_validator("mus")(_check_mus)

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
    recon: ReconReduction = Field(
        DEFAULT_RECON,
        description="what lambda is weighed against: mean (squared error per pixel, the papers' units), sum (per "
        "image, averaged over the batch) or batch-sum (summed over the minibatch too, Ghose eq. 2.2)",
    )
    recon_scale: float = Field(1.0, gt=0, description="factor on the reconstruction term (Tolstikhin et al.'s code: 0.05)")
    weight_decay: float = Field(DEFAULT_WEIGHT_DECAY, ge=0, le=1.0)
    max_train: int | None = Field(None, ge=2, description="use only the first N training images")
    resources: Resources = Field(default_factory=Resources)
    max_failures: int = Field(1, ge=0, le=100, description="retries per trial after a crash")
    max_concurrent: int | None = Field(None, ge=1, description="trials at once (default: as resources allow)")
    tracking_uri: str | None = Field(None, description="MLflow tracking URI (default: sqlite file in the cwd)")
    storage_path: str | None = Field(None, description="Ray results and checkpoints (default ./esweep-results)")
    data_root: str | None = Field(None, description="folder of on-disk datasets")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["off", "bf16"] = Field(
        "off", description="bf16 autocast in training steps (methods with the base step; regulariser in fp32)"
    )
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    target: TargetSpec | None = Field(None, description="regulate lambda to hold a target, in place of a lambda grid")
    search: SearchSpec | None = Field(None, description="an Optuna search over ranges, in place of the grid")
    pack: int = Field(
        1,
        ge=1,
        le=64,
        description="train up to this many grid trials that differ only in lambda and seed as one vmapped Tune "
        "trial, each still its own MLflow run (1: off); methods with their own step and targeted runs stay unpacked",
    )

    @model_validator(mode="after")
    def _run_type(self) -> SweepSpec:
        entries = self.method_entries()
        if self.target is not None:
            if "lambdas" in self.model_fields_set or any(e.lambdas for e in entries):
                raise ValueError("target: cannot be combined with a lambda grid; remove 'lambdas'")
            for e in entries:
                if not methods.get(e.name).takes_lambda:
                    raise ValueError(f"target: method {e.name!r} takes no lambda, so it cannot be targeted")
        if self.search is not None:
            if self.pack > 1:
                raise ValueError("pack: cannot be combined with 'search' (a searcher samples one trial at a time); use pack: 1")
            if self.target is not None:
                raise ValueError("search: cannot be combined with 'target'")
            if self.search.lambda_range is not None and ("lambdas" in self.model_fields_set or any(e.lambdas for e in entries)):
                raise ValueError("search: give lambda either as 'lambda_range' or as 'lambdas', not both")
        return self

    _lambda_range = field_validator("lambdas")(_check_lambdas)
    _mu_range = field_validator("mus")(_check_mus)

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
        controls: list[dict | None] = [None]
        if spec.target is not None:
            lams, controls = [spec.target.initial_lambda], [{**spec.target.control, **c} for c in spec.target.controls()]
        for lam, control, mu, d, seed in itertools.product(lams, controls, mus, spec.latent_dims, spec.seeds):
            lam_part = f"lam{_fmt(lam)}" if control is None else target_label(control)
            config_key = f"{entry.name}__{lam_part}__mu{_fmt(mu)}__d{d}"
            cfg = TrainConfig(
                control=control,
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
                recon=entry.recon or spec.recon,
                recon_scale=entry.recon_scale or spec.recon_scale,
                weight_decay=spec.weight_decay,
                max_train=spec.max_train,
                data_root=spec.data_root,
                device=spec.device,
                amp=spec.amp,
            )
            trials.append(TrialSpec(f"{config_key}__s{seed}", config_key, cfg))
    return trials


def target_label(control: dict | ControlConfig) -> str:
    """'target-ecc0.4' or 'target-reg-2': how a targeted configuration reads in keys and the leaderboard."""
    c = control if isinstance(control, ControlConfig) else ControlConfig(**control)
    return f"target-ecc{c.target_eccentricity:g}" if c.target_eccentricity is not None else f"target-reg{c.target_reg:g}"


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
        lines.append(f"{loc}: {msg}" if loc else msg)
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
