import numpy as np
import pytest
import torch
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from evaluators.feature_extractor_inception_fidhelper import (
    COMPAT_WEIGHTS_FILE,
    NAME_COMPAT,
    NAME_FIDHELPER,
    FeatureExtractorInceptionFidHelper,
    build_feature_net,
    default_extractor_name,
    fidhelper_weights_path,
)
from evaluators.metric_fid import fid_from_features, fid_of_images, reference_stats, to_uint8_rgb
from evaluators.trial_eval import fixed_subset


@pytest.fixture(scope="module")
def inception():
    return build_feature_net(NAME_FIDHELPER, "cpu")


def test_torchscript_file_signature():
    net = torch.jit.load(str(fidhelper_weights_path()), map_location="cpu")
    args = [a.name for a in net.forward.schema.arguments]
    assert args == ["self", "x"]
    assert FEATURE_EXTRACTORS_REGISTRY[NAME_FIDHELPER] is FeatureExtractorInceptionFidHelper


def test_default_extractor_prefers_local_torch_fidelity_weights(tmp_path):
    old = torch.hub.get_dir()
    try:
        torch.hub.set_dir(str(tmp_path))
        assert default_extractor_name() == NAME_FIDHELPER
        (tmp_path / "checkpoints").mkdir()
        (tmp_path / "checkpoints" / COMPAT_WEIGHTS_FILE).write_bytes(b"")
        assert default_extractor_name() == NAME_COMPAT
    finally:
        torch.hub.set_dir(old)


def test_unknown_extractor_lists_valid_ones():
    with pytest.raises(ValueError, match=f"valid: .*{NAME_FIDHELPER}"):
        build_feature_net("inception-v4")


def test_extractor_rejects_float_input():
    fe = FeatureExtractorInceptionFidHelper(NAME_FIDHELPER, ["2048"])
    with pytest.raises(ValueError, match="uint8"):
        fe(torch.rand(1, 3, 32, 32))


def test_inception_features_batch_invariant_and_self_fid_zero(tmp_path, mnist5k, inception):
    # the cheap real-network FID test: 4 MNIST test images against their own cached statistics
    images = mnist5k.test_x[fixed_subset(len(mnist5k.test_x), 4)]
    ref = reference_stats(images, inception, tmp_path, batch_size=3)
    res = fid_of_images(images, ref, inception, batch_size=4)
    assert res.extractor == NAME_FIDHELPER and res.n_samples == 4 and res.n_reference == 4
    assert abs(res.fid) < 1e-2
    assert ref.mu.shape == (2048,) and (ref.mu >= 0).all() and ref.mu.max() > 0.1  # post-ReLU pool features


@pytest.mark.slow
def test_inception_fid_train_far_below_noise(mnist5k, inception, test_seed):
    n = 64
    test = mnist5k.test_x[fixed_subset(len(mnist5k.test_x), n)]
    train = mnist5k.train_x[fixed_subset(len(mnist5k.train_x), n, seed=1)]
    noise = torch.randint(
        0, 256, (n, 1, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(test_seed)
    )
    ft, fr, fn = (inception.forward(to_uint8_rgb(x)).double().numpy() for x in (test, train, noise))
    fid_train, fid_noise = fid_from_features(ft, fr), fid_from_features(ft, fn)
    assert 0 < fid_train < fid_noise / 3, (fid_train, fid_noise)


@pytest.mark.slow
def test_matches_torch_fidelity_calculate_metrics(mnist5k, inception):
    from torch.utils.data import Dataset
    from torch_fidelity import calculate_metrics

    class Images(Dataset):
        def __init__(self, x):
            self.x = to_uint8_rgb(x)

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return self.x[i]

    a, b = mnist5k.test_x[fixed_subset(1000, 16)], mnist5k.train_x[:16]
    tf = calculate_metrics(
        input1=Images(a),
        input2=Images(b),
        fid=True,
        feature_extractor=NAME_FIDHELPER,
        cuda=False,
        cache=False,
        verbose=False,
        save_cpu_ram=True,
        batch_size=16,
    )["frechet_inception_distance"]
    ours = fid_from_features(*(inception.forward(to_uint8_rgb(x)).double().numpy() for x in (a, b)))
    assert ours == pytest.approx(tf, rel=1e-3)
    assert np.isfinite(ours)
