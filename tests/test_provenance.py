"""Runs record what they ran on: package versions and the device, as ENV_TAGS (the sweep e2e test checks real runs)."""

import platform
from importlib import metadata

import pytest
import torch

from evaluators import names
from sweep.tracking import Store, cpu_model, environment_tags


def test_cpu_run_records_versions_and_the_cpu_model():
    tags = environment_tags("cpu")
    assert set(tags) == set(names.ENV_TAGS)
    assert tags[names.T_ENV_PYTHON] == platform.python_version()
    assert tags[names.T_ENV_TORCH] == metadata.version("torch") and tags[names.T_ENV_TORCH].startswith(
        torch.__version__.split("+")[0]
    )
    assert tags[names.T_ENV_SCIKIT_LEARN] == metadata.version("scikit-learn")
    assert tags[names.T_ENV_TORCH_FIDELITY] == metadata.version("torch-fidelity")
    assert tags[names.T_ENV_DEVICE] == f"cpu: {cpu_model()}" and cpu_model() != "unknown"
    assert tags[names.T_ENV_CUDA] == "none"


def test_provenance_adds_the_code_to_the_environment():
    tags = Store.provenance("cpu")
    assert tags[names.T_GIT_COMMIT] and tags[names.T_VERSION]
    assert {k: tags[k] for k in names.ENV_TAGS} == environment_tags("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_run_records_the_gpu_and_cuda_but_a_cpu_run_on_the_same_machine_says_cpu():
    gpu = environment_tags("cuda")
    assert gpu[names.T_ENV_DEVICE] == f"cuda: {torch.cuda.get_device_name(0)}"
    assert gpu[names.T_ENV_CUDA] == torch.version.cuda
    assert environment_tags("auto") == gpu
    assert environment_tags("cpu")[names.T_ENV_DEVICE].startswith("cpu: ")
