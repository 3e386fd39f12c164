"""A second feature space (evaluation.feature_extractors): the same generation metrics on a further extractor's
features under eval/<extractor>/..., each extractor's files checked before a sweep starts (DINOv2 offline)."""

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

from evaluators import names
from evaluators.feature_extractor_files import missing_files
from evaluators.trial_eval import evaluate_trial

COARSE = "test-pixels-4x4"


class CoarsePixels(FeatureExtractorBase):
    """Average-pooled 4x4 RGB pixels (48 features): a second small feature space, beside conftest's 8x8 one."""

    def __init__(self, name, features_list, **kwargs):
        super().__init__(name, features_list)

    def forward(self, x):
        return (F.adaptive_avg_pool2d(x.float() / 255.0, 4).flatten(1),)

    @staticmethod
    def get_provided_features_list():
        return ("48",)

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return "48"

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 3, 4, 4, dtype=torch.uint8)


if COARSE not in FEATURE_EXTRACTORS_REGISTRY:
    register_feature_extractor(COARSE, CoarsePixels)


def test_a_second_extractor_gives_the_same_metrics_in_its_own_space(tmp_path, mnist5k, pixels_extractor):
    z = torch.randn(300, 4)
    decoder = torch.nn.Sequential(torch.nn.Linear(4, 32 * 32), torch.nn.Sigmoid(), torch.nn.Unflatten(1, (1, 32, 32)))
    model = torch.nn.Module()
    model.decode = decoder
    common = dict(samplers=("standard",), fid_samples=60, fid_reference_size=80, fid_extractor=pixels_extractor,
                  fid_cache_dir=tmp_path, memorisation=False, knn=False, plots=False)  # fmt: skip
    alone, _, _ = evaluate_trial(model, mnist5k, z, z[:10], **common)
    both, params, _ = evaluate_trial(model, mnist5k, z, z[:10], extra_extractors=(COARSE,), **common)
    for key, value in alone.items():  # the first space's metrics are untouched by the second
        if not key.startswith(names.EVAL_SAMPLER_TIME_PREFIX):
            assert both[key] == pytest.approx(value, rel=1e-9), key
    for key in (names.eval_fid, names.eval_kid, names.eval_precision, names.eval_recall, names.eval_density,
                names.eval_coverage, names.eval_fid_n):  # fmt: skip
        coarse = names.in_feature_space(key("standard"), COARSE)
        assert coarse == key("standard").replace("eval/", f"eval/{COARSE}/") and coarse in both
    fid, kid = names.eval_fid("standard"), names.eval_kid("standard")
    assert both[names.in_feature_space(fid, COARSE)] != both[fid] and both[names.in_feature_space(kid, COARSE)] != both[kid]
    assert params[names.in_feature_space(names.P_FID_EXTRACTOR, COARSE)] == COARSE
    assert params[names.in_feature_space(names.P_FID_REFERENCE_SPLIT, COARSE)] == "test"
    assert params[names.in_feature_space(names.P_FID_REFERENCE_STATS, COARSE)] != params[names.P_FID_REFERENCE_STATS]


@pytest.fixture
def hub_dir(tmp_path):
    # torch.hub.set_dir, not TORCH_HOME: an earlier test's set_dir (even restoring the default) outranks the variable
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub"
    torch.hub.set_dir(old)


def test_dinov2_needs_its_hub_files(tmp_path, hub_dir):
    missing = missing_files("dinov2-vit-l-14")
    assert [p.name for p, _ in missing] == ["facebookresearch_dinov2_main", "dinov2_vitl14_pretrain.pth"]
    assert "torch.hub.load('facebookresearch/dinov2', 'dinov2_vitl14')" in missing[0][1]
    (tmp_path / "hub" / "facebookresearch_dinov2_main").mkdir(parents=True)
    (tmp_path / "hub" / "checkpoints").mkdir()
    (tmp_path / "hub" / "checkpoints" / "dinov2_vitl14_pretrain.pth").write_bytes(b"")
    assert missing_files("dinov2-vit-l-14") == []
    assert missing_files(COARSE) == []  # a registered extractor without downloads
    with pytest.raises(ValueError, match="unknown feature extractor 'nope'; valid: .*inception-v3-fidhelper"):
        missing_files("nope")


def test_a_spec_asking_for_dinov2_offline_is_refused_before_ray_starts(tmp_path, hub_dir):
    from sweep.cli import main

    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: fd-dinov2\nmethods: [ae]\nevaluation:\n  feature_extractors: [inception-v3-fidhelper, dinov2-vit-l-14]\n"
    )
    result = CliRunner().invoke(main, ["run", str(spec), "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"])
    assert result.exit_code == 2
    assert "evaluation.feature_extractors: 'dinov2-vit-l-14' needs" in result.output
    assert "dinov2_vitl14_pretrain.pth" in result.output and "torch.hub.load" in result.output
    assert not (tmp_path / "m.db").exists()  # nothing started, nothing written
