"""compare_runs on K-class and multi-label runs, and the run adapter."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from cactus_features.errors import DataError
from cactus_features.metrics import Comparison, RunMismatchError, compare_runs, run_metrics
from cactus_features.metrics.align import run_task, task_and_scores
from cactus_features.metrics.class_results import ClassComparison
from cactus_features.metrics.multiclass import MULTICLASS_METRICS
from cactus_features.metrics.multilabel import MULTILABEL_METRICS
from cactus_features.metrics.stats import bootstrap_p_value, mcnemar_exact
from cactus_features.runfile import Predictions


def test_binary_run_through_the_adapter_is_two_columns(new_run) -> None:
    run = new_run(positive_class=0)
    scores = task_and_scores(run)
    test = run.predictions.select("test")
    assert scores.task == "binary" == run_task(run)
    np.testing.assert_array_equal(scores.proba[:, 1], test.score)
    np.testing.assert_array_equal(scores.proba[:, 0], 1.0 - test.score)
    np.testing.assert_array_equal(scores.y, (test.label == 0).astype(int))
    assert scores.class_names == ["cactus", "no_cactus"]  # [negative, positive]


def test_binary_runs_still_give_a_binary_comparison(make_run) -> None:
    c = compare_runs([make_run("a@224")], n_bootstrap=0)
    assert type(c) is Comparison and c.task == "binary"


def test_multiclass_comparison_matches_sklearn_and_is_complete(new_class_run) -> None:
    runs = [new_class_run("a@224", k=7, noise_seed=1), new_class_run("b@224", k=7, noise_seed=2)]
    c = compare_runs(runs, n_bootstrap=200, seed=3)
    assert isinstance(c, ClassComparison) and c.task == "multiclass"
    assert c.metric_names == [m.name for m in MULTICLASS_METRICS]  # K = 7 > 5: top-5 too
    test = runs[0].predictions.split == 2
    y = runs[0].predictions.label[test]
    assert c.n_test == 300 and (c.test_labels == y).all()
    for run, row in zip(runs, c.metrics, strict=True):
        proba = run.predictions.proba[test]
        assert row.metrics["macro_f1"].value == pytest.approx(
            skm.f1_score(y, proba.argmax(axis=1), average="macro"), rel=1e-12
        )
        assert row.metrics["macro_roc_auc"].value == pytest.approx(
            skm.roc_auc_score(y, proba, multi_class="ovr"), rel=1e-12
        )
        for est in row.metrics.values():
            assert est.low <= est.value <= est.high or not np.isfinite(est.low)
        np.testing.assert_array_equal(
            c.confusion[row.backbone], skm.confusion_matrix(y, proba.argmax(axis=1))
        )
    assert len(c.per_class) == 2 * 7
    a_rows = c.classes_of("a@224")
    assert [r.class_name for r in a_rows] == [f"class_{k}" for k in range(7)]
    assert [r.support for r in a_rows] == np.bincount(y, minlength=7).tolist()
    (pair,) = c.pairwise
    assert pair.differences["accuracy"].value == pytest.approx(
        c.row("a@224").metrics["accuracy"].value - c.row("b@224").metrics["accuracy"].value
    )
    correct = [r.predictions.proba[test].argmax(axis=1) == y for r in runs]
    assert pair.mcnemar == mcnemar_exact(*correct)
    assert 0.0 < pair.p_values["macro_roc_auc"] <= 1.0


def test_ids_are_aligned_whatever_their_order(new_class_run) -> None:
    a = new_class_run("a@224", k=4, noise_seed=1)
    b = new_class_run("b@224", k=4, noise_seed=2)
    perm = np.random.default_rng(0).permutation(len(b.predictions.ids))
    p = b.predictions
    b.predictions = Predictions(
        p.ids[perm], p.split[perm], p.label[perm], p.score[perm], task=p.task
    )
    shuffled = compare_runs([a, b], n_bootstrap=50)
    ordered = compare_runs([a, new_class_run("b@224", k=4, noise_seed=2)], n_bootstrap=50)
    assert shuffled.metrics == ordered.metrics and shuffled.per_class == ordered.per_class


def test_same_run_twice_differs_by_zero_with_p_one(new_class_run) -> None:
    run = new_class_run("a@224", k=5)
    c = compare_runs([run, run], n_bootstrap=100)
    (pair,) = c.pairwise
    assert all(d.value == 0.0 and d.low == 0.0 == d.high for d in pair.differences.values())
    assert set(pair.p_values.values()) == {1.0}
    assert (pair.mcnemar.b, pair.mcnemar.c, pair.mcnemar.p_value) == (0, 0, 1.0)
    assert c.backbones[0].label != c.backbones[1].label


def test_bootstrap_is_reproducible_and_without_it_there_are_no_intervals(new_class_run) -> None:
    runs = [new_class_run("a@224", k=3, noise_seed=1), new_class_run("b@224", k=3, noise_seed=4)]
    one, two = (
        compare_runs(runs, n_bootstrap=80, seed=5),
        compare_runs(runs, n_bootstrap=80, seed=5),
    )
    assert one.metrics == two.metrics and one.pairwise[0].p_values == two.pairwise[0].p_values
    none = compare_runs(runs, n_bootstrap=0)
    est = none.metrics[0].metrics["accuracy"]
    assert np.isnan(est.low) and np.isnan(none.pairwise[0].p_values["macro_roc_auc"])
    assert "top5_accuracy" not in none.metric_names  # K = 3


def test_absent_class_is_noted_and_counted_in_degenerate_resamples(new_class_run) -> None:
    c = compare_runs([new_class_run(k=5, absent=(2,))], n_bootstrap=50)
    assert any("class_2" in n and "absent from the test set" in n for n in c.notes)
    row = c.classes_of(c.backbones[0].label)[2]
    assert row.support == 0 and np.isnan(row.metrics["recall"].value)
    few = compare_runs([new_class_run(k=5, n_test=20, data_seed=4)], n_bootstrap=200)
    assert few.degenerate_resamples > 0  # some resample misses the rarest class


def test_multilabel_comparison(new_class_run) -> None:
    runs = [
        new_class_run("a@224", k=4, task="multilabel", noise_seed=1),
        new_class_run("b@224", k=4, task="multilabel", noise_seed=2, separation=0.5),
    ]
    c = compare_runs(runs, n_bootstrap=100)
    assert c.task == "multilabel" and c.confusion == {}
    assert c.metric_names == [m.name for m in MULTILABEL_METRICS]
    test = runs[0].predictions.split == 2
    targets = runs[0].predictions.label[test]
    proba = runs[0].predictions.proba[test]
    assert c.metrics[0].metrics["macro_map"].value == pytest.approx(
        skm.average_precision_score(targets, proba, average="macro"), rel=1e-12
    )
    assert [r.support for r in c.classes_of("a@224")] == targets.sum(axis=0).tolist()
    (pair,) = c.pairwise
    exact = [np.all((r.predictions.proba[test] >= 0.5) == targets, axis=1) for r in runs]
    assert pair.mcnemar == mcnemar_exact(*exact)
    assert pair.differences["macro_map"].value > 0 and pair.p_values["macro_map"] < 0.05


def test_mismatches_are_refused(new_class_run, new_run) -> None:
    a = new_class_run("a@224", k=4)
    with pytest.raises(RunMismatchError, match="same task"):
        compare_runs([a, new_run("b@224")], n_bootstrap=0)
    with pytest.raises(RunMismatchError, match="different classes"):
        compare_runs([a, new_class_run("b@224", k=5)], n_bootstrap=0)
    with pytest.raises(RunMismatchError, match="different labels"):
        compare_runs([a, new_class_run("b@224", k=4, data_seed=9)], n_bootstrap=0)
    no_proba = new_class_run("c@224", k=4)
    no_proba.predictions.score = no_proba.predictions.score.max(axis=1)  # [N], not [N, K]
    with pytest.raises(DataError, match=r"class probabilities \[N, K\]"):
        compare_runs([no_proba], n_bootstrap=0)
    odd = new_class_run("d@224", k=4)
    odd.predictions.task = "regression"
    with pytest.raises(DataError, match="unknown task 'regression'"):
        compare_runs([odd], n_bootstrap=0)


def test_single_run_metrics_refuse_k_class_runs(new_class_run) -> None:
    with pytest.raises(DataError, match="for this multiclass run use `cactus-features compare"):
        run_metrics(new_class_run())


@pytest.mark.parametrize(
    ("replicates", "expected"),
    [
        (np.zeros(9), 1.0),
        (np.ones(9), 0.2),  # 2 (1 + 0) / 10
        (np.r_[np.ones(8), -1.0, np.nan], 0.4),  # 2 (1 + 1) / 10, NaN ignored
        (np.full(3, np.nan), np.nan),
    ],
)
def test_bootstrap_p_value(replicates: np.ndarray, expected: float) -> None:
    p = bootstrap_p_value(replicates)
    assert (np.isnan(p) and np.isnan(expected)) or p == pytest.approx(expected)
