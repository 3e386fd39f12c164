"""Downstream classification on the latents (Li & Blair sec. 4.4): KNN vs labelled subset size, attribute classifiers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors
from sklearn.tree import DecisionTreeClassifier

from evaluators import names
from evaluators.metric_eccentricity import principal_axes, to_principal

# Table 2: labelled subset size -> k of the KNN classifier; "all" is the whole training set
TABLE2_SUBSETS: tuple[tuple[int | str, int], ...] = ((10, 1), (100, 1), (1000, 5), (10000, 10), ("all", 15))
TABLE2_REPEATS = 20
ATTR_KNN_K = 20
ATTR_DEEP_TREE_DEPTH = 8


@dataclass(frozen=True)
class KnnRow:
    size: int | str
    k: int
    error_pct: float
    std_pct: float
    repeats: int


def _np(x: torch.Tensor | np.ndarray) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def knn_error_pct(train_z, train_y, test_z, test_y, k: int) -> float:
    clf = KNeighborsClassifier(n_neighbors=min(k, len(train_z))).fit(_np(train_z), _np(train_y))
    return float(100.0 * (clf.predict(_np(test_z)) != _np(test_y)).mean())


def knn_vs_subset_size(
    train_z,
    train_y,
    test_z,
    test_y,
    subsets: tuple[tuple[int | str, int], ...] = TABLE2_SUBSETS,
    repeats: int = TABLE2_REPEATS,
    seed: int = 0,
) -> list[KnnRow]:
    # Table 2: KNN error on `repeats` random labelled subsets of each size; sizes above the training set are skipped
    tz, ty, qz, qy = _np(train_z), _np(train_y), _np(test_z), _np(test_y)
    if ty.ndim != 1:
        raise ValueError(f"KNN vs subset size needs class labels (N,), got {ty.shape}")
    rng = np.random.default_rng(seed)
    rows = []
    for size, k in subsets:
        if size == "all":
            rows.append(KnnRow("all", k, knn_error_pct(tz, ty, qz, qy, k), 0.0, 1))
            continue
        if not isinstance(size, int) or size > len(tz):
            continue
        errors = []
        for _ in range(repeats):
            idx = rng.choice(len(tz), size=size, replace=False)
            errors.append(knn_error_pct(tz[idx], ty[idx], qz, qy, k))
        rows.append(KnnRow(size, k, float(np.mean(errors)), float(np.std(errors)), repeats))
    return rows


def knn_metrics(rows: list[KnnRow]) -> dict[str, float]:
    out = {}
    for r in rows:
        out[names.eval_knn_error(r.size)] = r.error_pct
        out[names.eval_knn_error_std(r.size)] = r.std_pct
    return out


def knn_multilabel_predict(
    train_z: np.ndarray, train_y: np.ndarray, test_z: np.ndarray, k: int
) -> np.ndarray:
    """Per-attribute majority vote of one shared k-neighbour query; ties go to 0, as sklearn's KNN breaks them."""
    nn = NearestNeighbors(n_neighbors=min(k, len(train_z))).fit(train_z)
    idx = nn.kneighbors(test_z, return_distance=False)
    return (train_y[idx].mean(axis=1) > 0.5).astype(train_y.dtype)


def _tree_error_pct(tz, ty, qz, qy, depth: int, seed: int) -> float:
    clf = DecisionTreeClassifier(max_depth=depth, random_state=seed).fit(tz, ty)
    return float(100.0 * (clf.predict(qz) != qy).mean())


def attribute_errors(
    train_z, train_y, test_z, test_y, seed: int = 0
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    # Table 3: stump, depth-8 tree and KNN(20) error per binary attribute, averaged over attributes
    tz, ty, qz, qy = _np(train_z), _np(train_y), _np(test_z), _np(test_y)
    if ty.ndim != 2:
        raise ValueError(f"attribute labels must be (N, A) in {{0, 1}}, got {ty.shape}")
    n_attr = ty.shape[1]
    dt1 = np.array([_tree_error_pct(tz, ty[:, a], qz, qy[:, a], 1, seed) for a in range(n_attr)])
    dt8 = np.array(
        [_tree_error_pct(tz, ty[:, a], qz, qy[:, a], ATTR_DEEP_TREE_DEPTH, seed) for a in range(n_attr)]
    )
    # the same trees on principal-component coordinates of the training latents (sec. 4.1, Table 4's p_k)
    mean, axes, _ = principal_axes(torch.as_tensor(tz))
    tp = to_principal(torch.as_tensor(tz), mean, axes).numpy()
    qp = to_principal(torch.as_tensor(qz), mean, axes).numpy()
    dt1_pc = np.array([_tree_error_pct(tp, ty[:, a], qp, qy[:, a], 1, seed) for a in range(n_attr)])
    dt8_pc = np.array(
        [_tree_error_pct(tp, ty[:, a], qp, qy[:, a], ATTR_DEEP_TREE_DEPTH, seed) for a in range(n_attr)]
    )
    knn = 100.0 * (knn_multilabel_predict(tz, ty, qz, ATTR_KNN_K) != qy).mean(axis=0)
    majority = (ty.mean(axis=0) > 0.5).astype(qy.dtype)
    base = 100.0 * (qy != majority).mean(axis=0)
    per_attr = {"dt1": dt1, "dt8": dt8, "dt1_pc": dt1_pc, "dt8_pc": dt8_pc, "knn20": knn, "majority": base}
    metrics = {
        names.EVAL_ATTR_DT1_ERROR: float(dt1.mean()),
        names.EVAL_ATTR_DT8_ERROR: float(dt8.mean()),
        names.EVAL_ATTR_DT1_PC_ERROR: float(dt1_pc.mean()),
        names.EVAL_ATTR_DT8_PC_ERROR: float(dt8_pc.mean()),
        names.EVAL_ATTR_KNN20_ERROR: float(knn.mean()),
        names.EVAL_ATTR_MAJORITY_ERROR: float(base.mean()),
    }
    return metrics, per_attr


@dataclass(frozen=True)
class ComponentGain:
    attribute: str
    component: int  # 1-based, p_k of sec. 4.1
    baseline_acc_pct: float
    stump_acc_pct: float

    @property
    def gain_pct(self) -> float:
        return self.stump_acc_pct - self.baseline_acc_pct


def single_component_gain(
    train_p, train_y, test_p, test_y, label_names: tuple[str, ...] = ()
) -> list[ComponentGain]:
    # Table 4: for each attribute, the best stump on a single principal component vs the majority-class baseline
    tp, ty, qp, qy = _np(train_p), _np(train_y), _np(test_p), _np(test_y)
    rows = []
    for a in range(ty.shape[1]):
        majority = int(ty[:, a].mean() > 0.5)
        baseline = 100.0 * float((qy[:, a] == majority).mean())
        accs = [
            100.0
            * float(
                (
                    DecisionTreeClassifier(max_depth=1).fit(tp[:, [j]], ty[:, a]).predict(qp[:, [j]])
                    == qy[:, a]
                ).mean()
            )
            for j in range(tp.shape[1])
        ]
        best = int(np.argmax(accs))
        name = label_names[a] if a < len(label_names) else str(a)
        rows.append(ComponentGain(name, best + 1, baseline, accs[best]))
    return rows
