"""Metrics from counts: agreement with scikit-learn, confusion-matrix consistency, thresholds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from cactus_features.errors import DataError
from cactus_features.metrics.core import (
    METRIC_NAMES,
    ConfusionMatrix,
    all_metrics,
    choose_threshold,
    class_pair,
    cumulative_counts,
    evaluate,
    rates_from_counts,
)


def _random_predictions(seed: int, n: int = 400, rounding: int | None = 2):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < rng.uniform(0.2, 0.8)
    s = 1.0 / (1.0 + np.exp(-(rng.normal(0, 1.5, n) + 1.2 * (2 * y - 1))))
    if rounding is not None:
        s = np.round(s, rounding)  # many ties
    return y, s


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("threshold", [0.5, 0.3, 0.77])
def test_metrics_match_sklearn(seed: int, threshold: float) -> None:
    y, s = _random_predictions(seed, rounding=None if seed % 2 else 2)
    res = evaluate(y, s, {"t": threshold})["t"]
    pred = s >= threshold
    v = res.values
    assert v["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-12)
    assert v["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred), abs=1e-12)
    assert v["precision"] == pytest.approx(skm.precision_score(y, pred, zero_division=0), abs=1e-12)
    assert v["recall"] == pytest.approx(skm.recall_score(y, pred), abs=1e-12)
    assert v["f1"] == pytest.approx(skm.f1_score(y, pred), abs=1e-12)
    tn, fp, _, _ = skm.confusion_matrix(y, pred, labels=[False, True]).ravel()
    assert v["specificity"] == pytest.approx(tn / (tn + fp), abs=1e-12)
    assert v["roc_auc"] == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    assert v["average_precision"] == pytest.approx(skm.average_precision_score(y, s), abs=1e-12)
    assert v["log_loss"] == pytest.approx(skm.log_loss(y, s), rel=1e-12)
    np.testing.assert_array_equal(
        res.confusion.as_array(), skm.confusion_matrix(y, pred, labels=[False, True])
    )


def test_roc_and_pr_curves_match_sklearn() -> None:
    y, s = _random_predictions(7)
    curve = cumulative_counts(y, s)
    fpr, tpr = curve.roc()
    sk_fpr, sk_tpr, _ = skm.roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr, atol=1e-12)
    np.testing.assert_allclose(tpr, sk_tpr, atol=1e-12)
    recall, precision = curve.precision_recall()
    sk_p, sk_r, _ = skm.precision_recall_curve(y, s, drop_intermediate=False)
    # sklearn lists thresholds ascending and appends (recall 0, precision 1)
    np.testing.assert_allclose(recall, sk_r[:-1][::-1], atol=1e-12)
    np.testing.assert_allclose(precision, sk_p[:-1][::-1], atol=1e-12)


def test_precision_and_recall_come_from_the_printed_matrix() -> None:
    """Guards the precision/recall swap: a case where the two differ."""
    # 5 positives, 5 negatives; at 0.5: tp=2, fn=3, fp=1, tn=4
    y = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0], dtype=bool)
    s = np.array([0.9, 0.8, 0.4, 0.3, 0.2, 0.7, 0.1, 0.1, 0.2, 0.3])
    res = evaluate(y, s, {"0.5": 0.5}, ("no_cactus", "cactus"))["0.5"]
    m = res.confusion.as_array()
    np.testing.assert_array_equal(m, [[4, 1], [3, 2]])  # rows true, cols predicted
    tp = m[1, 1]
    assert res.values["precision"] == pytest.approx(tp / m[:, 1].sum()) == pytest.approx(2 / 3)
    assert res.values["recall"] == pytest.approx(tp / m[1, :].sum()) == pytest.approx(2 / 5)
    assert res.values["specificity"] == pytest.approx(m[0, 0] / m[0, :].sum()) == pytest.approx(0.8)
    assert res.values["precision"] != pytest.approx(res.values["recall"])
    pred = s >= 0.5
    assert res.values["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert res.values["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert res.confusion.rates()["precision"] == res.values["precision"]
    # the printed table puts the counts where the labels say
    text = res.confusion.to_text().splitlines()
    assert "cactus" in text[0]
    assert text[1].split() == ["no_cactus", "4", "1"]
    assert text[2].split() == ["cactus", "3", "2"]


def test_rates_from_counts_conventions() -> None:
    r = rates_from_counts(tp=0, fp=0, tn=5, fn=3)
    assert r["precision"] == 0.0  # nothing predicted positive: 0, as sklearn zero_division=0
    assert r["f1"] == 0.0
    assert r["recall"] == 0.0
    r = rates_from_counts(tp=0, fp=2, tn=5, fn=0)  # no positives: recall undefined
    assert np.isnan(r["recall"]) and np.isnan(r["balanced_accuracy"])
    # vectorised over replicates
    r = rates_from_counts(np.array([1, 2]), np.array([1, 0]), np.array([3, 3]), np.array([1, 1]))
    np.testing.assert_allclose(r["precision"], [0.5, 1.0])


def test_weighted_metrics_equal_metrics_of_explicit_resample() -> None:
    """Multiplicity weights (used by the bootstrap) give the same numbers as resampled data."""
    y, s = _random_predictions(3, n=120)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(y), size=(3, len(y)))
    weights = np.stack([np.bincount(i, minlength=len(y)) for i in idx])
    thresholds = {"a": 0.5, "b": 0.31}
    weighted = all_metrics(y, s, thresholds, weights)
    for b in range(3):
        explicit = all_metrics(y[idx[b]], s[idx[b]], thresholds)
        for rule in thresholds:
            for m in (*METRIC_NAMES, "tp", "fp", "tn", "fn"):
                assert weighted[rule][m][b] == pytest.approx(float(explicit[rule][m]), abs=1e-12), m


def test_choose_threshold_youden_and_f1() -> None:
    # scores descending: 0.9 P, 0.8 P, 0.7 N, 0.6 P, 0.4 N, 0.2 N
    y = np.array([1, 1, 0, 1, 0, 0], dtype=bool)
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.4, 0.2])
    # cut below 0.8: J = 2/3 - 0 = 0.667; below 0.6: J = 1 - 1/3 = 0.667 (tie)
    # tie broken towards 0.5: midpoints 0.75 and 0.5 -> 0.5
    assert choose_threshold(y, s, "youden") == pytest.approx(0.5)
    # F1 below 0.6: 2*3/(6+1) = 0.857 beats below 0.8: 4/5 = 0.8
    assert choose_threshold(y, s, "f1") == pytest.approx(0.5)
    y2 = np.array([1, 1, 0, 0, 1, 0], dtype=bool)
    # below 0.8: J = 2/3; below 0.4: J = 1 - 2/3 = 1/3 -> 0.75
    assert choose_threshold(y2, s, "youden") == pytest.approx(0.75)
    # F1: below 0.8 -> 0.8; below 0.4 -> 6/8 = 0.75; below 0.2 (all) -> 6/9 -> 0.75
    assert choose_threshold(y2, s, "f1") == pytest.approx(0.75)
    # the chosen threshold reproduces the chosen cut on the same data
    t = choose_threshold(y2, s, "youden")
    assert evaluate(y2, s, {"v": t})["v"].confusion.as_array().tolist() == [[3, 0], [1, 2]]


def test_choose_threshold_refuses_one_class() -> None:
    with pytest.raises(DataError, match="only one class"):
        choose_threshold(np.ones(4, dtype=bool), np.array([0.1, 0.2, 0.3, 0.4]))


def test_scores_outside_unit_interval_are_refused() -> None:
    with pytest.raises(DataError, match="not probabilities"):
        evaluate(np.array([True, False]), np.array([0.5, np.nan]), {"0.5": 0.5})


def test_threshold_boundary_is_inclusive() -> None:
    y = np.array([True, False, True])
    s = np.array([0.5, 0.5, 0.2])
    cm = evaluate(y, s, {"0.5": 0.5})["0.5"].confusion
    assert (cm.tp, cm.fp, cm.fn, cm.tn) == (1, 1, 1, 0)


def test_class_pair_names() -> None:
    assert class_pair(["no_cactus", "cactus"], 1) == ("no_cactus", "cactus")
    assert class_pair(["cactus", "no_cactus"], 0) == ("no_cactus", "cactus")
    assert class_pair(["a", "b", "c"], 2) == ("not c", "c")


def test_confusion_matrix_array_layout() -> None:
    cm = ConfusionMatrix(
        tp=7, fp=2, tn=9, fn=1, negative_name="n", positive_name="p", threshold=0.5
    )
    assert cm.as_array().tolist() == [[9, 2], [1, 7]]
    assert cm.n == 19


scored = st.lists(
    st.tuples(st.booleans(), st.floats(0.0, 1.0, allow_nan=False), st.integers(0, 4)),
    min_size=2,
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(scored)
def test_auc_and_ap_stay_in_unit_interval(cases: list[tuple[bool, float, int]]) -> None:
    y = np.array([c[0] for c in cases])
    s = np.array([c[1] for c in cases])
    w = np.array([c[2] for c in cases])
    for weights in (None, w, np.stack([w, np.ones_like(w)])):
        curve = cumulative_counts(y, s, weights)
        auc = np.atleast_1d(curve.roc_auc())
        ap = np.atleast_1d(curve.average_precision())
        defined = np.isfinite(auc)
        assert np.all((auc[defined] >= 0.0) & (auc[defined] <= 1.0))
        assert np.all((ap[np.isfinite(ap)] >= 0.0) & (ap[np.isfinite(ap)] <= 1.0))
    if y.all() or not y.any():
        assert np.isnan(cumulative_counts(y, s).roc_auc())
    else:
        assert float(cumulative_counts(y, s).roc_auc()) == pytest.approx(
            skm.roc_auc_score(y, s), abs=1e-12
        )
