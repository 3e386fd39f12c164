"""The frozen, strict configuration of one training run (one sweep trial)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from trainers import methods, networks
from trainers.control import DEFAULT_INITIAL_LAMBDA, ControlConfig, check_method
from trainers.datasets import DATASETS
from trainers.methods.base import DEFAULT_RECON, ReconReduction

# one source of defaults for the Python API, the spec and the CLI (Li & Blair sec. 4)
DEFAULT_LR = 1e-4
DEFAULT_WEIGHT_DECAY = 1e-6
DEFAULT_BATCH_SIZE = 100


class TrainConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    method: str = Field(description="registered method name")
    dataset: str = Field("mnist5k", description="registered dataset name")
    arch: str | None = Field(None, description="architecture name; None picks the dataset's default")
    latent_dim: int = Field(8, ge=2, le=4096, description="latent dimension d")
    lam: float | None = Field(None, ge=0.0, description="regulariser strength lambda (methods that take one)")
    mu: float | None = Field(None, gt=0.5, description="eccentric shape mu (methods that take one)")
    recon: ReconReduction = Field(
        DEFAULT_RECON,
        description="units of the reconstruction term lambda is weighed against: mean (per pixel, the papers'), "
        "sum (per image) or batch-sum (over the minibatch too)",
    )
    recon_scale: float = Field(1.0, gt=0.0, description="factor on the reconstruction term (Tolstikhin et al.: 0.05)")
    seed: int = Field(0, ge=0, description="seed for weights and batch order")
    epochs: int = Field(5, ge=1, le=100_000, description="training epochs")
    batch_size: int = Field(DEFAULT_BATCH_SIZE, ge=2, description="batch size")
    lr: float = Field(DEFAULT_LR, gt=0.0, description="Adam learning rate")
    weight_decay: float = Field(DEFAULT_WEIGHT_DECAY, ge=0.0, description="Adam weight decay")
    max_train: int | None = Field(None, ge=2, description="use only the first N training images")
    eval_probe: int = Field(2000, ge=2, description="test images encoded for per-epoch eccentricity")
    data_root: str | None = Field(None, description="folder holding on-disk datasets")
    device: str = Field("auto", description="'auto', 'cpu' or 'cuda[:i]'")
    amp: Literal["off", "bf16"] = Field(
        "off", description="bf16 autocast for the network in training steps (regulariser kept in fp32)"
    )
    control: ControlConfig | None = Field(
        None, description="regulate lambda towards a target during training; lam is then the initial lambda"
    )

    @model_validator(mode="after")
    def _check_names_and_params(self) -> TrainConfig:
        cls = methods.get(self.method)
        DATASETS.get(self.dataset)
        if self.arch is not None:
            networks.get(self.arch)
        if self.lam is not None and not cls.takes_lambda:
            raise ValueError(f"method {self.method!r} takes no lambda")
        if self.mu is not None and not cls.takes_mu:
            raise ValueError(f"method {self.method!r} takes no mu")
        if self.amp != "off" and not cls.amp_safe():
            valid = sorted(n for n in methods.METHODS.names() if methods.get(n).amp_safe())
            raise ValueError(
                f"amp: method {self.method!r} computes its own loss, whose regulariser is not kept in fp32 under "
                f"autocast; amp works with: {', '.join(valid)}"
            )
        if self.control is not None:
            try:
                check_method(self.method)
            except ValueError as exc:
                raise ValueError(f"control: {exc}") from None
            lo, hi = self.control.lambda_min, self.control.lambda_max
            if not lo <= self.effective_lambda <= hi:
                raise ValueError(f"lam {self.effective_lambda:g} (initial lambda of control) is outside [{lo:g}, {hi:g}]")
        return self

    @property
    def effective_lambda(self) -> float:
        if self.lam is not None:
            return self.lam
        return DEFAULT_INITIAL_LAMBDA if self.control is not None else 0.0

    @property
    def effective_mu(self) -> float | None:
        cls = methods.get(self.method)
        return self.mu if self.mu is not None else cls.default_mu
