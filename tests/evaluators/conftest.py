"""Shared fixtures for the evaluator tests: the real mnist5k data and a cheap, real feature network."""

import pytest
import torch
import torch.nn.functional as F
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

from evaluators.feature_extractor_inception_fidhelper import FeatureNet

PIXELS_EXTRACTOR = "test-pixels-8x8"


class PixelFeatures(FeatureExtractorBase):
    """Average-pooled 8x8 RGB pixels (192 features): a fast feature network for FID plumbing tests."""

    def __init__(self, name, features_list, **kwargs):
        super().__init__(name, features_list)

    def forward(self, x):
        return (F.adaptive_avg_pool2d(x.float() / 255.0, 8).flatten(1),)

    @staticmethod
    def get_provided_features_list():
        return ("192",)

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return "192"

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 3, 8, 8, dtype=torch.uint8)


if PIXELS_EXTRACTOR not in FEATURE_EXTRACTORS_REGISTRY:
    register_feature_extractor(PIXELS_EXTRACTOR, PixelFeatures)


@pytest.fixture(scope="session")
def mnist5k():
    from trainers import datasets

    return datasets.load("mnist5k")


@pytest.fixture
def pixel_net():
    fe = PixelFeatures(PIXELS_EXTRACTOR, ["192"])
    return FeatureNet(PIXELS_EXTRACTOR, lambda x: fe(x)[0], torch.device("cpu"))


@pytest.fixture
def pixels_extractor() -> str:
    """Name under which torch-fidelity knows the pixel feature network."""
    return PIXELS_EXTRACTOR
