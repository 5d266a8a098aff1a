"""Comparing runs: alignment by id, refusals, paired intervals, labels, efficiency."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from cactus_features.errors import ConfigError, DataError, UserError
from cactus_features.metrics.compare import RunMismatchError
from cactus_features.metrics.core import METRIC_NAMES, choose_threshold
from cactus_features.report import compare, evaluate_run
from cactus_features.runfile import load_run


def test_compare_point_estimates_match_sklearn(make_run) -> None:
    paths = [make_run("a@224", noise_seed=1), make_run("b@224", noise_seed=2, separation=0.7)]
    c = compare(paths, n_bootstrap=0)
    assert c.rules == ["val", "0.5"]
    assert c.primary_rule == "val"
    for path, b in zip(paths, c.backbones, strict=True):
        test = load_run(path).predictions.select("test")
        y = test.label == 1
        for rule in c.rules:
            row = c.row(b.label, rule)
            pred = test.score >= row.threshold
            assert row.metrics["accuracy"].value == pytest.approx(skm.accuracy_score(y, pred))
            assert row.metrics["precision"].value == pytest.approx(skm.precision_score(y, pred))
            assert row.metrics["recall"].value == pytest.approx(skm.recall_score(y, pred))
            assert row.metrics["roc_auc"].value == pytest.approx(skm.roc_auc_score(y, test.score))
            assert math.isnan(row.metrics["roc_auc"].low)  # no bootstrap, no interval
        val = load_run(path).predictions.select("val")
        assert b.thresholds["val"] == choose_threshold(val.label == 1, val.score, "youden")
        assert b.thresholds["0.5"] == 0.5


def test_positive_class_zero_is_respected(make_run) -> None:
    names = ["cactus", "no_cactus"]
    path = make_run(positive_class=0, class_names=names)
    c = compare([path], n_bootstrap=0, threshold=0.5)
    test = load_run(path).predictions.select("test")
    y = test.label == 0
    row = c.row(c.backbones[0].label)
    assert c.positive_name == "cactus" and c.negative_name == "no_cactus"
    assert row.confusion.tp == int(np.sum(y & (test.score >= 0.5)))
    assert row.metrics["recall"].value == pytest.approx(skm.recall_score(y, test.score >= 0.5))
    assert row.metrics["roc_auc"].value == pytest.approx(skm.roc_auc_score(y, test.score))


def test_order_of_ids_does_not_matter(make_run) -> None:
    a = make_run("a@224", noise_seed=1)
    b = make_run("b@224", noise_seed=2)
    b_shuffled = make_run("b@224", noise_seed=2, shuffle_seed=9)
    plain = compare([a, b], n_bootstrap=200, seed=1)
    shuffled = compare([a, b_shuffled], n_bootstrap=200, seed=1)
    for r1, r2 in zip(plain.metrics, shuffled.metrics, strict=True):
        assert r1.confusion == r2.confusion
        assert r1.metrics == r2.metrics
    assert plain.pairwise[0].differences == shuffled.pairwise[0].differences
    assert plain.pairwise[0].delong == shuffled.pairwise[0].delong


def test_mismatched_test_ids_are_refused(make_run) -> None:
    a = make_run("a@224")
    b = make_run("b@224", n_test=197, n_train=63)  # 3 test images moved to train
    with pytest.raises(RunMismatchError) as exc:
        compare([a, b], n_bootstrap=0)
    msg = str(exc.value)
    assert "'a@224'" in msg and "'b@224'" in msg
    assert "3 test ids only in the first, 0 only in the second" in msg
    assert isinstance(exc.value, UserError)


def test_different_datasets_are_refused(make_run, new_run) -> None:
    a = make_run("a@224")
    run = new_run("b@224")
    run.predictions.ids = np.array([f"x{i}" for i in range(len(run.predictions.ids))], dtype=object)
    with pytest.raises(RunMismatchError, match="200 test ids only in the first, 200 only in"):
        compare([a, run], n_bootstrap=0)


def test_disagreeing_labels_are_refused(make_run, new_run) -> None:
    a = make_run("a@224")
    run = new_run("b@224")
    test = np.flatnonzero(run.predictions.split == 2)
    run.predictions.label[test[:4]] = 1 - run.predictions.label[test[:4]]
    with pytest.raises(RunMismatchError, match="4 test images have different labels"):
        compare([a, run], n_bootstrap=0)


def test_different_positive_class_is_refused(make_run) -> None:
    a = make_run("a@224")
    b = make_run("b@224", positive_class=0)
    with pytest.raises(RunMismatchError, match="different classes"):
        compare([a, b], n_bootstrap=0)


def test_bad_options_are_refused(make_run) -> None:
    a = make_run()
    with pytest.raises(ConfigError):
        compare([a], threshold="best")
    with pytest.raises(ConfigError):
        compare([a], threshold=1.5)
    with pytest.raises(ConfigError):
        compare([], n_bootstrap=0)


def test_missing_val_split(make_run) -> None:
    a = make_run(n_val=0)
    with pytest.raises(DataError, match="no validation predictions"):
        compare([a], n_bootstrap=0, threshold="val")
    c = compare([a], n_bootstrap=0, threshold=0.5)
    assert c.rules == ["0.5"]
    assert c.notes and "validation" in c.notes[0]


def test_paired_bootstrap_reproducible_and_paired(make_run) -> None:
    a = make_run("a@224", noise_seed=1)
    b = make_run("b@224", noise_seed=2, separation=0.8)
    c1 = compare([a, b], n_bootstrap=300, seed=5)
    c2 = compare([a, b], n_bootstrap=300, seed=5)
    c3 = compare([a, b], n_bootstrap=300, seed=6)
    assert c1.metrics == c2.metrics and c1.pairwise == c2.pairwise
    assert c1.metrics[0].metrics["roc_auc"] != c3.metrics[0].metrics["roc_auc"]
    for row in c1.metrics:
        for m in METRIC_NAMES:
            e = row.metrics[m]
            assert e.low <= e.high
    d = c1.pairs("0.5")[0].differences["roc_auc"]
    assert d.low < d.value < d.high
    assert d.value > 0  # a separates the classes better than b


def test_same_run_twice_has_zero_difference_and_unique_labels(make_run) -> None:
    a = make_run("a@224", filename="first.h5")
    b = make_run("a@224", filename="second.h5")
    c = compare([a, b], n_bootstrap=200)
    assert [x.label for x in c.backbones] == ["a@224 [first]", "a@224 [second]"]
    for p in c.pairwise:
        for m in METRIC_NAMES:
            assert (p.differences[m].value, p.differences[m].low, p.differences[m].high) == (
                0,
                0,
                0,
            )
        assert p.delong.p_value == 1.0
        assert p.mcnemar.p_value == 1.0


def test_random_init_is_labelled_everywhere(make_run, tmp_path) -> None:
    a = make_run("resnet50@224", weights_label="random init", separation=0.1)
    b = make_run("resnet50@224", weights_label="IMAGENET1K_V2")
    c = compare([a, b], n_bootstrap=50, out=tmp_path / "rep")
    labels = [x.label for x in c.backbones]
    assert labels == ["resnet50@224 (random init)", "resnet50@224"]
    assert c.backbones[0].random_init and not c.backbones[1].random_init
    assert "resnet50@224 (random init)" in c.to_text()
    md = (tmp_path / "rep" / "report.md").read_text()
    assert md.count("resnet50@224 (random init)") >= 5
    csv = (tmp_path / "rep" / "metrics.csv").read_text()
    assert csv.count("resnet50@224 (random init)") == len(c.rules)


def test_efficiency_from_info_with_dashes_when_absent(make_run) -> None:
    a = make_run("a@224")
    b = make_run("b@224", info={"model_info": None, "timings": {"seconds": 3.0}})
    c = compare([a, b], n_bootstrap=0)
    ea, eb = c.efficiency
    assert (ea.params, ea.gflops, ea.resolution) == (25_557_032, 4.09, 224)
    assert (ea.images_per_second, ea.extract_seconds, ea.train_seconds, ea.dim) == (
        1400.0,
        12.5,
        1.25,
        512,
    )
    assert eb.params is None and eb.images_per_second is None and eb.extract_seconds == 3.0
    text = c.to_text()
    eff = text[text.index("Efficiency:") :]
    line_b = next(ln for ln in eff.splitlines() if ln.startswith("b@224"))
    assert line_b.count("—") == 5  # params, GFLOPs, resolution, img/s, one-off s
    assert "25.6M" in eff


def test_run_file_objects_and_paths_can_be_mixed(make_run, new_run) -> None:
    a = make_run("a@224")
    c = compare([a, new_run("b@224", noise_seed=3)], n_bootstrap=0)
    assert [b.label for b in c.backbones] == ["a@224", "b@224"]


def test_evaluate_run_single(make_run) -> None:
    path = make_run("a@224")
    res = evaluate_run(path)
    assert set(res.results) == {"0.5", "val"}
    text = res.to_text()
    assert "Precision" in text and "no_cactus" in text and "threshold" in text
    test = load_run(path).predictions.select("test")
    r = res.results["0.5"]
    assert r.values["f1"] == pytest.approx(skm.f1_score(test.label == 1, test.score >= 0.5))


def test_single_positive_in_test_gives_undefined_delong(new_run) -> None:
    runs = [new_run("a@224", noise_seed=1), new_run("b@224", noise_seed=2)]
    for run in runs:
        test = np.flatnonzero(run.predictions.split == 2)
        run.predictions.label[test] = 0
        run.predictions.label[test[0]] = 1
    c = compare(runs, n_bootstrap=50)
    assert all(math.isnan(p.delong.p_value) for p in c.pairwise)
    assert c.degenerate_resamples > 0  # resamples that missed the only positive
    assert "DeLong p" in c.to_text()
