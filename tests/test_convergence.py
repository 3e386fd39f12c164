"""Convergence per trial: the loop records each epoch's loss, carries it through resume, judges the last fifth, and
the trainable logs the judgement once on the trial's run."""

import copy
import math

import pytest
import torch

from evaluators import names
from evaluators.metric_convergence import convergence_metrics
from trainers.config import TrainConfig
from trainers.loop import TrainResult, train

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def tiny_cfg(epochs: int) -> TrainConfig:
    return TrainConfig(
        method="eae", dataset="digits", arch="mlp-small", lam=0.1, epochs=epochs, batch_size=50, max_train=200,
        eval_probe=100, lr=1e-3, device="cpu",
    )  # fmt: skip


def test_history_survives_resume_and_old_checkpoints_are_judged_only_where_known():
    states = []
    whole = train(tiny_cfg(5), report=lambda m, s: states.append(copy.deepcopy(s)))  # the loop hands live tensors
    assert len(whole.loss_history) == 5 and whole.loss_history == [s["loss_history"] for s in states][-1]
    assert states[1]["loss_history"] == whole.loss_history[:2]  # each checkpoint holds the epochs so far
    assert whole.metrics == whole.metrics | convergence_metrics(whole.loss_history)
    assert names.TRAIN_CONVERGED in whole.metrics

    resumed = train(tiny_cfg(5), resume_state=states[1])
    assert resumed.loss_history == whole.loss_history
    for key in (names.TRAIN_REL_IMPROVEMENT_TAIL, names.TRAIN_CONVERGED):
        assert resumed.metrics[key] == whole.metrics[key]

    # a checkpoint written before the history: its epochs are unknown, not dropped
    old = {k: v for k, v in states[2].items() if k != "loss_history"}
    partial = train(tiny_cfg(5), resume_state=old)
    assert all(math.isnan(v) for v in partial.loss_history[:3]) and partial.loss_history[3:] == whole.loss_history[3:]
    assert partial.metrics[names.TRAIN_CONVERGED] == whole.metrics[names.TRAIN_CONVERGED]  # tail: epochs 4-5
    old = {k: v for k, v in states[3].items() if k != "loss_history"}
    assert names.TRAIN_CONVERGED not in train(tiny_cfg(5), resume_state=old).metrics  # epoch 4 unknown


def test_one_epoch_is_not_judged():
    result = train(tiny_cfg(1))
    assert len(result.loss_history) == 1
    assert names.TRAIN_CONVERGED not in result.metrics and names.TRAIN_REL_IMPROVEMENT_TAIL not in result.metrics


def test_log_final_logs_the_convergence_metrics_once_at_the_last_epoch():
    from sweep.trainable import log_final

    class RecordingStore:
        def __init__(self):
            self.metrics, self.artifacts = [], []

        def log_metrics(self, run_id, metrics, step=0, model_id=None):
            self.metrics.append((step, dict(metrics)))

        def log_artifact_bytes(self, run_id, name, data):
            self.artifacts.append(name)

    metrics = {
        names.TRAIN_LOSS: 0.5,
        names.EVAL_RECON_MSE: 0.1,
        names.TRAIN_REL_IMPROVEMENT_TAIL: 0.2,
        names.TRAIN_CONVERGED: 0.0,
    }
    result = TrainResult(None, None, metrics, [1.0], torch.zeros(1, 1), 7)
    store = RecordingStore()
    final = log_final(store, "run", result, 3.0)
    ((step, logged),) = store.metrics
    assert step == 7 and logged == final
    assert logged[names.TRAIN_CONVERGED] == 0.0 and logged[names.TRAIN_REL_IMPROVEMENT_TAIL] == 0.2
    assert names.TRAIN_LOSS not in logged  # per-epoch metrics were logged per epoch
