"""FID cost per 1,000 generated samples with cold vs cached reference statistics (the evaluators FID API).

cold  : reference_stats on an empty cache (Inception features of the reference images, statistics, cache write)
        then fid_of_latents on the samples: what the first trial of a sweep pays.
cached: reference_stats from the on-disk cache, then fid_of_latents: what every later trial pays.
The cold/cached ratio is about 1 + n_reference / n_samples, so it is reported for n_reference = n_samples (the
default evaluation, 10,000 vs 10,000: at most 2 by construction, a little less with the fixed costs) and for
n_reference = 5 n_samples (the quickstart's 500 reference images vs 100 samples). Loading the Inception network is
timed apart (once per process).
GPU: --device cuda --batch-size 500 puts features in large GPU batches.
"""

from __future__ import annotations

import tempfile

import torch

from benchmarks.common import Timer, base_parser, header, ratio_line
from evaluators.feature_extractor_inception_fidhelper import build_feature_net
from evaluators.metric_fid import DEFAULT_BATCH_SIZE, fid_of_latents, reference_stats
from trainers.config import TrainConfig
from trainers.loop import build_model

TARGET = 2.0


def main(argv: list[str] | None = None) -> list[str]:
    p = base_parser(__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=None, help="generated samples; reference sets of 1x and 5x that (default 64, smoke 2)")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="images per Inception batch")
    args = p.parse_args(argv)
    header("4. FID cost per 1,000 samples, cold vs cached reference statistics", "benchmarks.fid_cost", argv)
    device = torch.device(args.device)
    n = args.samples or (2 if args.smoke else 64)
    with Timer(device) as t_load:
        net = build_feature_net(device=device)
    torch.manual_seed(0)
    model = build_model(TrainConfig(method="eae", dataset="mnist5k", lam=0.1), (1, 32, 32)).to(device).eval()
    z = torch.randn(n, model.latent_dim)
    print(f"extractor {net.name} on {device}, load {t_load.s:.1f} s (once per process)")
    lines = []
    for ref_factor in (1, 5):
        n_ref = ref_factor * n
        reference = torch.randint(0, 256, (n_ref, 1, 32, 32), dtype=torch.uint8)
        cold, cached, result = _cold_and_cached(net, model, reference, z, device, args.batch_size)
        per_1000 = 1000 / n
        print(
            f"{n} samples, {n_ref} reference images | cold {cold:.1f} s -> {cold * per_1000:.0f} s per 1,000 samples | cached {cached:.1f} s -> "
            f"{cached * per_1000:.0f} s per 1,000 | Inception {(n + n_ref) / cold:.1f} img/s | FID {result.fid:.1f}"
        )
        r = cold / cached
        print(f"expected cold/cached: about {1 + ref_factor} ({n + n_ref} images through Inception vs {n})")
        label = "n_reference = n_samples" if ref_factor == 1 else f"n_reference = {ref_factor} n_samples"
        lines.append(ratio_line(f"FID cold/cached cost, {label}", r, f">= {TARGET}", r >= TARGET))
    return lines


def _cold_and_cached(net, model, reference, z, device, batch_size):
    with tempfile.TemporaryDirectory() as cache:
        with Timer(device) as cold:
            ref = reference_stats(reference, net, cache_dir=cache, batch_size=batch_size)
            fid_of_latents(model.decode, z, ref, net, device, batch_size)
        with Timer(device) as cached:
            ref = reference_stats(reference, net, cache_dir=cache, batch_size=batch_size)
            result = fid_of_latents(model.decode, z, ref, net, device, batch_size)
    return cold.s, cached.s, result


if __name__ == "__main__":
    main()
