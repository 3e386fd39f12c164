"""Trained models as MLflow 3 logged models: logged from each seed run, loaded anywhere by run id or model URI, and
used to encode, decode and sample with any registered latent sampler.

A logged model is a ``LatentModel``: the trained method (encoder, decoder and, for a method with a second stage such
as gmpdm, its latent generator) plus the training encodings its fitted samplers are fitted on. The matched Gaussian
and the GMM are pure functions of those encodings and the seed (evaluators/sampler_latent.py), so a loaded model
draws what the trial drew from the same encodings and seed, with no access to the training data.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from evaluators import names
from evaluators import sampler_latent as samplers_mod
from sweep.tracking import Store, with_retry
from trainers.methods.base import AutoencoderMethod

SAMPLER_STATE_ROWS = 10_000  # training encodings kept with the model (the first ones; as many as cross-run keeps)
EXAMPLE_IMAGES = 1  # images in the logged input example (a CelebA image is ~0.3 MB of JSON, twice)
RUN_ID = re.compile(r"^[0-9a-f]{32}$")
BEST_SUFFIX = ":best"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


class ModelError(ValueError):
    """A model reference or input that cannot be used; the message names the field and what it allows."""


class LatentModel(nn.Module):
    """A trained autoencoder as logged: ``encode`` images in [0, 1] to latents, ``decode`` latents to images, and
    ``sample``/``generate`` with any registered latent sampler. ``forward`` encodes (the logged signature)."""

    def __init__(self, method: AutoencoderMethod, train_z: torch.Tensor, image_shape: tuple[int, int, int]):
        super().__init__()
        self.method = method
        self.register_buffer("train_z", train_z.detach().float().cpu()[:SAMPLER_STATE_ROWS].clone())
        self.image_shape = tuple(int(s) for s in image_shape)

    @property
    def latent_dim(self) -> int:
        return int(self.method.latent_dim)

    @property
    def device(self) -> torch.device:
        return self.train_z.device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.method.encode(x)

    @torch.no_grad()
    def encode(self, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Images (N, C, H, W): uint8 in [0, 255] or floats in [0, 1] -> latents (N, d) on the model's device."""
        if tuple(x.shape[1:]) != self.image_shape:
            raise ModelError(f"images: expected shape (N, {', '.join(map(str, self.image_shape))}), got {tuple(x.shape)}")
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        self.eval()
        return torch.cat([self.method.encode(b.to(self.device)) for b in x.split(batch_size)]) if len(x) else (
            torch.empty(0, self.latent_dim, device=self.device)
        )

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (N, d) -> images (N, C, H, W), clamped to [0, 1]."""
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ModelError(f"latents: expected shape (N, {self.latent_dim}), got {tuple(z.shape)}")
        self.eval()
        return self.method.decode(z.float().to(self.device)).clamp(0, 1)

    def sample(self, n: int, sampler: str = "standard", seed: int = 0) -> torch.Tensor:
        """``n`` latents from a registered sampler, fitted on the stored training encodings; the same seed draws the
        same latents on any machine."""
        draw = samplers_mod.get(sampler)  # an unknown name lists the registered ones
        self.eval()
        return draw(self.train_z.cpu(), n, torch.Generator().manual_seed(seed), self.method)

    def generate(self, n: int, sampler: str = "standard", seed: int = 0) -> torch.Tensor:
        return self.decode(self.sample(n, sampler, seed))

    def interpolate(self, a: torch.Tensor, b: torch.Tensor, steps: int) -> torch.Tensor:
        """Decoded points on the line between the encodings of images ``a`` and ``b`` (each (C, H, W)), ends included."""
        if steps < 2:
            raise ModelError(f"--steps: must be >= 2, got {steps}")
        za, zb = self.encode(torch.stack([a, b]))
        t = torch.linspace(0, 1, steps, device=za.device).unsqueeze(1)
        return self.decode((1 - t) * za + t * zb)


def latent_model(result, image_shape: tuple[int, int, int]) -> LatentModel:
    """The logged form of a trial's trained model: a CPU copy in eval mode (the trial's own model is left as it is)."""
    method = copy.deepcopy(result.model).cpu().eval()
    return LatentModel(method, result.train_z, image_shape).eval()


def _requirements() -> list[str]:
    """Pinned so MLflow need not infer them (a subprocess that imports the model, seconds per trial)."""
    from importlib import metadata

    reqs = []
    for dist in ("torch", "numpy", "scikit-learn"):
        try:
            reqs.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    return reqs


def log_trial_model(store: Store, run_id: str, result, step: int, tags: dict[str, str]) -> str:
    """Log the trial's trained model to its run as an MLflow logged model; returns the model id.

    The model takes every param the run has so far (method, lambda, mu, d, dataset, arch, seed, and whatever else
    the run records, a recon convention included) and is the run's output at ``step``. Log the final metrics after
    it, with its id (``Store.log_metrics(..., model_id=...)``): the Models tab lists and sorts models by them, and
    the run keeps one row per metric and step (MLflow's own linking would copy every metric at ``step``)."""
    import mlflow
    from mlflow.entities import LoggedModelOutput
    from mlflow.models import infer_signature

    image_shape = tuple(result.data.image_shape)
    model = latent_model(result, image_shape)
    example = result.data.test_x[:EXAMPLE_IMAGES].float().div(255.0)
    with torch.no_grad():
        signature = infer_signature(example.numpy(), model(example).numpy())
    run = with_retry(lambda: store.client.get_run(run_id))
    logged = with_retry(lambda: store.client.create_logged_model(
        run.info.experiment_id, names.MODEL_NAME, source_run_id=run_id, tags=tags, params=run.data.params,
        model_type=names.MODEL_TYPE,
    ))
    mlflow.set_tracking_uri(store.uri)  # where mlflow.pytorch writes the model's artifacts
    with_retry(
        lambda: mlflow.pytorch.log_model(
            model,
            name=names.MODEL_NAME,
            model_id=logged.model_id,
            signature=signature,
            input_example=example.numpy(),
            pip_requirements=_requirements(),
            serialization_format="pickle",  # the whole module, so decode and sampling load too (pt2 keeps forward)
        )
    )
    with_retry(lambda: store.client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step)]))
    store.set_tags(run_id, {names.T_MODEL_ID: logged.model_id})
    return logged.model_id


def model_uri(store: Store, ref: str) -> str:
    """A model URI from a run id (the run's logged model) or a model URI (models:/..., runs:/..., a folder)."""
    if RUN_ID.match(ref):
        from mlflow.exceptions import MlflowException

        try:
            run = with_retry(lambda: store.client.get_run(ref))
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise  # refused, or the store unreachable: not the reference's fault
            raise ModelError(f"MODEL: no run {ref!r} in {store.uri}") from None
        model_id = run.data.tags.get(names.T_MODEL_ID)
        if not model_id:
            raise ModelError(
                f"MODEL: run {ref} has no logged model (its sweep ran with evaluation.log_model 'none', or 'best' "
                "and this seed was not the best, or before models were logged)"
            )
        return f"models:/{model_id}"
    if ref.startswith(("models:/", "runs:/")) or "://" in ref or Path(ref).is_dir():
        return ref
    raise ModelError(f"MODEL: {ref!r} is not a run id (32 hex digits), a model URI (models:/..., runs:/...), "
                     "a model folder, or SWEEP:best")


def load_model(ref: str, tracking_uri: str | None = None, device: str | torch.device = "cpu") -> LatentModel:
    """The logged model of a seed run (``ref`` = its run id) or at a model URI, on ``device`` (weights mapped there,
    so a model trained on a GPU loads on a CPU and back), in eval mode."""
    import mlflow

    from sweep.tracking import resolve_tracking_uri

    store = Store(resolve_tracking_uri(tracking_uri))
    uri = model_uri(store, ref)
    mlflow.set_tracking_uri(store.uri)
    model = mlflow.pytorch.load_model(uri, map_location=torch.device(device))
    if not isinstance(model, LatentModel):
        raise ModelError(f"MODEL: {uri} is a {type(model).__name__}, not a model logged by esweep")
    return model.to(device).eval()


# --- the best model of a sweep ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BestModel:
    sweep_id: str
    config_key: str
    metric: str
    summary: str  # the configuration's "mean ± ci95 (n = N)" for the metric
    run_id: str  # the best seed's run
    seed_value: float
    model_id: str


def best_seed(runs, metric: str, mode: str):
    """The finished seed run with a logged model that is best on ``metric`` (None where none has both)."""
    scored = [
        r for r in runs
        if r.info.status == "FINISHED" and r.data.tags.get(names.T_MODEL_ID) and math.isfinite(r.data.metrics.get(metric, math.nan))
    ]
    if not scored:
        return None
    pick = max if mode == "max" else min
    return pick(scored, key=lambda r: r.data.metrics[metric])


def best_model(store: Store, sweep: str, metric: str | None = None) -> BestModel:
    """The best configuration of ``sweep`` by ``metric`` (default: the metric the leaderboard judges by), and its
    best seed that has a logged model."""
    from evaluators.metric_uncertainty import format_summary
    from sweep import leaderboard as lb

    try:
        sweep_id, board = lb.leaderboard(store, sweep)
    except lb.LeaderboardError as exc:
        raise ModelError(f"SWEEP: {exc}") from None
    if board.empty:
        raise ModelError(f"SWEEP: sweep {sweep_id} has no configurations")
    try:
        key = lb.resolve_metric(board, metric) if metric else lb.default_vs_best(board)
    except lb.LeaderboardError as exc:
        raise ModelError(str(exc).replace("--sort", "--metric")) from None
    if key is None:
        judged = [m for m in lb.metric_names(board) if lb.metric_mode(m)]
        raise ModelError(f"SWEEP: sweep {sweep_id} has no finished seed with a metric to judge by"
                         if not judged else f"--metric: give one of {', '.join(judged)}")
    mode = lb.metric_mode(key) or "min"
    ranked = board.dropna(subset=[f"{key}_mean"]).sort_values(f"{key}_mean", ascending=mode != "max")
    trials = store.trial_runs(sweep_id)
    for _, row in ranked.iterrows():
        run = best_seed([t for t in trials if t.data.tags.get(names.T_CONFIG_KEY) == row["config_key"]], key, mode)
        if run is not None:
            summary = format_summary(lb.summaries(board.loc[[row.name]], key)[0], show_n=True)
            return BestModel(sweep_id, row["config_key"], key, summary, run.info.run_id, run.data.metrics[key],
                             run.data.tags[names.T_MODEL_ID])
    raise ModelError(f"SWEEP: sweep {sweep_id} has no logged models (it ran with evaluation.log_model 'none', or "
                     "before models were logged); rerun it with log_model 'all' or 'best'")


def resolve_ref(store: Store, ref: str) -> str:
    """A run id or model URI as given, or ``SWEEP:best`` as its best configuration's best seed run."""
    if ref.endswith(BEST_SUFFIX) and not ref.startswith(("models:/", "runs:/")):
        return best_model(store, ref.removesuffix(BEST_SUFFIX)).run_id
    return ref


def promote_best(store: Store, sweep: str, metric: str | None = None, name: str | None = None):
    """Register the sweep's best model (``best_model``) in the model registry as a new version of ``name`` (default
    esweep-<spec name>), tagged with the sweep, the configuration and its metric summary."""
    from mlflow.exceptions import MlflowException

    best = best_model(store, sweep, metric)
    if name is None:
        spec_name = store.sweep_run(best.sweep_id).data.params.get("spec_name", best.sweep_id)
        name = f"esweep-{spec_name}"
    try:
        with_retry(lambda: store.client.create_registered_model(name))
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise ModelError(f"--name: {name!r} cannot be registered: {exc.message}") from None
    tags = {
        names.T_SWEEP_ID: best.sweep_id, names.T_CONFIG_KEY: best.config_key, names.T_PROMOTED_METRIC: best.metric,
        names.T_PROMOTED_SUMMARY: best.summary, names.T_PROMOTED_RUN: best.run_id,
    }
    version = with_retry(lambda: store.client.create_model_version(
        name, f"models:/{best.model_id}", run_id=best.run_id, tags=tags, model_id=best.model_id,
        description=f"Best of sweep {best.sweep_id} by {best.metric}: configuration {best.config_key} "
        f"({best.summary} over its seeds), seed run {best.run_id} ({best.metric} = {best.seed_value:.4g}).",
    ))
    return best, version


def prune_to_best(store: Store, sweep_id: str) -> list[str]:
    """``evaluation.log_model: best``: keep the logged model of each configuration's best seed by the judged metric
    and delete the others with their artifacts; returns the deleted model ids."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    from sweep import leaderboard as lb

    _, board = lb.leaderboard(store, sweep_id, fresh=True)
    metric = lb.default_vs_best(board) if not board.empty else None
    metric = metric or names.EVAL_RECON_MSE
    mode = lb.metric_mode(metric) or "min"
    groups: dict[str, list] = {}
    for run in store.trial_runs(sweep_id):
        if run.data.tags.get(names.T_MODEL_ID):
            groups.setdefault(run.data.tags.get(names.T_CONFIG_KEY, ""), []).append(run)
    deleted = []
    for runs in groups.values():
        keep = best_seed(runs, metric, mode) or best_seed(runs, names.EVAL_RECON_MSE, "min")
        for run in runs:
            if keep is not None and run.info.run_id == keep.info.run_id:
                continue
            model_id = run.data.tags[names.T_MODEL_ID]
            logged = with_retry(lambda model_id=model_id: store.client.get_logged_model(model_id))
            get_artifact_repository(logged.artifact_location, tracking_uri=store.uri).delete_artifacts()
            with_retry(lambda model_id=model_id: store.client.delete_logged_model(model_id))
            with_retry(lambda run=run: store.client.delete_tag(run.info.run_id, names.T_MODEL_ID))
            deleted.append(model_id)
    return deleted


# --- images from disk --------------------------------------------------------------------------------------------
def read_images(path: str | Path, image_shape: tuple[int, int, int], field: str = "IMAGES") -> torch.Tensor:
    """A folder of images, one image file, or an .npy array -> uint8 or float (N, C, H, W) of ``image_shape``.

    An .npy array is (N, C, H, W), or (N, H, W) for one channel: uint8 in [0, 255] or floats in [0, 1]."""
    path = Path(path)
    c, h, w = image_shape
    want = f"(N, {c}, {h}, {w})" + (f" or (N, {h}, {w})" if c == 1 else "")
    if path.suffix == ".npy":
        if not path.is_file():
            raise ModelError(f"{field}: no file {path}")
        arr = np.load(path, allow_pickle=False)
        if arr.ndim == 3 and c == 1:
            arr = arr[:, None]
        if arr.ndim != 4 or tuple(arr.shape[1:]) != (c, h, w):
            raise ModelError(f"{field}: {path} has shape {arr.shape}; this model takes images {want}")
        if arr.dtype == np.uint8:
            return torch.from_numpy(arr.copy())
        if not np.issubdtype(arr.dtype, np.floating) or not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
            raise ModelError(f"{field}: {path} must hold uint8 in [0, 255] or finite floats in [0, 1] (got {arr.dtype})")
        return torch.from_numpy(arr.astype(np.float32))
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if path.is_dir() else [path]
    if not path.exists() or not files or (path.is_file() and path.suffix.lower() not in IMAGE_SUFFIXES):
        raise ModelError(f"{field}: {path} is not a folder of images ({', '.join(IMAGE_SUFFIXES)}), an image or an .npy file")
    from PIL import Image

    out = []
    for f in files:
        with Image.open(f) as img:
            arr = np.asarray(img.convert("L" if c == 1 else "RGB"))
        if arr.shape[:2] != (h, w):
            raise ModelError(f"{field}: {f.name} is {arr.shape[1]}x{arr.shape[0]} pixels; this model takes {w}x{h}")
        out.append(arr[None] if c == 1 else arr.transpose(2, 0, 1))
    return torch.from_numpy(np.stack(out))
