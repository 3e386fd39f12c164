"""`esweep compare A B`: two sweeps' configurations matched by what they trained (method, target, lambda, mu, d,
dataset), and per metric the difference of their means B - A with Welch's t-test from the two configuration runs'
summaries (mean, std, n). Read from MLflow alone, like the leaderboard."""

from __future__ import annotations

import json
import math

import pandas as pd

from evaluators import names
from evaluators.metric_uncertainty import TIE_ALPHA, Summary, bh_adjust, format_summary, welch_difference
from sweep import leaderboard as lb
from sweep.aggregate import GROUP_COLUMNS, PROVENANCE

# a configuration's identity across sweeps: its config key minus anything one sweep gave it (run ids, trial ids)
MATCH_COLUMNS = [*GROUP_COLUMNS, names.P_DATASET, names.P_RECON]
BOTH, ONLY_A, ONLY_B = "both", "only in A", "only in B"
# summaries that say how a number was made rather than how good it is
SKIPPED_PREFIXES = (*lb.HIDDEN_PREFIXES, names.EVAL_FID_N_PREFIX, names.EVAL_PRDC_N_PREFIX, names.EVAL_KID_STD_PREFIX, names.EVAL_KNN_ERROR_STD_PREFIX)
SIDE_STATS = ("mean", "std", "ci95", "n")


class CompareError(ValueError):
    pass


def comparable_metrics(a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    """Every summarised metric of either sweep, in the leaderboard's order, without the bookkeeping ones."""
    found = set(lb.metric_names(a)) | set(lb.metric_names(b))
    return sorted((m for m in found if not m.startswith(SKIPPED_PREFIXES)), key=lb.display_order)


def resolve_metrics(a: pd.DataFrame, b: pd.DataFrame, requested: list[str] | None) -> list[str]:
    """The metrics to compare: ``requested`` (names, or without their 'eval/' prefix), else every comparable one."""
    available = comparable_metrics(a, b)
    if not requested:
        return available
    out = []
    for metric in requested:
        key = next((k for k in (metric, f"eval/{metric}") if k in available), None)
        if key is None:
            raise CompareError(f"--metric: unknown metric {metric!r}; available: {', '.join(available) or 'none'}")
        out.append(key)
    return list(dict.fromkeys(out))


GENERATION_PREFIXES = (
    names.EVAL_FID_PREFIX, names.EVAL_KID_PREFIX, names.EVAL_FID_INF_PREFIX, *names.PRDC_PREFIXES,
    names.EVAL_CT_PREFIX, names.EVAL_COPY_FRACTION_PREFIX,
)  # fmt: skip


def is_generation_metric(metric: str) -> bool:
    """eval/fid/<s>, eval/kid/<s>, ... and the same in a further feature space (eval/<extractor>/fid/<s>, ...)."""
    parts = metric.split("/")
    further = "/".join(["eval", *parts[2:]]) if len(parts) > 3 else metric
    return metric.startswith(GENERATION_PREFIXES) or further.startswith(GENERATION_PREFIXES)


def _provenance(row: pd.Series) -> dict | list | None:
    return lb.provenance_record(row.get(PROVENANCE, ""))


def provenance_differences(a: dict | list | None, b: dict | list | None) -> list[str]:
    """What differs between two provenances, in words ('fid_reference: test in A, train in B'); [] when equal."""
    if a == b:
        return []
    if not isinstance(a, dict) or not isinstance(b, dict):
        def words(p):
            return "not recorded" if p is None else "mixed over seeds" if isinstance(p, list) else "one provenance"
        return [f"provenance: {words(a)} in A, {words(b)} in B"]
    return [f"{k}: {a.get(k)} in A, {b.get(k)} in B" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def check_provenance(a: pd.DataFrame, b: pd.DataFrame, metrics: list[str]) -> None:
    """Refuse to compare generation metrics computed differently (extractor, weights, preprocessing, reference
    split, size or statistics, generated count) in any configuration the two sweeps share: the difference would
    be the pipeline's, not the models'."""
    generation = [m for m in metrics if is_generation_metric(m)]
    if not generation:
        return
    rows_a, rows_b = _by_key(a), _by_key(b)
    for key in (k for k in rows_a if k in rows_b):
        diffs = provenance_differences(_provenance(rows_a[key]), _provenance(rows_b[key]))
        if diffs:
            config = ", ".join(f"{c}={v}" for c, v in zip(MATCH_COLUMNS, key, strict=True))
            raise CompareError(
                f"generation metrics ({', '.join(generation[:3])}{', ...' if len(generation) > 3 else ''}) were "
                f"computed differently in the two sweeps ({config}): {'; '.join(diffs)}. Compare other metrics "
                "with --metric (e.g. --metric recon_mse), or rerun one sweep with the other's evaluation settings"
            )


def _by_key(board: pd.DataFrame) -> dict[tuple, pd.Series]:
    if board.empty:
        return {}
    return {tuple(str(row.get(c, "-")) for c in MATCH_COLUMNS): row for _, row in board.iterrows()}


def _summary(row: pd.Series | None, metric: str) -> Summary:
    if row is None or f"{metric}_mean" not in row:
        return Summary(math.nan, math.nan, math.nan, 0)
    mean, std, ci95, n = (row[f"{metric}_{k}"] for k in SIDE_STATS)
    n = 0 if pd.isna(n) else int(n)
    return Summary(float(mean), float(std), float(ci95), n)


def verdict(metric: str, delta: float, p: float, alpha: float = TIE_ALPHA) -> str:
    """What B - A says: 'B better'/'B worse' for a metric with a direction (else 'B higher'/'B lower') when the
    (adjusted) p < alpha, 'no significant difference' otherwise, 'untested (n<2)' when either side has fewer than 2
    seeds."""
    if math.isnan(p):
        return "untested (n<2)"
    if p >= alpha:
        return "no significant difference"
    mode = lb.metric_mode(metric)
    if mode is None:
        return "B higher" if delta > 0 else "B lower"
    return "B better" if (delta < 0) == (mode == "min") else "B worse"


def compare_boards(
    a: pd.DataFrame, b: pd.DataFrame, metrics: list[str] | None = None, alpha: float = TIE_ALPHA
) -> pd.DataFrame:
    """One row per configuration and metric: the two summaries, B - A with its Welch 95% half-width, p, verdict.
    Generation metrics of different provenance are refused (``check_provenance``).

    A configuration in one sweep only has its rows too, with the other side empty and ``present`` saying which."""
    metrics = resolve_metrics(a, b, metrics)
    check_provenance(a, b, metrics)
    rows_a, rows_b = _by_key(a), _by_key(b)
    keys = list(rows_a) + [k for k in rows_b if k not in rows_a]
    rows = []
    for key in keys:
        ra, rb = rows_a.get(key), rows_b.get(key)
        present = BOTH if ra is not None and rb is not None else ONLY_A if rb is None else ONLY_B
        for metric in metrics:
            sa, sb = _summary(ra, metric), _summary(rb, metric)
            if sa.n == 0 and sb.n == 0:
                continue
            row = dict(zip(MATCH_COLUMNS, key, strict=True))
            row.update(present=present, metric=metric)
            row.update({f"a_{k}": getattr(sa, k) for k in SIDE_STATS})
            row.update({f"b_{k}": getattr(sb, k) for k in SIDE_STATS})
            if present == BOTH:
                diff = welch_difference(sa, sb)
                row.update(delta=diff.delta, delta_ci95=diff.ci95, p=diff.p)
            else:
                row.update(delta=math.nan, delta_ci95=math.nan, p=math.nan, q=math.nan, significant=False,
                           verdict=present)
            row.update(a_run_id=None if ra is None else ra["run_id"], b_run_id=None if rb is None else rb["run_id"])
            rows.append(row)
    _judge([r for r in rows if r["present"] == BOTH], alpha)
    return pd.DataFrame(rows)


def _judge(rows: list[dict], alpha: float) -> None:
    """Verdicts by the Benjamini-Hochberg adjusted p (q) over every compared cell: with dozens of metrics x
    configurations, raw p < alpha would call ~alpha of the unchanged cells different (false discovery rate alpha)."""
    for r, q in zip(rows, bh_adjust([r["p"] for r in rows]), strict=True):
        r.update(q=q, significant=bool(q < alpha), verdict=verdict(r["metric"], r["delta"], q, alpha))


def only_in(comparison: pd.DataFrame, side: str) -> pd.DataFrame:
    """The configurations of one sweep that the other lacks (``side`` is ONLY_A or ONLY_B)."""
    if comparison.empty:
        return comparison
    return comparison.loc[comparison["present"] == side, MATCH_COLUMNS].drop_duplicates().reset_index(drop=True)


def _delta_cell(delta: float, ci95: float) -> str:
    if math.isnan(delta):
        return "-"
    return f"{delta:+.4g}" if math.isnan(ci95) else f"{delta:+.4g} ± {ci95:.2g}"


def display_frame(comparison: pd.DataFrame) -> pd.DataFrame:
    """Human-readable rows of the configurations in both sweeps: 'mean ± ci95 (n=k)' per side, B - A, p, verdict."""
    both = comparison[comparison["present"] == BOTH] if not comparison.empty else comparison
    if both.empty:
        return pd.DataFrame()
    shown = both[MATCH_COLUMNS].copy()
    shown["metric"] = both["metric"].str.removeprefix("eval/")
    for side in ("a", "b"):
        shown[side.upper()] = [
            format_summary(Summary(*(r[f"{side}_{k}"] for k in SIDE_STATS)), show_n=True) for _, r in both.iterrows()
        ]
    shown["B - A"] = [_delta_cell(d, c) for d, c in zip(both["delta"], both["delta_ci95"], strict=True)]
    shown["p"] = [("-" if math.isnan(p) else f"{p:.2g}") for p in both["p"]]
    shown["q"] = [("-" if math.isnan(q) else f"{q:.2g}") for q in both["q"]]
    shown["verdict"] = both["verdict"]
    return shown.reset_index(drop=True)


def _clean(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    return value.item() if hasattr(value, "item") else value


def records(comparison: pd.DataFrame) -> list[dict]:
    return [{k: _clean(v) for k, v in row.items()} for row in comparison.to_dict(orient="records")]


LEGEND = (
    "A, B: mean ± 95% CI half-width over seeds (Student t), n = seeds; B - A: difference of means ± Welch 95% "
    f"half-width; p: Welch's t-test; q: p adjusted by Benjamini-Hochberg over every compared cell; verdict: q < "
    f"{TIE_ALPHA:g} (false discovery rate {TIE_ALPHA:g})."
)


def render(comparison: pd.DataFrame, sweep_a: str, sweep_b: str, fmt: str) -> str:
    if fmt not in lb.FORMATS:
        raise CompareError(f"--format: unknown format {fmt!r}; choose one of {', '.join(lb.FORMATS)}")
    if fmt == "csv":
        return comparison.to_csv(index=False)
    if fmt == "json":
        doc = {
            "a": sweep_a,
            "b": sweep_b,
            "alpha": TIE_ALPHA,
            "correction": "Benjamini-Hochberg over every compared cell: q is the adjusted p, significant means q < alpha",
            "deltas": records(comparison[comparison["present"] == BOTH] if not comparison.empty else comparison),
            "only_in_a": records(only_in(comparison, ONLY_A)),
            "only_in_b": records(only_in(comparison, ONLY_B)),
        }
        return json.dumps(doc, indent=1)
    shown = display_frame(comparison)
    parts = [f"A = {sweep_a}, B = {sweep_b}"]
    if shown.empty:
        parts.append("no configuration is in both sweeps")
    else:
        parts.append(lb.markdown_table(shown) if fmt == "markdown" else shown.to_string(index=False))
    for side, sweep in ((ONLY_A, sweep_a), (ONLY_B, sweep_b)):
        lonely = only_in(comparison, side)
        if len(lonely):
            label = f"{side} ({sweep}), not compared"
            body = lb.markdown_table(lonely) if fmt == "markdown" else lonely.to_string(index=False)
            parts.append(f"{label}:\n{body}")
    if fmt == "table":
        parts.append(LEGEND)
    return "\n\n".join(parts)
