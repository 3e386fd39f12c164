"""Logged models without Ray: a model trained here, logged to a local MLflow store, loaded back bitwise equal;
image reading checked against the model's input shape."""

import numpy as np
import pytest
import torch
from PIL import Image

from evaluators import names
from evaluators import sampler_latent as samplers
from sweep.models import SAMPLER_STATE_ROWS, ModelError, load_model, log_trial_model, read_images
from sweep.tracking import Store
from trainers.config import TrainConfig
from trainers.loop import train


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """A gmpdm model (a method with its own latent generator) trained for one epoch on 200 images, then logged."""
    root = tmp_path_factory.mktemp("models")
    result = train(TrainConfig(method="gmpdm", dataset="mnist5k", latent_dim=4, seed=3, epochs=1, max_train=200,
                               batch_size=50))
    store = Store(f"sqlite:///{root / 'mlflow.db'}")
    run_id = store.client.create_run(store.experiment_id()).info.run_id
    store.log_params(run_id, {names.P_METHOD: "gmpdm", names.P_LATENT_DIM: "4", names.P_SEED: "3"})
    store.log_metrics(run_id, {names.TRAIN_LOSS: 0.2}, step=1)  # per epoch, as training logs it
    model_id = log_trial_model(store, run_id, result, 1, {names.T_SWEEP_ID: "unit"})
    store.log_metrics(run_id, {names.EVAL_RECON_MSE: 0.05}, step=1, model_id=model_id)  # final, as the trial logs it
    return store, run_id, model_id, result


def test_logged_model_carries_the_runs_params_tags_and_linked_metrics(logged):
    store, run_id, model_id, _ = logged
    model = store.client.get_logged_model(model_id)
    assert model.source_run_id == run_id and model.name == names.MODEL_NAME
    assert model.params == {names.P_METHOD: "gmpdm", names.P_LATENT_DIM: "4", names.P_SEED: "3"}
    assert model.tags[names.T_SWEEP_ID] == "unit"
    assert model.status == "READY" and model.model_type == names.MODEL_TYPE
    assert [(m.key, m.value, m.model_id) for m in model.metrics] == [(names.EVAL_RECON_MSE, 0.05, model_id)]
    run = store.client.get_run(run_id)
    assert run.data.tags[names.T_MODEL_ID] == model_id
    assert [(o.model_id, o.step) for o in run.outputs.model_outputs] == [(model_id, 1)]
    # one row per metric and step: nothing copied by linking
    assert [m.value for m in store.client.get_metric_history(run_id, names.TRAIN_LOSS)] == [0.2]
    assert [m.value for m in store.client.get_metric_history(run_id, names.EVAL_RECON_MSE)] == [0.05]
    # listed in the run's experiment (its Models tab), not in MLflow's default one
    listed = store.client.search_logged_models([store.experiment_id()])
    assert [m.model_id for m in listed] == [model_id]


def test_round_trip_gives_bitwise_equal_encodings_decodings_and_samples(logged):
    store, run_id, model_id, result = logged
    trained = result.model.cpu().eval()
    x = result.data.test_x[:64]
    for ref in (run_id, f"models:/{model_id}"):
        loaded = load_model(ref, store.uri)
        assert loaded.image_shape == tuple(result.data.image_shape) and loaded.latent_dim == 4 and not loaded.training
        with torch.no_grad():
            z = trained.encode(x.float() / 255.0)
            assert torch.equal(loaded.encode(x), z)
            assert torch.equal(loaded.decode(z), trained.decode(z).clamp(0, 1))
    # the fitted samplers' state travels with the model: the same draws as from the trial's own encodings
    assert torch.equal(loaded.train_z, result.train_z[:SAMPLER_STATE_ROWS])
    for name in ("matched", "gmm", "generator"):
        expected = samplers.get(name)(result.train_z, 16, torch.Generator().manual_seed(7), trained)
        assert torch.equal(loaded.sample(16, name, seed=7), expected), name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_a_model_loads_on_the_gpu_with_the_same_encodings(logged):
    store, run_id, _, result = logged
    on_gpu = load_model(run_id, store.uri, "cuda")
    assert on_gpu.device.type == "cuda"
    x = result.data.test_x[:16]
    torch.testing.assert_close(on_gpu.encode(x).cpu(), load_model(run_id, store.uri).encode(x), atol=1e-4, rtol=1e-4)


def test_unknown_references_name_the_field(logged):
    store, run_id, _, _ = logged
    with pytest.raises(ModelError, match="MODEL: no run"):
        load_model("0" * 32, store.uri)
    bare = store.client.create_run(store.experiment_id()).info.run_id
    with pytest.raises(ModelError, match="has no logged model"):
        load_model(bare, store.uri)
    with pytest.raises(ModelError, match="not a run id"):
        load_model("not-a-model", store.uri)
    with pytest.raises(ValueError, match="valid samplers"):
        load_model(run_id, store.uri).sample(4, "no-such-sampler")


def test_read_images_from_npy_and_folders_checked_against_the_shape(tmp_path):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (5, 1, 28, 28), dtype=np.uint8)
    np.save(tmp_path / "a.npy", arr)
    assert torch.equal(read_images(tmp_path / "a.npy", (1, 28, 28)), torch.from_numpy(arr))
    np.save(tmp_path / "hw.npy", arr[:, 0])
    assert read_images(tmp_path / "hw.npy", (1, 28, 28)).shape == (5, 1, 28, 28)
    np.save(tmp_path / "f.npy", arr.astype(np.float32) / 255)
    assert read_images(tmp_path / "f.npy", (1, 28, 28)).dtype == torch.float32
    with pytest.raises(ModelError, match=r"IMAGES: .* has shape \(5, 1, 28, 28\); this model takes images \(N, 3, 64, 64\)"):
        read_images(tmp_path / "a.npy", (3, 64, 64))
    np.save(tmp_path / "big.npy", arr.astype(np.float32))
    with pytest.raises(ModelError, match="floats in \\[0, 1\\]"):
        read_images(tmp_path / "big.npy", (1, 28, 28))
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(arr[i, 0]).save(folder / f"{i}.png")
    assert torch.equal(read_images(folder, (1, 28, 28)), torch.from_numpy(arr[:3]))
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(folder / "wrong.png")
    with pytest.raises(ModelError, match="wrong.png is 32x32 pixels; this model takes 28x28"):
        read_images(folder, (1, 28, 28))
    with pytest.raises(ModelError, match="not a folder of images"):
        read_images(tmp_path / "missing", (1, 28, 28))
