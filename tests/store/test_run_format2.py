"""Run file format 2 (multi-class, multi-label) beside format 1 (binary, unchanged)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from cactus_features.extract.verify import verify_file
from cactus_features.store.runs import Predictions, RunFile, load_run, save_run

N = 12


def _run(task: str, k: int, *, positive: int = 1) -> RunFile:
    rng = np.random.default_rng(k)
    split = np.arange(N, dtype=np.uint8) % 3
    if task == "binary":
        label, score = rng.integers(0, 2, N), rng.random(N)
    elif task == "multiclass":
        logits = rng.normal(size=(N, k))
        score = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        label = rng.integers(0, k, N)
    else:
        score = rng.random((N, k))
        label = (rng.random((N, k)) < 0.4).astype(np.uint8)
    names = [f"c{j}" for j in range(k)]
    return RunFile(
        None,
        {"head": "linear"},
        {"backbone_name": "x@32", "class_names": names, "positive_class": positive},
        Predictions(np.array([f"i{n}" for n in range(N)], object), split, label, score, task),
        history={"val_loss": np.array([0.9, 0.7])},
        head_state={"linear.weight": np.ones((k, 3), np.float32)},
        standardize={"mean": np.zeros(3), "std": np.ones(3)},
    )


@pytest.mark.parametrize(("task", "k"), [("multiclass", 3), ("multiclass", 10), ("multilabel", 4)])
def test_format_two_round_trip(tmp_path, task, k):
    run = _run(task, k)
    path = save_run(run, tmp_path / "r.h5")
    with h5py.File(path, "r") as f:
        assert f.attrs["format_version"] == 2 and f.attrs["task"] == task
        assert f["predictions/proba"].shape == (N, k)
        assert "score" not in f["predictions"]
    back = load_run(path)
    p = back.predictions
    assert p.task == task
    np.testing.assert_array_equal(p.proba, run.predictions.score)
    np.testing.assert_array_equal(p.label, run.predictions.label)
    assert p.label.dtype == (np.uint8 if task == "multilabel" else np.int64)
    assert back.info["class_names"] == [f"c{j}" for j in range(k)]
    assert back.head_state["linear.weight"].shape == (k, 3)
    test = p.select("test")
    assert test.task == task and test.proba.shape == (N // 3, k)
    np.testing.assert_array_equal(test.label, run.predictions.label[2::3])
    report = verify_file(path)
    assert report.ok, report.problems
    assert f"run format version 2 ({task}, {k} classes)" in report.notes


def test_binary_runs_keep_format_one_and_get_the_uniform_view(tmp_path):
    run = _run("binary", 2, positive=0)
    path = save_run(run, tmp_path / "r.h5")
    with h5py.File(path, "r") as f:
        assert f.attrs["format_version"] == 1
        assert "task" not in f.attrs and "class_names" not in f.attrs
        assert sorted(f["predictions"]) == ["ids", "label", "score", "split"]
    p = load_run(path).predictions
    assert p.task == "binary" and p.positive_index == 0
    np.testing.assert_array_equal(p.score, run.predictions.score)
    np.testing.assert_allclose(p.proba[:, 0], run.predictions.score)
    np.testing.assert_allclose(p.proba.sum(1), 1.0)
    assert verify_file(path).ok


def test_format_two_refuses_predictions_that_do_not_fit(tmp_path):
    run = _run("multiclass", 3)
    run.info["class_names"] = ["a", "b"]
    with pytest.raises(ValueError, match=r"scores \(12, 3\) for 12 ids and 2 class names"):
        save_run(run, tmp_path / "r.h5")
    assert list(tmp_path.iterdir()) == []


def test_damaged_format_two_files_are_named(tmp_path):
    path = save_run(_run("multiclass", 3), tmp_path / "r.h5")
    with h5py.File(path, "a") as f:
        f["predictions/proba"][0] = [0.5, 0.5, 0.5]
    report = verify_file(path)
    assert not report.ok and "do not sum to 1" in report.problems[0]
    with h5py.File(path, "a") as f:
        f.attrs["class_names"] = '["a", "b"]'
    report = verify_file(path)
    assert not report.ok and "damaged run file (task 'multiclass'" in report.problems[0]
