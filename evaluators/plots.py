"""Figures of Li & Blair (Fig. 3, 5-10) and generic grids/line plots; each returns PNG bytes and optionally writes it.

Matplotlib's Agg backend through the object API (``Figure``), so no global pyplot state and no display needed.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

Decode = Callable[[torch.Tensor], torch.Tensor]


def _png(fig: Figure, path: str | Path | None) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    data = buf.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data


def _np(x) -> np.ndarray:
    return (
        x.detach().cpu().to(torch.float64).numpy()
        if isinstance(x, torch.Tensor)
        else np.asarray(x, np.float64)
    )


def _hwc(img: np.ndarray) -> np.ndarray:
    """(C, H, W) in [0, 1] or uint8 -> array imshow takes."""
    img = img.astype(np.float64) / 255.0 if img.dtype == np.uint8 else np.clip(img, 0, 1)
    return img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)


def _images(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _tile(images: np.ndarray, nrows: int, ncols: int, pad: int = 2) -> np.ndarray:
    """(N, C, H, W) images -> one (rows*(H+pad)-pad, cols*(W+pad)-pad[, C]) array in [0, 1], white gaps."""
    n, c, h, w = images.shape
    out = np.ones((nrows * (h + pad) - pad, ncols * (w + pad) - pad, c))
    for i in range(min(n, nrows * ncols)):
        r, k = divmod(i, ncols)
        img = _hwc(images[i])
        out[r * (h + pad) : r * (h + pad) + h, k * (w + pad) : k * (w + pad) + w] = img[..., None] if img.ndim == 2 else img
    return out[..., 0] if c == 1 else out


def _image_grid_axes(fig: Figure, images: np.ndarray, nrows: int, ncols: int):
    """The grid as one image in one axes (one imshow, not one axes per image: 250 axes cost seconds); returns the
    axes and the centre of each row in data coordinates, for row labels."""
    gray = images.shape[1] == 1
    ax = fig.add_axes((0.06, 0.02, 0.92, 0.9))
    ax.imshow(_tile(images, nrows, ncols), cmap="gray" if gray else None, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)
    h = images.shape[2] + 2
    return ax, [r * h + (h - 2) / 2 for r in range(nrows)]


def spectrum_plot(spectra: Sequence[tuple[str, Sequence[float]]], title: str = "", path=None) -> bytes:
    # Fig. 5: covariance eigenvalues in decreasing order, several runs superimposed
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    for label, ev in spectra:
        ev = np.sort(_np(ev))[::-1]
        ax.plot(np.arange(1, len(ev) + 1), ev, marker=".", label=label)
    ax.axhline(1.0, color="gray", lw=0.8, ls="--")
    ax.set(xlabel="principal component", ylabel="eigenvalue", title=title or "latent covariance spectrum")
    if spectra:
        ax.legend(fontsize="small")
    return _png(fig, path)


def latent_scatter_plot(p: torch.Tensor | np.ndarray, labels=None, title: str = "", path=None) -> bytes:
    # Fig. 3: test encodings on the first two principal axes, coloured by label
    p = _np(p)
    fig = Figure(figsize=(5, 5))
    ax = fig.add_subplot()
    y = None if labels is None else _np(labels)
    yy = p[:, 1] if p.shape[1] > 1 else np.zeros(len(p))
    if y is None:
        ax.scatter(p[:, 0], yy, s=4, alpha=0.7)
    else:
        sc = ax.scatter(p[:, 0], yy, c=y, cmap="tab10", vmin=-0.5, vmax=9.5, s=4, alpha=0.7)
        fig.colorbar(sc, ax=ax, label="label", ticks=range(10))
    ax.set(xlabel="$p_1$", ylabel="$p_2$", title=title or "latent space (principal axes)")
    ax.set_aspect("equal", adjustable="datalim")
    return _png(fig, path)


def _decode_grid(decode: Decode, z: np.ndarray, device) -> np.ndarray:
    with torch.no_grad():
        return decode(torch.as_tensor(z, dtype=torch.float32, device=device)).clamp(0, 1).cpu().numpy()


def eigen_images_plot(
    decode: Decode,
    mean,
    axes,
    eigenvalues,
    steps: Sequence[float] = (-2.0, -1.0, 0.0, 1.0, 2.0),
    max_components: int = 16,
    device="cpu",
    path=None,
) -> bytes:
    # Fig. 6-7: decode mean + t * sqrt(eigenvalue_k) * v_k for each principal axis k (one row per axis)
    mean, axes, ev = _np(mean), _np(axes), _np(eigenvalues)
    d = min(axes.shape[1], max_components)
    z = np.stack([mean + t * np.sqrt(max(ev[k], 0.0)) * axes[:, k] for k in range(d) for t in steps])
    imgs = _decode_grid(decode, z, device)
    fig = Figure(figsize=(1.2 * len(steps), 1.2 * d))
    ax, centres = _image_grid_axes(fig, imgs, d, len(steps))
    ax.set_yticks(centres, [f"$p_{{{k + 1}}}$" for k in range(d)], fontsize=8)
    ax.tick_params(length=0)
    fig.suptitle("eigen-images: mean + t·sqrt(λ)·v, t = " + ", ".join(f"{t:g}" for t in steps), fontsize=9)
    return _png(fig, path)


def component_grid_plot(
    decode: Decode,
    mean,
    axes,
    eigenvalues,
    horizontal: Sequence[int],
    vertical: Sequence[int],
    scale: float = 2.0,
    device="cpu",
    path=None,
) -> bytes:
    # Fig. 8: selected components (1-based) set to ±scale·sqrt(λ) in all sign combinations, one axis set per direction
    mean, axes, ev = _np(mean), _np(axes), _np(eigenvalues)

    def offsets(components: Sequence[int]) -> list[np.ndarray]:
        out = []
        for signs in itertools.product((1.0, -1.0), repeat=len(components)):
            v = np.zeros_like(mean)
            for s, c in zip(signs, components, strict=True):
                v += s * scale * np.sqrt(max(ev[c - 1], 0.0)) * axes[:, c - 1]
            out.append(v)
        return out

    rows, cols = offsets(vertical), offsets(horizontal)
    z = np.stack([mean + r + c for r in rows for c in cols])
    imgs = _decode_grid(decode, z, device)
    fig = Figure(figsize=(1.0 * len(cols), 1.0 * len(rows)))
    _image_grid_axes(fig, imgs, len(rows), len(cols))
    fig.suptitle(
        f"horizontal: {', '.join(f'p{c}' for c in horizontal)}; vertical: {', '.join(f'p{c}' for c in vertical)}",
        fontsize=9,
    )
    return _png(fig, path)


def image_grid_plot(images, ncols: int = 8, title: str = "", path=None) -> bytes:
    """Images (N, C, H, W), floats in [0, 1] or uint8, in a grid (samples of one sampler, say)."""
    imgs = _images(images)
    nrows = max(1, -(-len(imgs) // ncols))
    fig = Figure(figsize=(1.0 * ncols, 1.0 * nrows + 0.4))
    _image_grid_axes(fig, imgs, nrows, ncols)
    if title:
        fig.suptitle(title, fontsize=10)
    return _png(fig, path)


def reconstructions_plot(originals, reconstructions, ncols: int = 8, path=None) -> bytes:
    """Alternating rows: originals, then their reconstructions."""
    x, xh = _images(originals)[:ncols], _images(reconstructions)[:ncols]
    x = x.astype(np.float64) / 255.0 if x.dtype == np.uint8 else x
    xh = xh.astype(np.float64) / 255.0 if xh.dtype == np.uint8 else xh
    fig = Figure(figsize=(1.0 * len(x), 2.4))
    _image_grid_axes(fig, np.concatenate([x, xh]), 2, len(x))
    fig.suptitle("top: test images; bottom: reconstructions", fontsize=10)
    return _png(fig, path)


def eccentricity_vs_fid_plot(points: Sequence[tuple[str, float, float]], path=None) -> bytes:
    # Fig. 10: one point per configuration (group label, eccentricity, FID), one colour per group
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    groups: dict[str, list[tuple[float, float]]] = {}
    for g, e, f in points:
        groups.setdefault(g, []).append((e, f))
    for g, pts in groups.items():
        e, f = np.array(sorted(pts)).T
        ax.plot(e, f, marker="o", label=g)
    ax.set(xlabel="eccentricity ε", ylabel="FID", title="eccentricity vs FID")
    if groups:
        ax.legend(fontsize="small")
    return _png(fig, path)


def correlation_heatmaps_plot(before, after, path=None) -> bytes:
    # Fig. 9: test-set correlation between two runs' principal components, before and after alignment
    fig = Figure(figsize=(10, 4.6))
    for i, (mat, title) in enumerate(((before, "before alignment"), (after, "after alignment"))):
        ax = fig.add_subplot(1, 2, i + 1)
        im = ax.imshow(_np(mat), cmap="RdBu", vmin=-1, vmax=1)
        ax.set(title=title, xlabel="run 2 component", ylabel="run 1 component")
    fig.colorbar(im, ax=fig.axes, shrink=0.8, label="correlation")
    return _png(fig, path)


def trajectories_plot(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    xlabel: str = "step",
    ylabel: str = "",
    title: str = "",
    target: float | None = None,
    logy: bool = False,
    path=None,
) -> bytes:
    """Metric trajectories, one line per name -> (x, y); ``target`` draws a horizontal line (lambda targeting)."""
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    for label, (x, y) in series.items():
        ax.plot(_np(x), _np(y), marker=".", label=label)
    if target is not None:
        ax.axhline(target, color="gray", ls="--", lw=1, label="target")
    if logy:
        ax.set_yscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if series or target is not None:
        ax.legend(fontsize="small")
    return _png(fig, path)


@dataclass(frozen=True)
class ParetoPoint:
    """A configuration on the trade-off plot: its label (lambda, say), group (method, its colour), mean and 95%
    half-width per metric (NaN: no bar), and whether it is on the front."""

    label: str
    group: str
    values: tuple[float, ...]
    errors: tuple[float, ...]
    front: bool


def _group_colours(groups: Sequence[str]) -> dict[str, tuple]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {g: cmap(i % 10) for i, g in enumerate(dict.fromkeys(groups))}


def _frame(values: Sequence[float], errors: Sequence[float], wide: float = 4.0) -> tuple[float, float]:
    """Axis limits: the error bars' extent, unless it is over ``wide`` times the means' own (two seeds give a
    Student-t interval 12.7 std wide), then the means padded by half their range, the bars running off the frame."""
    v, e = np.asarray(values, dtype=np.float64), np.nan_to_num(np.asarray(errors, dtype=np.float64))
    lo, hi = float(v.min()), float(v.max())
    pad = 0.5 * (hi - lo) or 0.1 * abs(hi) or 1.0
    elo, ehi = float((v - e).min()), float((v + e).max())
    if ehi - elo <= wide * (hi - lo + 2 * pad):
        margin = 0.05 * (ehi - elo) or pad
        return elo - margin, ehi + margin
    return lo - pad, hi + pad


def _staircase(xy: Sequence[tuple[float, float]], modes: tuple[str, str]) -> list[tuple[float, float]]:
    """The points no other beats on both axes by value (``modes``: 'min' or 'max' per axis), in x order."""
    sign = np.array([1.0 if m == "min" else -1.0 for m in modes])
    pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2) * sign
    keep = [i for i, p in enumerate(pts) if not any((q <= p).all() and (q < p).any() for q in pts)]
    return sorted(tuple(pts[i] * sign) for i in keep)


def pareto_plot(
    metrics: Sequence[str], points: Sequence[ParetoPoint], modes: Sequence[str] | None = None, title: str = "",
    path=None,
) -> bytes:
    """One panel per pair of metrics (one for two): each configuration with 95% CI bars on both axes, filled on the
    front and hollow when dominated, colour by group, each point labelled. The front's points that no other front
    point beats on the panel's two means (``modes``: which way is better, default lower) are joined in x order;
    the others are on the front only because no test could tell them apart. Where the bars dwarf the spread of
    the means, the frame is the means' and the bars run off it."""
    modes = list(modes or ["min"] * len(metrics))
    pairs = list(itertools.combinations(range(len(metrics)), 2))
    fig = Figure(figsize=(6.5 * len(pairs), 5))
    colours = _group_colours([p.group for p in points])
    for panel, (a, b) in enumerate(pairs):
        ax = fig.add_subplot(1, len(pairs), panel + 1)
        for p in points:
            c = colours[p.group]
            xerr, yerr = (None if np.isnan(e) else e for e in (p.errors[a], p.errors[b]))
            ax.errorbar(p.values[a], p.values[b], xerr=xerr, yerr=yerr, fmt="o", color=c, ecolor=c, elinewidth=1,
                        capsize=3, markerfacecolor=c if p.front else "white", markersize=7)
            ax.annotate(p.label, (p.values[a], p.values[b]), textcoords="offset points", xytext=(5, 5), fontsize=7)
        front = _staircase([(p.values[a], p.values[b]) for p in points if p.front], (modes[a], modes[b]))
        if len(front) > 1:
            x, y = np.array(front).T
            ax.plot(x, y, color="black", lw=1, ls="--", zorder=0, label="front (its best means joined)")
        for g, c in colours.items():
            ax.plot([], [], "o", color=c, label=g)
        ax.plot([], [], "o", color="gray", markerfacecolor="white", label="dominated")
        ax.set(xlabel=metrics[a], ylabel=metrics[b])
        ax.set_xlim(*_frame([p.values[a] for p in points], [p.errors[a] for p in points]))
        ax.set_ylim(*_frame([p.values[b] for p in points], [p.errors[b] for p in points]))
        ax.legend(fontsize="small")
    fig.suptitle(title or "trade-off: mean ± 95% CI over seeds; filled = on the Pareto front", fontsize=10)
    return _png(fig, path)


def importance_plot(panels: Mapping[str, Sequence[tuple[str, float, float, float]]], title: str = "", path=None) -> bytes:
    """Horizontal bars, one panel per metric: (parameter, importance, low, high) with [low, high] as the error bar."""
    fig = Figure(figsize=(5 * max(1, len(panels)), 0.5 * max((len(v) for v in panels.values()), default=1) + 1.8))
    for i, (metric, rows) in enumerate(panels.items()):
        ax = fig.add_subplot(1, max(1, len(panels)), i + 1)
        rows = list(reversed(rows))  # the most important on top
        y = np.arange(len(rows))
        value = np.array([r[1] for r in rows], dtype=np.float64)
        low = np.array([r[2] for r in rows], dtype=np.float64)
        high = np.array([r[3] for r in rows], dtype=np.float64)
        err = None if np.isnan(low).all() else np.vstack([np.clip(value - low, 0, None), np.clip(high - value, 0, None)])
        ax.barh(y, value, xerr=err, color="tab:blue", ecolor="black", capsize=3)
        ax.set_yticks(y, [r[0] for r in rows])
        ax.set(xlim=(0, 1.05), xlabel="importance (share of explained variance)", title=metric)
    fig.suptitle(title or "fANOVA parameter importance", fontsize=10)
    fig.tight_layout()
    return _png(fig, path)


def parallel_coordinates_plot(
    columns: Sequence[str],
    values: np.ndarray,
    groups: Sequence[str],
    categories: Mapping[str, Sequence[str]] | None = None,
    title: str = "",
    path=None,
) -> bytes:
    """One line per row of ``values`` (rows x columns) across vertical axes, each axis scaled to its own range and
    labelled with its ends; a column in ``categories`` holds codes 0..k-1 of those names. Colour by group; a
    missing value breaks the line."""
    values = np.asarray(values, dtype=np.float64)
    categories = categories or {}
    lo, hi = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    scaled = (values - lo) / span
    fig = Figure(figsize=(max(6.0, 1.6 * len(columns)), 4.5))
    ax = fig.add_subplot()
    colours = _group_colours(groups)
    x = np.arange(len(columns))
    for row, g in zip(scaled, groups, strict=True):
        ax.plot(x, row, color=colours[g], alpha=0.8, lw=1.2, marker=".")
    for i, col in enumerate(columns):
        ax.axvline(i, color="gray", lw=0.8)
        if col in categories:
            for k, name in enumerate(categories[col]):
                ax.annotate(name, (i, (k - lo[i]) / span[i]), fontsize=7, xytext=(3, 0), textcoords="offset points")
        else:
            for end, pos in ((lo[i], 0.0), (hi[i], 1.0)):
                if np.isfinite(end):
                    ax.annotate(f"{end:.3g}", (i, pos), fontsize=7, xytext=(3, 3 if pos else -9), textcoords="offset points")
    for g, c in colours.items():
        ax.plot([], [], color=c, label=g)
    ax.set_xticks(x, columns, rotation=20, fontsize=8)
    ax.set_yticks([])
    ax.set_ylim(-0.08, 1.08)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(title or "configurations: parameters -> metrics (each axis scaled to its range)", fontsize=10)
    return _png(fig, path)


def precision_recall_plot(
    points: Sequence[tuple[str, str, float, float, float, float]],
    title: str = "precision vs recall (Kynkäänniemi et al. 2019), mean ± 95% CI over seeds",
    path: str | Path | None = None,
) -> bytes:
    """One point per (configuration, sampler): (configuration, sampler, precision, its ci95, recall, its ci95);
    one colour per sampler. Fidelity up, diversity right: a blurry-but-diverse model sits low right, a few-mode
    sharp one high left."""
    fig = Figure(figsize=(6.5, 5.5))
    ax = fig.add_subplot()
    samplers = sorted({s for _, s, *_ in points})
    colours = dict(zip(samplers, itertools.cycle(f"C{i}" for i in range(10)), strict=False))
    for sampler in samplers:
        mine = [p for p in points if p[1] == sampler]
        _, _, prec, prec_ci, rec, rec_ci = (np.array(col, dtype=object) for col in zip(*mine, strict=True))
        ax.errorbar(
            rec.astype(float), prec.astype(float),
            xerr=np.nan_to_num(rec_ci.astype(float)), yerr=np.nan_to_num(prec_ci.astype(float)),
            fmt="o", color=colours[sampler], label=sampler, capsize=2, alpha=0.8,
        )  # fmt: skip
        for config, _, p, _, r, _ in mine:
            ax.annotate(config, (r, p), fontsize=6, alpha=0.7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("recall (diversity)")
    ax.set_ylabel("precision (fidelity)")
    ax.set_title(title, fontsize=9)
    ax.legend(title="sampler", fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig, path)
