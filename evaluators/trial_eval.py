"""The entry points sweep/ calls after training: one trial (FID per sampler, KNN, plots) and one configuration (cross-run).

Both return plain dicts keyed by ``evaluators.names`` constants: metrics (float), params (str), artifacts (bytes).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import torch
from torch import nn

from evaluators import names
from evaluators import plots as plotting
from evaluators import sampler_latent as samplers_mod
from evaluators.feature_extractor_inception_fidhelper import FeatureNet, build_feature_net
from evaluators.metric_crossrun import crossrun_metrics
from evaluators.metric_downstream import (
    attribute_errors,
    knn_metrics,
    knn_vs_subset_size,
    single_component_gain,
)
from evaluators.metric_eccentricity import principal_axes, to_principal
from evaluators.metric_fid import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_FID_SAMPLES,
    GENERATED_INPUT,
    FidStats,
    features_of_latents,
    fid_from_features_and_stats,
    reference_stats,
)
from evaluators.metric_fid_bias import PRDC_MIN_SAMPLES, is_small_knn_sample, is_small_sample
from evaluators.metric_fid_infinity import FID_INF_MIN_SAMPLES, fid_infinity_from_features
from evaluators.metric_kid import KID_SUBSETS, kid_from_features
from evaluators.metric_memorisation import data_copying
from evaluators.metric_prdc import DC_NEIGHBORHOOD, PRC_NEIGHBORHOOD, knn_radii, prdc_from_features
from evaluators.report import render_html_report


class LabelledImages(Protocol):
    """What evaluation reads of a dataset (trainers.datasets.ImageData is one); named here so evaluators import no trainer."""

    @property
    def train_x(self) -> torch.Tensor: ...  # uint8 (N, C, H, W)
    @property
    def train_y(self) -> torch.Tensor: ...  # int64 (N,) or attributes (N, A) in {0, 1}
    @property
    def test_x(self) -> torch.Tensor: ...
    @property
    def test_y(self) -> torch.Tensor: ...
    @property
    def label_names(self) -> tuple[str, ...]: ...


FID_REFERENCES = ("test", "train")  # Li & Blair compare with unseen test images, Geng et al. with training ones
GRID_SAMPLES = 64
RECON_IMAGES = 8
SCATTER_POINTS = 2000


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _model_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def fixed_subset(n_total: int, n: int | None, seed: int = 0) -> torch.Tensor:
    """A fixed random subset of indices (test sets may be sorted by label); all indices when n is None or too big."""
    if n is None or n >= n_total:
        return torch.arange(n_total)
    return torch.randperm(n_total, generator=torch.Generator().manual_seed(seed))[:n].sort().values


def _csv(df: pd.DataFrame) -> bytes:
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    return buf.getvalue().encode()


def evaluate_trial(
    model: nn.Module,
    data: LabelledImages,
    train_z: torch.Tensor,
    test_z: torch.Tensor,
    *,
    samplers: Sequence[str] = ("standard", "matched"),
    fid_samples: int = DEFAULT_FID_SAMPLES,
    fid_reference_size: int | None = None,
    fid_reference: str = "test",
    memorisation: bool = True,
    fid_extractor: str | None = None,
    extra_extractors: Sequence[str] = (),
    fid_cache_dir: str | Path | None = None,
    fid_batch_size: int = DEFAULT_BATCH_SIZE,
    fid_infinity: bool = False,
    device: str | torch.device | None = None,
    knn: bool = True,
    knn_repeats: int = 20,
    plots: bool = True,
    generator: torch.Generator | None = None,
) -> tuple[dict[str, float], dict[str, str], dict[str, bytes]]:
    """Evaluate one trained model.

    ``train_z``/``test_z`` encode ``data.train_x[:len(train_z)]`` and ``data.test_x[:len(test_z)]`` (labels are
    matched by that prefix). FID compares ``fid_samples`` decoded samples per sampler with the first
    ``fid_reference_size`` test images (a fixed random subset; all when None), or with ``fid_reference='train'`` with
    as many of the training images the model saw (Geng et al.'s reference); ``fid_samples=0`` skips FID. A sampler
    that does not apply to the model (``generator`` without ``model.latent_sampler()``) is skipped and named in a
    param. With ``memorisation``, per sampler Meehan et al.'s C_T and the copy fraction against those training and
    test images (one network pass over the training images, cached like the reference). Each of
    ``extra_extractors`` (a second feature space, e.g. DINOv2) gives FID, KID and precision/recall/density/coverage
    on its own features, under ``names.in_feature_space``.
    From the same features as each FID, with no further network pass: KID (mean and std over subsets), the sample
    count, precision/recall/F-score and density/coverage (where both sides have more than k = 5 samples), and with
    ``fid_infinity`` FID-infinity (its subset FIDs also as a table).
    """
    for name in samplers:
        samplers_mod.get(name)  # fail on an unknown name before any work, listing the valid ones
    if fid_reference not in FID_REFERENCES:
        raise ValueError(f"fid_reference must be one of {', '.join(FID_REFERENCES)}, got {fid_reference!r}")
    if fid_infinity and 0 < fid_samples < FID_INF_MIN_SAMPLES:
        raise ValueError(f"fid_infinity needs fid_samples >= {FID_INF_MIN_SAMPLES}, got {fid_samples}")
    device = torch.device(device) if device is not None else _model_device(model)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    train_z, test_z = train_z.detach().float().cpu(), test_z.detach().float().cpu()
    metrics: dict[str, float] = {}
    params: dict[str, str] = {names.P_SAMPLERS: ",".join(samplers), names.P_FID_SAMPLES: str(fid_samples)}
    artifacts: dict[str, bytes] = {}
    tables: list[tuple[str, pd.DataFrame]] = []

    latents: dict[str, torch.Tensor] = {}
    skipped = []
    n_draw = max(fid_samples, GRID_SAMPLES if plots else 0)
    for name in samplers:
        started = time.perf_counter()
        try:
            latents[name] = samplers_mod.get(name)(train_z, n_draw, generator, model) if n_draw else None
        except samplers_mod.SamplerUnavailableError:
            skipped.append(name)
            continue
        if n_draw:  # an ex-post sampler's fit is timed with its draw
            metrics[names.eval_sampler_time(name)] = time.perf_counter() - started
    if skipped:
        params[names.P_FID_SKIPPED] = ",".join(skipped)

    with _eval_mode(model):
        if fid_samples > 0 and latents:
            net = build_feature_net(fid_extractor, device)
            test_images = data.test_x[fixed_subset(len(data.test_x), fid_reference_size)]
            # training images the model saw (train_z encodes their prefix), as many as the test reference has
            train_images = data.train_x[: len(train_z)][fixed_subset(len(train_z), len(test_images))]

            def reference(split: str, on: FeatureNet) -> FidStats:
                images = train_images if split == "train" else test_images
                return reference_stats(images, on, fid_cache_dir, fid_batch_size)

            ref = reference(fid_reference, net)
            if memorisation:
                test_ref, train_ref = reference("test", net), reference("train", net)
                params[names.P_CT_TRAIN_SIZE] = str(train_ref.n)
            params[names.P_FID_EXTRACTOR] = net.name
            params[names.P_FID_REFERENCE_SIZE] = str(ref.n)
            params.update(provenance_params(net, ref, fid_reference))
            params[names.P_KID_SUBSETS] = str(KID_SUBSETS)
            params[names.P_PRC_NEIGHBORHOOD] = str(PRC_NEIGHBORHOOD)
            params[names.P_DC_NEIGHBORHOOD] = str(DC_NEIGHBORHOOD)
            ref_radii: dict = {}  # the reference's k-NN balls, once for every sampler
            fid_inf_rows = []
            for name, z in latents.items():
                feats = features_of_latents(model.decode, z[:fid_samples], net, device, fid_batch_size)
                space, kid_size = _feature_space_metrics(name, feats, ref, net, ref_radii)
                metrics.update(space)
                params[names.P_KID_SUBSET_SIZE] = str(kid_size)
                if memorisation:
                    copying = data_copying(feats, train_ref.features, test_ref.features)
                    params[names.P_CT_CELLS] = str(copying.cells)
                    metrics[names.eval_copy_fraction(name)] = copying.copy_fraction
                    if math.isfinite(copying.ct):  # undefined when no cell holds enough generated samples
                        metrics[names.eval_ct(name)] = copying.ct
                if fid_infinity:
                    inf = fid_infinity_from_features(feats, ref)
                    metrics[names.eval_fid_inf(name)] = inf.fid_inf
                    fid_inf_rows += [(name, size, fid) for size, fid in zip(inf.sizes, inf.fids, strict=True)]
            for extra in extra_extractors:  # a second feature space (e.g. DINOv2): the same metrics on its features
                xnet = build_feature_net(extra, device)
                xref, xradii = reference(fid_reference, xnet), {}
                xparams = {names.P_FID_EXTRACTOR: xnet.name, **provenance_params(xnet, xref, fid_reference)}
                params.update({names.in_feature_space(k, xnet.name): v for k, v in xparams.items()})
                for name, z in latents.items():
                    feats = features_of_latents(model.decode, z[:fid_samples], xnet, device, fid_batch_size)
                    space, _ = _feature_space_metrics(name, feats, xref, xnet, xradii)
                    metrics.update({names.in_feature_space(k, xnet.name): v for k, v in space.items()})
            if fid_inf_rows:
                artifacts[names.ARTIFACT_TABLE_FID_INFINITY] = _csv(
                    pd.DataFrame(fid_inf_rows, columns=["sampler", "subset_size", "fid"])
                )

        if knn:
            tables += _downstream(metrics, artifacts, data, train_z, test_z, knn_repeats)

        if plots:
            _trial_plots(artifacts, model, data, train_z, test_z, latents, device)
            if fid_samples > 0 and latents:
                tables.insert(0, (f"FID and KID ({fid_samples} samples)", _fid_table(metrics, latents, len(ref.mu))))
            images = [(k, v) for k, v in artifacts.items() if k.endswith(".png")]
            html = render_html_report("trial evaluation", tables, images)
            artifacts[names.ARTIFACT_REPORT] = html.encode()
    return metrics, params, artifacts


def stats_digest(stats: FidStats) -> str:
    """sha256 (first 16 hex digits) of reference statistics: mean, covariance and count."""
    h = hashlib.sha256(f"{stats.n}|".encode())
    h.update(np.ascontiguousarray(stats.mu, np.float64).tobytes())
    h.update(np.ascontiguousarray(stats.sigma, np.float64).tobytes())
    return h.hexdigest()[:16]


def provenance_params(net: FeatureNet, ref: FidStats, split: str) -> dict[str, str]:
    """Where every generation metric's numbers come from (clean-fid: a resize or a JPEG round-trip moves FID by
    points): the extractor and its weights, its preprocessing and input range, the reference split, size and stats."""
    return {
        names.P_GEN_EXTRACTOR_WEIGHTS: net.weights_sha256,
        names.P_GEN_PREPROCESSING: net.preprocessing,
        names.P_GEN_INPUT: GENERATED_INPUT,
        names.P_FID_REFERENCE_SPLIT: split,
        names.P_FID_REFERENCE_STATS: stats_digest(ref),
    }


def _feature_space_metrics(
    sampler: str, feats: np.ndarray, ref: FidStats, net: FeatureNet, ref_radii: dict
) -> tuple[dict[str, float], int]:
    """FID, its n, KID and (both sides over k) precision/recall/density/coverage of one sampler's features; the
    reference's k-NN radii are computed into ``ref_radii`` on first use. Returns the metrics and KID's subset size."""
    kid = kid_from_features(feats, ref.features, device=net.device)
    out = {
        names.eval_fid(sampler): fid_from_features_and_stats(feats, ref),
        names.eval_fid_n(sampler): float(len(feats)),
        names.eval_kid(sampler): kid.kid_mean,
        names.eval_kid_std(sampler): kid.kid_std,
    }
    if min(len(feats), ref.n) > max(PRC_NEIGHBORHOOD, DC_NEIGHBORHOOD):
        if not ref_radii:
            reference = torch.from_numpy(ref.features).to(net.device, torch.float64)
            ref_radii.update(knn_radii(reference, (PRC_NEIGHBORHOOD, DC_NEIGHBORHOOD)))
        out.update(_prdc_metrics(sampler, prdc_from_features(feats, ref.features, ref_radii=ref_radii, device=net.device)))
    return out, kid.subset_size


def _prdc_metrics(sampler: str, r) -> dict[str, float]:
    return {
        names.eval_precision(sampler): r.precision,
        names.eval_recall(sampler): r.recall,
        names.eval_f_score(sampler): r.f_score,
        names.eval_density(sampler): r.density,
        names.eval_coverage(sampler): r.coverage,
        names.eval_prdc_n(sampler): float(min(r.n_generated, r.n_reference)),
    }


PRDC_COLUMNS = {
    "precision": names.eval_precision,
    "recall": names.eval_recall,
    "F": names.eval_f_score,
    "density": names.eval_density,
    "coverage": names.eval_coverage,
}


def _fid_table(metrics: dict[str, float], samplers, feature_dim: int) -> pd.DataFrame:
    """One row per sampler; 'small-sample' where n is below the feature dimension (FID's bias is large there) or
    below 500 a side for the k-NN metrics."""
    first = next(iter(samplers))
    columns = {"FID": names.eval_fid, "KID": names.eval_kid, "KID std": names.eval_kid_std}
    if names.eval_fid_inf(first) in metrics:
        columns["FID-inf"] = names.eval_fid_inf
    if names.eval_precision(first) in metrics:
        columns.update(PRDC_COLUMNS)
    rows = []
    for s in samplers:
        n = int(metrics[names.eval_fid_n(s)])
        flags = [f"FID small-sample (n < {feature_dim})"] if is_small_sample(n, feature_dim) else []
        knn_n = metrics.get(names.eval_prdc_n(s))
        if knn_n is not None and is_small_knn_sample(int(knn_n)):
            flags.append(f"k-NN metrics small-sample (n = {int(knn_n)} < {PRDC_MIN_SAMPLES} a side)")
        rows.append((s, n, "; ".join(flags), *(metrics.get(key(s), float("nan")) for key in columns.values())))
    return pd.DataFrame(rows, columns=["sampler", "n", "flag", *columns])


def _downstream(
    metrics, artifacts, data: LabelledImages, train_z, test_z, repeats: int
) -> list[tuple[str, pd.DataFrame]]:
    train_y, test_y = data.train_y[: len(train_z)], data.test_y[: len(test_z)]
    if train_y.ndim == 1:
        rows = knn_vs_subset_size(train_z, train_y, test_z, test_y, repeats=repeats)
        metrics.update(knn_metrics(rows))
        df = pd.DataFrame(
            [(r.size, r.k, r.error_pct, r.std_pct, r.repeats) for r in rows],
            columns=["labelled", "k", "error_pct", "std_pct", "repeats"],
        )
        artifacts[names.ARTIFACT_TABLE_KNN] = _csv(df)
        return [("KNN error vs labelled subset size (Table 2)", df)]
    attr_metrics, per_attr = attribute_errors(train_z, train_y, test_z, test_y)
    metrics.update(attr_metrics)
    labels = data.label_names or tuple(str(a) for a in range(train_y.shape[1]))
    df = pd.DataFrame({"attribute": labels, **{k: v for k, v in per_attr.items()}})
    mean, axes, _ = principal_axes(train_z)
    gains = single_component_gain(
        to_principal(train_z, mean, axes), train_y, to_principal(test_z, mean, axes), test_y, labels
    )
    gdf = pd.DataFrame(
        [(g.attribute, f"p{g.component}", g.baseline_acc_pct, g.stump_acc_pct, g.gain_pct) for g in gains],
        columns=["attribute", "component", "baseline_acc_pct", "stump_acc_pct", "gain_pct"],
    )
    artifacts[names.ARTIFACT_TABLE_ATTRIBUTES] = _csv(df)
    artifacts[names.ARTIFACT_TABLE_COMPONENT_GAIN] = _csv(gdf)
    return [
        ("attribute error % (Table 3)", df),
        ("best single principal component per attribute (Table 4)", gdf),
    ]


def _trial_plots(artifacts, model, data: LabelledImages, train_z, test_z, latents, device) -> None:
    mean, axes, evals = principal_axes(train_z)
    d = axes.shape[1]
    artifacts[names.ARTIFACT_PLOT_SPECTRUM] = plotting.spectrum_plot([("this run", evals)])
    idx = fixed_subset(len(test_z), SCATTER_POINTS)
    test_p = to_principal(test_z[idx], mean, axes)
    labels = data.test_y[idx]
    artifacts[names.ARTIFACT_PLOT_LATENT_2D] = plotting.latent_scatter_plot(
        test_p, labels if labels.ndim == 1 else None
    )
    artifacts[names.ARTIFACT_PLOT_EIGEN_IMAGES] = plotting.eigen_images_plot(
        model.decode, mean, axes, evals, device=device
    )
    comps = list(range(1, min(d, 6) + 1))
    artifacts[names.ARTIFACT_PLOT_COMPONENT_GRID] = plotting.component_grid_plot(
        model.decode, mean, axes, evals, horizontal=comps[0::2], vertical=comps[1::2], device=device
    )
    with torch.no_grad():
        for name, z in latents.items():
            imgs = model.decode(z[:GRID_SAMPLES].to(device)).clamp(0, 1).cpu()
            artifacts[names.artifact_samples(name)] = plotting.image_grid_plot(imgs, title=f"samples: {name}")
        x = data.test_x[fixed_subset(len(data.test_x), RECON_IMAGES)].to(device).float() / 255.0
        artifacts[names.ARTIFACT_PLOT_RECONSTRUCTIONS] = plotting.reconstructions_plot(
            x.cpu(), model.decode(model.encode(x)).clamp(0, 1).cpu()
        )


def evaluate_configuration(
    runs: Sequence[tuple[torch.Tensor, torch.Tensor]], *, plots: bool = True
) -> tuple[dict[str, float], dict[str, bytes]]:
    """Cross-run analysis of one configuration over seeds; each run is (train_z, test_z) of the same images."""
    metrics, pairs = crossrun_metrics(list(runs))
    artifacts: dict[str, bytes] = {}
    if plots:
        first = pairs[0]
        artifacts[names.ARTIFACT_PLOT_XRUN_CORRELATION] = plotting.correlation_heatmaps_plot(
            first.corr_raw, first.corr_aligned
        )
        spectra = [(f"run {i + 1}", principal_axes(tr)[2]) for i, (tr, _) in enumerate(runs)]
        artifacts[names.ARTIFACT_PLOT_SPECTRUM] = plotting.spectrum_plot(
            spectra, title="spectra of independent runs"
        )
    return metrics, artifacts
