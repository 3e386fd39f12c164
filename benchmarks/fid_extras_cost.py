"""KID, FID-infinity, precision/recall/density/coverage and C_T cost per sampler, from features already extracted
for FID (no network time).

Synthetic Inception-sized features (F = 2048; the cost does not depend on their values) for n generated samples
against 10,000 reference features: FID as evaluate_trial computes it, KID (100 subsets of min(1000, n/2)),
FID-infinity (15 subset FIDs), precision/recall/F/density/coverage (the reference's k-NN radii, once per trial for
every sampler, timed apart) and memorisation (C_T on k-means cells of as many training features, and the copy
fraction). Compare with the Inception pass these numbers ride on: ~92 s per 1,000 images on
this CPU (README, benchmarks.fid_cost). GPU: --device cuda runs KID there.
"""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.common import Timer, base_parser, header
from evaluators.metric_fid import FidStats, fid_from_features_and_stats, stats_from_features
from evaluators.metric_fid_bias import FID_FEATURE_DIM
from evaluators.metric_fid_infinity import fid_infinity_from_features
from evaluators.metric_kid import kid_from_features
from evaluators.metric_memorisation import data_copying
from evaluators.metric_prdc import DC_NEIGHBORHOOD, PRC_NEIGHBORHOOD, knn_radii, prdc_from_features

N_REFERENCE = 10_000


def main(argv: list[str] | None = None) -> list[str]:
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, nargs="+", default=None, help="generated samples (default 100 1000 10000)")
    p.add_argument("--reference", type=int, default=None, help=f"reference features (default {N_REFERENCE}, smoke 1000)")
    args = p.parse_args(argv)
    header("KID and FID-infinity cost per sampler, from FID's features", "benchmarks.fid_extras_cost", argv)
    sizes = args.samples or ([100] if args.smoke else [100, 1000, 10_000])
    n_ref = args.reference or (1000 if args.smoke else N_REFERENCE)
    rng = np.random.default_rng(0)
    ref_features = np.abs(rng.standard_normal((n_ref, FID_FEATURE_DIM))).astype(np.float32)
    s = stats_from_features(ref_features)
    ref = FidStats(s.mu, s.sigma, s.n, ref_features)
    train_features = np.abs(rng.standard_normal((n_ref, FID_FEATURE_DIM))).astype(np.float32)
    with Timer(args.device) as t_radii:
        radii = knn_radii(torch.from_numpy(ref_features).to(args.device, torch.float64), (PRC_NEIGHBORHOOD, DC_NEIGHBORHOOD))
    print(f"reference k-NN radii ({n_ref} features, once per trial for every sampler): {t_radii.s:.2f} s")
    for n in sizes:
        gen = np.abs(rng.standard_normal((n, FID_FEATURE_DIM)))
        with Timer() as t_fid:
            fid_from_features_and_stats(gen, ref)
        with Timer(args.device) as t_kid:
            kid = kid_from_features(gen, ref.features, device=args.device)
        with Timer() as t_inf:
            fid_infinity_from_features(gen, ref)
        with Timer(args.device) as t_prdc:
            prdc_from_features(gen, ref.features, ref_radii=radii, device=args.device)
        with Timer() as t_ct:
            ct = data_copying(gen, train_features, ref.features)
        print(
            f"n={n:>6} vs {n_ref} reference | FID {t_fid.s:.2f} s | KID {t_kid.s:.2f} s ({kid.subsets} subsets of "
            f"{kid.subset_size}, {args.device}) | FID-infinity {t_inf.s:.2f} s (15 subset FIDs) | precision/recall/"
            f"density/coverage {t_prdc.s:.2f} s | C_T + copy fraction {t_ct.s:.2f} s ({ct.cells} cells, "
            f"{n_ref} training features)"
        )
    return []


if __name__ == "__main__":
    main()
