import math

import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

from evaluators import names
from evaluators.metric_downstream import (
    attribute_errors,
    knn_metrics,
    knn_multilabel_predict,
    knn_vs_subset_size,
    single_component_gain,
)


def blobs(n, seed, spread=0.3):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    centres = np.array([[0, 0], [5, 0], [0, 5], [5, 5]], float)
    return centres[y] + spread * rng.standard_normal((n, 2)), y


def test_knn_table2_rows_on_separable_data(test_seed):
    # centres 5 apart, sd 0.3: a point nearer another class's centre is 8 sd out (P ~1e-15)
    tz, ty = blobs(1500, test_seed)
    qz, qy = blobs(300, test_seed + 1)
    rows = knn_vs_subset_size(torch.from_numpy(tz), torch.from_numpy(ty), qz, qy, repeats=5, seed=test_seed)
    # 10000 > 1500 training items is skipped; 'all' is kept
    assert [(r.size, r.k, r.repeats) for r in rows] == [(10, 1, 5), (100, 1, 5), (1000, 5, 5), ("all", 15, 1)]
    by_size = {r.size: r for r in rows}
    assert by_size["all"].error_pct == 0.0 and by_size["all"].std_pct == 0.0
    assert by_size[1000].error_pct == 0.0
    # 100 labelled items miss one of the 4 classes with P ~4 (3/4)^100, so size 100 errs never; 10 items may
    assert by_size[10].error_pct >= by_size[100].error_pct
    m = knn_metrics(rows)
    assert set(m) == {names.eval_knn_error(s) for s in (10, 100, 1000, "all")} | {
        names.eval_knn_error_std(s) for s in (10, 100, 1000, "all")
    }
    assert m["eval/knn_error_pct/all"] == 0.0


def test_knn_random_labels_are_at_chance(test_seed):
    rng = np.random.default_rng(test_seed)
    tz, qz = rng.standard_normal((2000, 3)), rng.standard_normal((500, 3))
    ty, qy = rng.integers(0, 2, 2000), rng.integers(0, 2, 500)
    rows = knn_vs_subset_size(tz, ty, qz, qy, subsets=((100, 1), ("all", 15)), repeats=4, seed=test_seed)
    se = 100 * math.sqrt(0.25 / 500)  # of an error rate at chance, over 500 queries
    assert all(abs(r.error_pct - 50) < 5 * se for r in rows)
    assert rows[0].std_pct > 0  # 4 subsets with equal error counts (sd ~11 each) has P < 1e-4


def test_knn_reproducible_by_seed_and_rejects_attribute_labels(test_seed):
    tz, ty = blobs(500, test_seed, spread=2.0)
    qz, qy = blobs(200, test_seed + 1, spread=2.0)
    a = knn_vs_subset_size(tz, ty, qz, qy, subsets=((10, 1),), repeats=5, seed=3)
    b = knn_vs_subset_size(tz, ty, qz, qy, subsets=((10, 1),), repeats=5, seed=3)
    assert a == b
    with pytest.raises(ValueError, match="class labels"):
        knn_vs_subset_size(tz, np.zeros((500, 3)), qz, qy)


def test_multilabel_knn_matches_sklearn_per_attribute(test_seed):
    rng = np.random.default_rng(test_seed)
    tz, qz = rng.standard_normal((400, 3)), rng.standard_normal((100, 3))
    ty = (rng.random((400, 5)) < 0.5).astype(np.int64)
    pred = knn_multilabel_predict(tz, ty, qz, 20)
    for a in range(5):
        np.testing.assert_array_equal(pred[:, a], KNeighborsClassifier(20).fit(tz, ty[:, a]).predict(qz))


def attribute_data(n, seed):
    # attribute 0 = sign of coordinate 0, attribute 1 = sign of coordinate 2, attribute 2 is noise (30% ones)
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 3)) * np.array([3.0, 2.0, 1.0])
    y = np.stack([z[:, 0] > 0, z[:, 2] > 0, rng.random(n) < 0.3], axis=1).astype(np.int64)
    return z, y


def test_attribute_errors_table3(test_seed):
    tz, ty = attribute_data(2000, test_seed)
    qz, qy = attribute_data(1000, test_seed + 1)
    m, per_attr = attribute_errors(tz, ty, qz, qy)
    assert per_attr["dt1"][0] < 2 and per_attr["dt1"][1] < 2  # separable attributes: a stump suffices
    assert per_attr["majority"][2] == pytest.approx(100 * qy[:, 2].mean())
    # noise attribute: nothing beats the 30% of always guessing 0; an error rate has sd 1.5% over 1000 queries
    assert 20 < per_attr["dt8"][2] and 20 < per_attr["knn20"][2]
    assert m[names.EVAL_ATTR_DT1_ERROR] == pytest.approx(per_attr["dt1"].mean())
    assert m[names.EVAL_ATTR_KNN20_ERROR] < m[names.EVAL_ATTR_MAJORITY_ERROR]
    with pytest.raises(ValueError, match=r"\(N, A\)"):
        attribute_errors(tz, ty[:, 0], qz, qy)


def test_principal_component_trees_undo_an_arbitrary_rotation(test_seed):
    # the eccentric loss is rotation-invariant, so a run may hand back its latents in any rotation: a stump on raw
    # coordinates then loses the attribute that lies along a principal axis, one on principal components does not
    tz, ty = attribute_data(2000, test_seed)
    qz, qy = attribute_data(1000, test_seed + 1)
    rng = np.random.default_rng(test_seed + 2)
    q, _ = np.linalg.qr(np.array([[1.0, 1.0, 0.0], [-1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))  # 45 degrees in (z0, z1)
    rot = q @ np.diag(rng.choice([-1.0, 1.0], 3))
    m, per_attr = attribute_errors(tz @ rot, ty, qz @ rot, qy)
    assert per_attr["dt1_pc"][0] < 2  # sign of the first principal component: one split, as before the rotation
    # raw: coordinate 0 is now (z0 + z1)/sqrt(2) up to sign, whose sign disagrees with z0's on ~ atan(2/3)/pi of
    # the points (~19%); a stump cannot do better than that on any one rotated coordinate
    assert per_attr["dt1"][0] > 10
    assert m[names.EVAL_ATTR_DT1_PC_ERROR] == pytest.approx(per_attr["dt1_pc"].mean())
    assert m[names.EVAL_ATTR_DT8_PC_ERROR] == pytest.approx(per_attr["dt8_pc"].mean())
    # KNN is rotation-invariant: the same neighbours, the same error
    assert m[names.EVAL_ATTR_KNN20_ERROR] == pytest.approx(attribute_errors(tz, ty, qz, qy)[0][names.EVAL_ATTR_KNN20_ERROR])


def test_single_component_gain_table4(test_seed):
    tz, ty = attribute_data(2000, test_seed)
    qz, qy = attribute_data(1000, test_seed + 1)
    gains = single_component_gain(tz, ty, qz, qy, ("first", "third", "noise"))
    assert [g.attribute for g in gains] == ["first", "third", "noise"]
    assert gains[0].component == 1 and gains[1].component == 3  # 1-based p_k
    se = 100 * math.sqrt(0.25 / 1000)  # of the majority baseline's accuracy on a balanced attribute
    assert abs(gains[0].baseline_acc_pct - 50) < 5 * se and gains[0].stump_acc_pct > 98
    assert gains[0].gain_pct > 40  # ~50 - 2 (stump) - 5 se
    assert abs(gains[2].gain_pct) < 3
