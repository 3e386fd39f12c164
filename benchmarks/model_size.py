"""Artifact storage per logged model (sweep/models.py), per architecture: `python -m benchmarks.model_size`.

Each model is logged exactly as a seed run logs it (weights, the sampler state of up to 10,000 training encodings,
the input example, MLmodel and environment files) into a throwaway sqlite store; the figure is the bytes on disk
under the model's artifact folder, and the same times 10,000 trials. Weights are untrained: a tensor's size does
not depend on its values, so the figure is that of a trained model."""

from __future__ import annotations

import tempfile
from pathlib import Path
from types import SimpleNamespace

import torch

from sweep.models import SAMPLER_STATE_ROWS, log_trial_model
from sweep.tracking import Store
from trainers import methods, networks

CASES = (("mnist-conv", 8), ("mnist-conv", 64), ("celeba-conv", 64))
TRIALS = 10_000


def logged_bytes(arch_name: str, latent_dim: int, root: Path) -> tuple[int, int]:
    """(bytes of the whole logged model, bytes of its weights and sampler state file)."""
    arch = networks.get(arch_name)
    model = methods.get("eae")(arch, latent_dim, 1.0, 1.0)
    images = torch.zeros(4, *arch.image_shape, dtype=torch.uint8)
    result = SimpleNamespace(model=model, train_z=torch.randn(SAMPLER_STATE_ROWS, latent_dim),
                             data=SimpleNamespace(test_x=images, image_shape=tuple(arch.image_shape)))
    store = Store(f"sqlite:///{root / 'mlflow.db'}")
    run_id = store.client.create_run(store.experiment_id()).info.run_id
    model_id = log_trial_model(store, run_id, result, 1, {})
    folder = Path(store.client.get_logged_model(model_id).artifact_location.removeprefix("file://"))
    files = [p for p in folder.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), sum(p.stat().st_size for p in files if p.name == "model.pth")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for arch_name, d in CASES:
            total, weights = logged_bytes(arch_name, d, Path(tmp))
            params = sum(p.numel() for p in methods.get("eae")(networks.get(arch_name), d, 1.0, 1.0).parameters())
            print(f"FIGURE model_size {arch_name} d={d}: {params:,} parameters, model.pth {weights / 1e6:.2f} MB, "
                  f"logged model {total / 1e6:.2f} MB; {TRIALS:,} trials {total * TRIALS / 1e9:.1f} GB")


if __name__ == "__main__":
    main()
