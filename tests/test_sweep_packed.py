"""Packed sweeps (`pack: K`): the same spec packed and unpacked gives the same runs, metrics and leaderboard, through
real Ray Tune and MLflow; a diverging member fails alone; a restarted pack logs no epoch twice."""

import json
import math
from pathlib import Path

import pytest
from ray import tune

from evaluators import names
from sweep import trainable
from sweep.leaderboard import leaderboard
from sweep.orchestrate import pack_trials, run_sweep, trial_param_space
from sweep.spec import expand, parse_spec
from sweep.tracking import Store
from trainers.loop import DivergedError

DIVERGING = ("eae__lam1e+39__mu1__d4__s0", "eae__lam1e+39__mu1__d4__s1")  # lambda * l_mu overflows float32
SPEC = {
    "dataset": "digits",
    "arch": "mlp-small",
    "methods": [{"name": "eae", "lambdas": [1e39, 0.1]}, "ae"],
    "latent_dims": [4],
    "seeds": [0, 1],
    "epochs": 2,
    "batch_size": 50,
    "lr": 1e-3,
    "max_failures": 0,
    "evaluation": {"fid_samples": 0, "plots": False, "knn": False, "crossrun": True},
}


def sweep(root: Path, pack: int):
    spec = parse_spec({"name": f"pack{pack}", **SPEC, "pack": pack})
    uri = f"sqlite:///{root / 'mlflow.db'}"
    outcome = run_sweep(spec, tracking_uri=uri, storage_path=str(root / "results"))
    store = Store(uri)
    return outcome, store, {r.data.tags[names.T_TRIAL_KEY]: r for r in store.trial_runs(outcome.sweep_id)}


@pytest.fixture(scope="module")
def sweeps(local_ray, tmp_path_factory):
    return sweep(tmp_path_factory.mktemp("packed"), 4), sweep(tmp_path_factory.mktemp("unpacked"), 1)


def test_packs_group_lambda_and_seed_variants_and_leave_the_rest_alone():
    methods = [{"name": "eae", "lambdas": [1e39, 0.1, 1.0]}, "ae", "gmpdm"]
    trials = expand(parse_spec({"name": "g", **SPEC, "methods": methods, "pack": 4}))
    units = pack_trials(trials, 4)
    assert [[t.key for t in u] for u in units] == [
        [*DIVERGING, "eae__lam0.1__mu1__d4__s0", "eae__lam0.1__mu1__d4__s1"],
        ["eae__lam1__mu1__d4__s0", "eae__lam1__mu1__d4__s1"],  # what is left of the group: a pack of 2
        ["ae__lam-__mu-__d4__s0", "ae__lam-__mu-__d4__s1"],
        ["gmpdm__lam0.001__mu-__d4__s0"],  # a method with its own step trains alone
        ["gmpdm__lam0.001__mu-__d4__s1"],
    ]
    assert pack_trials(trials, 1) == [[t] for t in trials]
    targeted = expand(parse_spec({"name": "t", **SPEC, "methods": ["eae"], "target": {"eccentricity": [0.3]}, "pack": 4}))
    assert pack_trials(targeted, 4) == [[t] for t in targeted]  # lambda control changes lambda per step
    space = trial_param_space(parse_spec({"name": "g", **SPEC, "pack": 4}), trials[:2], {})
    (entry,) = space["trial"]["grid_search"]
    assert entry["key"] == "pack0__eae__d4__x2" and [m["key"] for m in entry["pack"]] == list(DIVERGING)


def test_packed_and_unpacked_sweeps_give_the_same_runs_metrics_and_statuses(sweeps):
    (packed, _, packed_runs), (solo, _, solo_runs) = sweeps
    assert packed.statuses == solo.statuses and len(packed.statuses) == 6
    assert {k for k, s in packed.statuses.items() if s == "ERROR"} == set(DIVERGING)
    assert all("diverged" in packed.errors[k] for k in DIVERGING)
    assert packed_runs.keys() == solo_runs.keys() and len(packed_runs) == 6
    for key, run in packed_runs.items():
        twin = solo_runs[key]
        assert run.info.status == twin.info.status
        assert run.data.params == twin.data.params
        assert run.data.tags["esweep.config_key"] == twin.data.tags["esweep.config_key"]
        assert names.T_PACK_SIZE not in twin.data.tags
        assert run.data.tags[names.T_PACK_SIZE] == ("2" if key.startswith("ae__") else "4")
        if run.info.status == "FINISHED":
            # mlp-small reproduces unpacked runs to 1e-4 relative (tests/test_packed.py)
            for metric in (names.EVAL_ECCENTRICITY, names.EVAL_RECON_MSE):
                assert run.data.metrics[metric] == pytest.approx(twin.data.metrics[metric], rel=1e-4, abs=1e-6), (key, metric)


def test_the_leaderboard_and_crossrun_analysis_see_no_difference(sweeps):
    (packed, store, _), (solo, solo_store, _) = sweeps
    boards = [leaderboard(s, o.sweep_id)[1] for s, o in ((store, packed), (solo_store, solo))]
    assert len(boards[0]) == len(boards[1]) == 3
    columns = ["config_key", "seeds", "failed"]
    assert boards[0][columns].to_dict("records") == boards[1][columns].to_dict("records")
    xrun = [
        {
            (r.data.tags[names.T_CONFIG_KEY], k): v
            for r in s.config_runs(o.sweep_id)
            for k, v in r.data.metrics.items()
            if k.startswith("xrun/")
        }
        for s, o in ((store, packed), (solo_store, solo))
    ]
    assert xrun[0].keys() == xrun[1].keys() and any(k == names.XRUN_ANGLE_RAW for _, k in xrun[0])
    for k, v in xrun[0].items():
        assert v == pytest.approx(xrun[1][k], rel=1e-3, abs=1e-3), k


def test_a_diverging_member_fails_alone_and_its_pack_mates_finish(sweeps):
    (outcome, store, runs), _ = sweeps
    pack = {k: r for k, r in runs.items() if r.data.tags[names.T_PACK_KEY] == runs[DIVERGING[0]].data.tags[names.T_PACK_KEY]}
    assert len(pack) == 4
    for key, run in pack.items():
        if key in DIVERGING:
            assert run.info.status == "FAILED"
            assert run.data.tags[names.T_STATUS] == trainable.DIVERGED
            assert run.data.tags[names.T_FAILURE].startswith("diverged: loss became")
            assert names.EVAL_ECCENTRICITY not in run.data.metrics
        else:
            assert run.info.status == "FINISHED" and run.data.tags[names.T_STATUS] == trainable.FINISHED
            history = store.client.get_metric_history(run.info.run_id, names.TRAIN_LOSS)
            assert sorted(m.step for m in history) == [1, 2]
            assert 0 <= run.data.metrics[names.EVAL_ECCENTRICITY] < 5 and run.data.metrics[names.EVAL_RECON_MSE] > 0
    assert store.client.get_run(outcome.parent_run_id).info.status == "FINISHED"


class _Crash(RuntimeError):
    pass


class _FakeTune:
    """The parts of ray.tune the trainable uses, in-process: checkpoints kept in a folder, a crash on demand."""

    def __init__(self, root: Path, crash_at_report: int | None):
        self.root, self.crash_at_report, self.reports = root, crash_at_report, []
        self.Checkpoint = tune.Checkpoint

    def get_context(self):
        root = self.root

        class Context:
            def get_trial_id(self):
                return "t0"

            def get_trial_dir(self):
                return str(root)

        return Context()

    def get_checkpoint(self):
        saved = self.root / "ckpt"
        return tune.Checkpoint.from_directory(str(saved)) if saved.exists() else None

    def report(self, metrics, checkpoint=None):
        if len(self.reports) == self.crash_at_report:
            raise _Crash("worker died")
        self.reports.append(metrics)
        if checkpoint is not None:
            with checkpoint.as_directory() as d:
                (self.root / "ckpt").mkdir(exist_ok=True)
                (self.root / "ckpt" / trainable.CHECKPOINT_FILE).write_bytes((Path(d) / trainable.CHECKPOINT_FILE).read_bytes())


def _context(tmp_path: Path, spec, sweep_id: str) -> tuple[Store, dict]:
    store = Store(f"sqlite:///{tmp_path / 'mlflow.db'}")
    parent = store.create_sweep_run(store.experiment_id(), sweep_id, {}, {})
    return store, {"tracking_uri": store.uri, "experiment_id": store.experiment_id(), "sweep_id": sweep_id,
                   "parent_run_id": parent, "evaluation": spec.evaluation.model_dump(mode="json")}


def _one_pack(spec, ctx) -> dict:
    (entry,) = trial_param_space(spec, expand(spec), ctx)["trial"]["grid_search"]
    assert "pack" in entry
    return {"ctx": ctx, "trial": entry}


NO_EVAL = {"fid_samples": 0, "plots": False, "knn": False, "crossrun": False}


def test_a_restarted_pack_resumes_from_its_checkpoint_and_logs_no_epoch_twice(tmp_path, monkeypatch, one_thread):
    spec = parse_spec({"name": "r", **SPEC, "methods": [{"name": "eae", "lambdas": [1e39, 0.1]}], "seeds": [0],
                       "epochs": 3, "pack": 4, "evaluation": NO_EVAL})
    store, ctx = _context(tmp_path, spec, "r-1")
    config = _one_pack(spec, ctx)

    first = _FakeTune(tmp_path, crash_at_report=2)  # dies reporting epoch 3, after logging it to MLflow
    monkeypatch.setattr(trainable, "tune", first)
    with pytest.raises(_Crash):
        trainable.run_trial(config)
    assert [r["epoch"] for r in first.reports] == [1.0, 2.0]

    again = _FakeTune(tmp_path, crash_at_report=None)
    monkeypatch.setattr(trainable, "tune", again)
    trainable.run_trial(config)
    assert [r.get("epoch") for r in again.reports] == [3.0, None] and again.reports[-1][names.PACK_DIVERGED] == 1
    runs = {r.data.tags[names.T_TRIAL_KEY]: r for r in store.trial_runs("r-1")}
    assert len(runs) == 2
    diverged, ok = runs["eae__lam1e+39__mu1__d4__s0"], runs["eae__lam0.1__mu1__d4__s0"]
    assert diverged.info.status == "FAILED" and diverged.data.tags[names.T_FAILURE].startswith("diverged: ")
    assert ok.info.status == "FINISHED"
    steps = [m.step for m in store.client.get_metric_history(ok.info.run_id, names.TRAIN_LOSS)]
    assert sorted(steps) == [1, 2, 3]
    assert math.isfinite(ok.data.metrics[names.EVAL_ECCENTRICITY])
    assert json.loads(Path(store.client.download_artifacts(ok.info.run_id, names.ARTIFACT_SPECTRUM)).read_text())


def test_a_pack_whose_members_all_diverge_fails_and_fails_again_at_once_on_a_retry(tmp_path, monkeypatch, one_thread):
    spec = parse_spec({"name": "d", **SPEC, "methods": [{"name": "eae", "lambdas": [1e39]}], "pack": 4,
                       "evaluation": NO_EVAL})
    store, ctx = _context(tmp_path, spec, "d-1")
    config = _one_pack(spec, ctx)
    for attempt in range(2):
        fake = _FakeTune(tmp_path / str(attempt), crash_at_report=None)
        monkeypatch.setattr(trainable, "tune", fake)
        with pytest.raises(DivergedError):
            trainable.run_trial(config)
        assert fake.reports == []
    runs = store.trial_runs("d-1")
    assert len(runs) == 2 and all(r.info.status == "FAILED" for r in runs)
    assert all(r.data.tags[names.T_FAILURE].startswith("diverged: loss became") for r in runs)
