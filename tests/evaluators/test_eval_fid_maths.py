import threading

import numpy as np
import pytest
import scipy.linalg
import torch
from torch_fidelity.metric_fid import fid_statistics_to_metric

from evaluators.feature_extractor_inception_fidhelper import FeatureNet
from evaluators.metric_fid import (
    FidStats,
    batched,
    extract_features,
    fid_from_features,
    fid_from_features_and_stats,
    fid_from_stats,
    fid_of_images,
    reference_key,
    reference_stats,
    stats_from_features,
    to_uint8_rgb,
)


def scipy_fid(f1, f2):
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


@pytest.mark.parametrize("n1,n2,dim", [(400, 300, 32), (30, 50, 64), (12, 400, 40)])
def test_fid_matches_direct_scipy_computation(n1, n2, dim):
    rng = np.random.default_rng(n1)
    f1 = rng.standard_normal((n1, dim))
    f2 = 1.3 * rng.standard_normal((n2, dim)) @ rng.standard_normal((dim, dim)) / np.sqrt(dim) + 0.4
    expected = scipy_fid(f1, f2)
    # sqrtm of a singular product (n < dim) is itself only accurate to ~1e-7 relative
    assert fid_from_features(f1, f2) == pytest.approx(expected, rel=1e-6)
    assert fid_from_features(torch.from_numpy(f2).float(), torch.from_numpy(f1).float()) == pytest.approx(
        expected, rel=1e-4
    )
    a, b = stats_from_features(f1), stats_from_features(f2)
    assert fid_from_stats(a.mu, a.sigma, b.mu, b.sigma) == pytest.approx(expected, rel=1e-6)


def test_fid_from_stats_matches_torch_fidelity_formula():
    rng = np.random.default_rng(1)
    a, b = stats_from_features(rng.standard_normal((500, 16))), stats_from_features(rng.random((500, 16)))
    tf = fid_statistics_to_metric(
        {"mu": a.mu, "sigma": a.sigma}, {"mu": b.mu, "sigma": b.sigma}, verbose=False
    )
    assert fid_from_stats(a.mu, a.sigma, b.mu, b.sigma) == pytest.approx(
        tf["frechet_inception_distance"], rel=1e-9
    )


def test_low_rank_path_equals_full_path():
    rng = np.random.default_rng(2)
    small, ref = rng.standard_normal((20, 64)), stats_from_features(rng.standard_normal((300, 64)) * 2)
    s = stats_from_features(small)
    # the full path takes square roots of ~1e-14 round-off eigenvalues of the singular product; the low-rank one has none
    assert fid_from_features_and_stats(small, ref) == pytest.approx(
        fid_from_stats(s.mu, s.sigma, ref.mu, ref.sigma), rel=1e-7
    )


def test_fid_properties():
    rng = np.random.default_rng(3)
    f = rng.standard_normal((200, 8))
    assert fid_from_features(f, f) == pytest.approx(0.0, abs=1e-9)
    # pure mean shift: FID = ||shift||^2
    assert fid_from_features(f, f + 3.0) == pytest.approx(9.0 * 8, rel=1e-9)
    # identical Gaussians N(0, I) vs N(0, 4I) in closed form: d (1 + 4 - 2 * 2) = d
    s = FidStats(np.zeros(8), np.eye(8), 2)
    assert fid_from_stats(s.mu, s.sigma, np.zeros(8), 4 * np.eye(8)) == pytest.approx(8.0)


def test_fid_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shape mismatch"):
        fid_from_stats(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="n >= 2"):
        stats_from_features(np.zeros((1, 3)))


def test_to_uint8_rgb_scales_and_repeats_grayscale():
    x = torch.tensor([0.0, 0.5, 1.0, 1.5]).view(1, 1, 2, 2)
    out = to_uint8_rgb(x)
    assert out.dtype == torch.uint8 and out.shape == (1, 3, 2, 2)
    assert out[0, :, 0, 1].tolist() == [128, 128, 128] and out[0, 0].flatten().tolist() == [0, 128, 255, 255]
    u = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    assert torch.equal(to_uint8_rgb(u), u)
    with pytest.raises(ValueError):
        to_uint8_rgb(torch.zeros(2, 2, 4, 4))


def test_reference_stats_cached_once_under_content_key(tmp_path, mnist5k, pixel_net):
    calls = []

    def counting(x):
        calls.append(len(x))
        return pixel_net.forward(x)

    net = FeatureNet(pixel_net.name, counting, pixel_net.device)
    images = mnist5k.test_x[:300]
    first = reference_stats(images, net, tmp_path, batch_size=64)
    assert calls == [64, 64, 64, 64, 44]  # batched
    again = reference_stats(images, net, tmp_path, batch_size=64)
    assert len(calls) == 5  # served from the cache
    np.testing.assert_array_equal(first.mu, again.mu)
    np.testing.assert_array_equal(first.sigma, again.sigma)
    assert again.n == 300
    assert first.features.dtype == np.float32 and first.features.shape == (300, 192)  # for KID
    np.testing.assert_array_equal(first.features, again.features)
    assert len(list(tmp_path.glob("*.npz"))) == 1
    # another image set or another extractor name is another key
    assert reference_key(images, "a") != reference_key(images, "b")
    assert reference_key(images, "a") != reference_key(mnist5k.test_x[1:301], "a")


def test_reference_cache_without_features_is_computed_again(tmp_path, mnist5k, pixel_net):
    calls = []

    def counting(x):
        calls.append(len(x))
        return pixel_net.forward(x)

    net = FeatureNet(pixel_net.name, counting, pixel_net.device)
    images = mnist5k.test_x[:100]
    path = tmp_path / f"{reference_key(images, net.name)}.npz"
    np.savez(path, mu=np.zeros(192), sigma=np.eye(192), n=100, extractor=net.name)  # as written before KID
    stats = reference_stats(images, net, tmp_path)
    assert sum(calls) == 100 and stats.features.shape == (100, 192) and stats.mu.any()
    assert reference_stats(images, net, tmp_path).features.shape == (100, 192) and sum(calls) == 100


def test_reference_stats_concurrent_workers_compute_once(tmp_path, mnist5k, pixel_net):
    calls = []

    def counting(x):
        calls.append(len(x))
        return pixel_net.forward(x)

    net = FeatureNet(pixel_net.name, counting, pixel_net.device)
    results = []
    threads = [
        threading.Thread(
            target=lambda: results.append(reference_stats(mnist5k.test_x[:200], net, tmp_path, 200))
        )
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [200]
    assert all(np.array_equal(r.mu, results[0].mu) for r in results)


def test_concurrent_workers_share_the_reference_shards(tmp_path, mnist5k, pixel_net):
    """Workers that arrive together split the extraction: every shard once, by more than one worker."""
    calls = []
    barrier = threading.Barrier(3)
    another_started = threading.Event()

    def slow(x):
        with lock:
            calls.append((threading.get_ident(), len(x)))
            first = len(calls) == 1
        if first:  # hold the first shard until another worker has taken one, on any machine's speed
            another_started.wait(timeout=60)
        else:
            another_started.set()
        return pixel_net.forward(x)

    lock = threading.Lock()

    net = FeatureNet(pixel_net.name, slow, pixel_net.device)
    images = mnist5k.test_x[:200]
    results = []

    def worker():
        barrier.wait()
        results.append(reference_stats(images, net, tmp_path, batch_size=50))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(n for _, n in calls) == [50, 50, 50, 50]  # each shard extracted once
    assert len({ident for ident, _ in calls}) > 1  # and not all by one worker
    alone = reference_stats(images, pixel_net, tmp_path / "alone", batch_size=200)
    for r in results:
        np.testing.assert_allclose(r.mu, alone.mu, rtol=1e-6)
        np.testing.assert_allclose(r.sigma, alone.sigma, rtol=1e-5, atol=1e-8)
        assert r.n == 200
    assert not list(tmp_path.glob("*.shards"))  # shards removed once the reference is written


def test_pixel_fid_orders_real_data_sensibly(mnist5k, pixel_net):
    ref = stats_from_features(extract_features(batched(mnist5k.test_x[:500]), pixel_net))
    train = fid_of_images(mnist5k.train_x[:500], ref, pixel_net)
    noise = fid_of_images(torch.randint(0, 256, (500, 1, 32, 32), dtype=torch.uint8), ref, pixel_net)
    assert train.n_samples == 500 and train.n_reference == 500 and train.extractor == pixel_net.name
    assert 0 < train.fid < noise.fid / 10
