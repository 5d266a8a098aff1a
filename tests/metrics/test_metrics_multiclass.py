"""K-class and multi-label metrics: parity with scikit-learn for every registered metric."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from cactus_features.errors import DataError
from cactus_features.metrics.multiclass import (
    MULTICLASS_METRICS,
    PER_CLASS_METRICS,
    check_class_scores,
    confusion_matrix,
    multiclass_metrics,
    row_normalised,
    top_k_correct,
    weighted_bincount,
)
from cactus_features.metrics.multilabel import (
    MULTILABEL_METRICS,
    PER_LABEL_METRICS,
    multilabel_metrics,
)


def _multiclass_cases(seed: int, k: int, n: int = 400, absent: tuple[int, ...] = ()):
    rng = np.random.default_rng(seed)
    present = np.setdiff1d(np.arange(k), absent)
    y = rng.choice(present, size=n)
    logit = 1.5 * np.eye(k)[y] + rng.normal(0.0, 1.0, (n, k))
    e = np.exp(logit)
    return y, e / e.sum(axis=1, keepdims=True)


def _sklearn_multiclass(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    k = proba.shape[1]
    pred = proba.argmax(axis=1)
    out = {
        "accuracy": skm.accuracy_score(y, pred),
        "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
        "macro_f1": skm.f1_score(y, pred, average="macro"),
        "weighted_f1": skm.f1_score(y, pred, average="weighted"),
        "macro_roc_auc": skm.roc_auc_score(y, proba, multi_class="ovr", average="macro"),
        "log_loss": skm.log_loss(y, proba, labels=list(range(k))),
    }
    if k > 5:
        out["top5_accuracy"] = skm.top_k_accuracy_score(y, proba, k=5, labels=list(range(k)))
    return out


@pytest.mark.parametrize("k", [3, 5, 6, 10])
@pytest.mark.parametrize("seed", [0, 1])
def test_every_multiclass_metric_matches_sklearn(seed: int, k: int) -> None:
    y, proba = _multiclass_cases(seed, k)
    ours = multiclass_metrics(y, proba)
    expected = _sklearn_multiclass(y, proba)
    applicable = {m.name for m in MULTICLASS_METRICS if m.applies(k)}
    assert set(expected) == applicable  # every registered metric is checked
    for name, value in expected.items():
        assert float(ours[name]) == pytest.approx(value, rel=1e-12, abs=1e-12), name
    assert ("top5_accuracy" in ours) == (k > 5)


@pytest.mark.parametrize("k", [3, 10])
def test_per_class_table_matches_sklearn(k: int) -> None:
    y, proba = _multiclass_cases(7, k)
    pred = proba.argmax(axis=1)
    p, r, f, s = skm.precision_recall_fscore_support(
        y, pred, labels=list(range(k)), zero_division=0
    )
    ours = multiclass_metrics(y, proba)
    np.testing.assert_allclose(ours["class_precision"], p, rtol=1e-12)
    np.testing.assert_allclose(ours["class_recall"], r, rtol=1e-12)
    np.testing.assert_allclose(ours["class_f1"], f, rtol=1e-12)
    np.testing.assert_array_equal(ours["class_support"], s)
    auc = [skm.roc_auc_score(y == c, proba[:, c]) for c in range(k)]
    np.testing.assert_allclose(ours["class_roc_auc"], auc, rtol=1e-12)
    assert {m.name for m in PER_CLASS_METRICS} == {"precision", "recall", "f1", "roc_auc"}


def test_confusion_matrix_counts_and_row_shares_match_sklearn() -> None:
    y, proba = _multiclass_cases(3, 6, absent=(4,))
    pred = proba.argmax(axis=1)
    counts = confusion_matrix(y, proba)
    np.testing.assert_array_equal(counts, skm.confusion_matrix(y, pred, labels=list(range(6))))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shares = skm.confusion_matrix(y, pred, labels=list(range(6)), normalize="true")
    np.testing.assert_allclose(row_normalised(counts), shares, rtol=1e-12)
    assert counts.dtype == np.int64 and (row_normalised(counts)[4] == 0).all()


def test_a_class_absent_from_the_test_set() -> None:
    """sklearn's default label rule for balanced accuracy and macro F1; AUC: present classes."""
    k = 5
    y, proba = _multiclass_cases(11, k, absent=(2,))
    pred = proba.argmax(axis=1)
    assert (pred == 2).any() and not (y == 2).any()  # predicted, never true
    ours = multiclass_metrics(y, proba)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert float(ours["balanced_accuracy"]) == pytest.approx(
            skm.balanced_accuracy_score(y, pred), rel=1e-12
        )
        # class 2 is predicted, so it is in sklearn's labels (F1 0) and in our average
        assert float(ours["macro_f1"]) == pytest.approx(
            skm.f1_score(y, pred, average="macro"), rel=1e-12
        )
        assert float(ours["weighted_f1"]) == pytest.approx(
            skm.f1_score(y, pred, average="weighted"), rel=1e-12
        )
        assert np.isnan(skm.roc_auc_score(y, proba, multi_class="ovr", labels=list(range(k))))
    present = [c for c in range(k) if c != 2]
    expected_auc = np.mean([skm.roc_auc_score(y == c, proba[:, c]) for c in present])
    assert float(ours["macro_roc_auc"]) == pytest.approx(expected_auc, rel=1e-12)
    assert np.isnan(ours["class_recall"][2]) and np.isnan(ours["class_roc_auc"][2])
    assert ours["class_f1"][2] == 0.0 and ours["class_precision"][2] == 0.0


def test_a_class_neither_present_nor_predicted_is_left_out_of_macro_f1() -> None:
    y = np.array([0, 0, 1, 1, 1])
    proba = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.3, 0.6, 0.1]] * 1)
    proba = np.vstack([proba, [[0.1, 0.85, 0.05]]])
    ours = multiclass_metrics(y, proba)
    assert np.isnan(ours["class_f1"][2])
    assert float(ours["macro_f1"]) == pytest.approx(
        skm.f1_score(y, proba.argmax(axis=1), average="macro"), rel=1e-12
    )


def test_top_k_ties_go_to_the_lower_class_index() -> None:
    proba = np.array([[0.25, 0.25, 0.25, 0.25]])
    assert top_k_correct(np.array([1]), proba, 2).tolist() == [True]
    assert top_k_correct(np.array([2]), proba, 2).tolist() == [False]
    # consistent with argmax: top-1 equals accuracy even with ties
    y, proba = _multiclass_cases(5, 8)
    proba = np.round(proba, 1)
    proba /= proba.sum(axis=1, keepdims=True)
    np.testing.assert_array_equal(top_k_correct(y, proba, 1), proba.argmax(axis=1) == y)


def test_weighted_metrics_equal_metrics_of_the_explicit_resample() -> None:
    """Bootstrap multiplicities and repeated cases give the same numbers (every metric)."""
    y, proba = _multiclass_cases(2, 7, n=150)
    rng = np.random.default_rng(0)
    weights = np.stack([np.bincount(rng.integers(0, 150, 150), minlength=150) for _ in range(3)])
    batch = multiclass_metrics(y, proba, weights)
    for b in range(3):
        idx = np.repeat(np.arange(150), weights[b])
        single = multiclass_metrics(y[idx], proba[idx])
        for name, value in single.items():
            np.testing.assert_allclose(batch[name][b], value, rtol=1e-12, err_msg=name)


def test_weighted_bincount_one_pass_equals_numpy() -> None:
    rng = np.random.default_rng(1)
    index = rng.integers(0, 9, 50)
    w = rng.integers(0, 4, (3, 50))
    out = weighted_bincount(index, 12, w)
    for b in range(3):
        np.testing.assert_array_equal(out[b], np.bincount(index, weights=w[b], minlength=12))
    np.testing.assert_array_equal(weighted_bincount(index, 12, None), np.bincount(index, None, 12))


def test_bad_class_scores_are_refused() -> None:
    y, proba = _multiclass_cases(0, 3, n=10)
    with pytest.raises(DataError, match=r"shape \(10, 3\), expected \[N, 4\]"):
        check_class_scores(y, proba, 4, where="run 'a'")
    with pytest.raises(DataError, match="do not sum to 1"):
        check_class_scores(y, proba * 0.9, 3, where="run 'a'")
    with pytest.raises(DataError, match="not probabilities"):
        check_class_scores(y, np.where(proba > 0.5, np.nan, proba), 3, where="run 'a'")
    with pytest.raises(DataError, match=r"class indices in \[0, 3\)"):
        check_class_scores(np.full(10, 3), proba, 3, where="run 'a'")
    with pytest.raises(DataError, match="0/1"):
        check_class_scores(np.full((10, 3), 2), proba, 3, where="run 'a'", multilabel=True)
    check_class_scores(y, proba, 3, where="run 'a'")


def _multilabel_cases(seed: int, n: int = 300, k: int = 6):
    rng = np.random.default_rng(seed)
    targets = (rng.random((n, k)) < np.linspace(0.1, 0.7, k)).astype(np.int64)
    logit = 1.2 * (2 * targets - 1) + rng.normal(0.0, 1.0, (n, k))
    return targets, np.round(1.0 / (1.0 + np.exp(-logit)), 2)  # rounding: ties


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_multilabel_metric_matches_sklearn(seed: int) -> None:
    targets, proba = _multilabel_cases(seed)
    ours = multilabel_metrics(targets, proba)
    expected = {
        "macro_map": skm.average_precision_score(targets, proba, average="macro"),
        "micro_map": skm.average_precision_score(targets, proba, average="micro"),
        "macro_roc_auc": skm.roc_auc_score(targets, proba, average="macro"),
        "exact_match": skm.accuracy_score(targets, (proba >= 0.5).astype(int)),
    }
    assert set(expected) == {m.name for m in MULTILABEL_METRICS}
    for name, value in expected.items():
        assert float(ours[name]) == pytest.approx(value, rel=1e-12), name
    np.testing.assert_allclose(
        ours["class_average_precision"],
        skm.average_precision_score(targets, proba, average=None),
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        ours["class_roc_auc"], skm.roc_auc_score(targets, proba, average=None), rtol=1e-12
    )
    np.testing.assert_array_equal(ours["class_support"], targets.sum(axis=0))
    assert {m.name for m in PER_LABEL_METRICS} == {"average_precision", "roc_auc"}


def test_a_label_without_positives_is_left_out_of_the_macro_map() -> None:
    """sklearn counts it as AP 0; we leave it out (documented difference)."""
    targets, proba = _multilabel_cases(4)
    targets[:, 0] = 0
    ours = multilabel_metrics(targets, proba)
    assert np.isnan(ours["class_average_precision"][0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        per_label = skm.average_precision_score(targets, proba, average=None)
        assert per_label[0] == 0.0
        assert np.isnan(skm.roc_auc_score(targets, proba, average="macro"))
    assert float(ours["macro_map"]) == pytest.approx(per_label[1:].mean(), rel=1e-12)
    expected_auc = np.mean([skm.roc_auc_score(targets[:, c], proba[:, c]) for c in range(1, 6)])
    assert float(ours["macro_roc_auc"]) == pytest.approx(expected_auc, rel=1e-12)


def test_weighted_multilabel_metrics_equal_the_explicit_resample() -> None:
    targets, proba = _multilabel_cases(5, n=120)
    rng = np.random.default_rng(3)
    weights = np.stack([np.bincount(rng.integers(0, 120, 120), minlength=120) for _ in range(2)])
    batch = multilabel_metrics(targets, proba, weights)
    for b in range(2):
        idx = np.repeat(np.arange(120), weights[b])
        for name, value in multilabel_metrics(targets[idx], proba[idx]).items():
            np.testing.assert_allclose(batch[name][b], value, rtol=1e-12, err_msg=name)
