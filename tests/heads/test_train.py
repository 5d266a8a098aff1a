"""train_head end to end: determinism, accuracy, run files, naming, options."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from cactus_features.errors import ConfigError
from cactus_features.features import load_features
from cactus_features.heads import HeadConfig, train_head
from cactus_features.runfile import load_run

from .synthetic import MODEL_INFO, TIMINGS, make_features, write_cache

REQUIRED_INFO = {
    "backbone_name", "features_path", "features_key", "class_names", "positive_class",
    "class_weights", "class_weight_mode", "best_epoch", "epochs_run", "train_seconds", "dim",
    "n_train", "n_val", "n_test",
}  # fmt: skip


@pytest.mark.parametrize(
    "options",
    [
        {"head": "linear", "lr": 1e-2},
        {"head": "mlp", "hidden": (16, 8), "dropout": 0.3, "lr": 1e-3},
        {"head": "linear", "batch_size": 64, "lr": 1e-2},
    ],
)
def test_same_seed_gives_bitwise_equal_runs(options: dict) -> None:
    fs = make_features(n=300, d=8)
    a = train_head(fs, epochs=30, seed=3, save=False, **options)
    b = train_head(fs, epochs=30, seed=3, save=False, **options)
    assert a.run.head_state.keys() == b.run.head_state.keys()
    for name, value in a.run.head_state.items():
        assert np.array_equal(value, b.run.head_state[name]), name
    assert np.array_equal(a.predictions.score, b.predictions.score)
    assert a.best_epoch == b.best_epoch
    c = train_head(fs, epochs=30, seed=4, save=False, **options)
    assert not np.array_equal(a.predictions.score, c.predictions.score)


@pytest.mark.parametrize("head", ["linear", "mlp"])
def test_separable_features_reach_test_auc_one(head: str) -> None:
    fs = make_features(n=400, d=16, signal=12.0, noise=0.5)
    result = train_head(fs, head=head, hidden=(32,) if head == "mlp" else None,
                        epochs=100, lr=1e-2, save=False)  # fmt: skip
    test = result.predictions.select("test")
    assert roc_auc_score(test.label, test.score) == 1.0
    assert result.val_auc == 1.0


def test_run_file_round_trip_and_info(cache_file: Path) -> None:
    result = train_head(cache_file, epochs=20, lr=1e-2)
    assert result.path is not None and result.path.parent == cache_file.parent / "runs"
    run = load_run(result.path)
    info = run.info
    assert REQUIRED_INFO <= set(info)
    assert info["backbone_name"] == "synthetic@32"
    assert info["features_path"] == str(cache_file)
    assert info["class_names"] == ["0", "1"] and info["positive_class"] == 1
    assert info["class_weights"] == pytest.approx(result.class_weights.tolist())
    assert info["class_weights"][0] > info["class_weights"][1]  # 25% negatives: minority
    assert info["class_weight_mode"] == "inverse"
    assert info["model_info"] == MODEL_INFO and info["timings"] == TIMINGS
    assert info["weights_label"] == "random init"
    assert info["best_epoch"] == result.best_epoch and info["epochs_run"] == 20
    assert info["dim"] == 16 and info["n_train"] + info["n_val"] + info["n_test"] == 400
    assert run.config == json.loads(json.dumps(HeadConfig.create(epochs=20, lr=1e-2).to_dict()))
    # predictions: every train/val/test row, none of the unlabelled ones
    fs = load_features(cache_file)
    rows = fs.split <= 2
    assert list(run.predictions.ids) == list(fs.ids[rows])
    assert np.array_equal(run.predictions.split, fs.split[rows])
    assert np.array_equal(run.predictions.label, fs.labels[rows])
    np.testing.assert_array_equal(run.predictions.score, result.predictions.score)
    assert set(run.history) == {"train_loss", "val_loss", "val_auc"}
    assert all(len(v) == 20 for v in run.history.values())
    assert {"linear.weight", "last.linear.weight", "linear.bias"} <= set(run.head_state)
    assert run.standardize["mean"].shape == (16,)


def test_run_names_never_overwrite(cache_file: Path) -> None:
    first = train_head(cache_file, epochs=2)
    config_hash = HeadConfig.create(epochs=2).short_hash()
    assert first.path == cache_file.parent / "runs" / f"synthetic_32__linear-{config_hash}.h5"
    second = train_head(cache_file, epochs=2)
    third = train_head(cache_file, epochs=2)
    assert second.path is not None and second.path.name.endswith(f"{config_hash}-2.h5")
    assert third.path is not None and third.path.name.endswith(f"{config_hash}-3.h5")
    again = train_head(cache_file, epochs=2, overwrite=True)
    assert again.path == first.path
    other = train_head(cache_file, epochs=3)
    assert other.path is not None and other.path.name != first.path.name
    assert len(list((cache_file.parent / "runs").glob("*.h5"))) == 4


def test_in_memory_features_go_to_out_or_cache_runs(tmp_path: Path, monkeypatch) -> None:
    fs = make_features(n=100, d=4)
    exact = train_head(fs, epochs=2, out=tmp_path / "mine.h5")
    assert exact.path == tmp_path / "mine.h5"
    assert train_head(fs, epochs=2, out=tmp_path / "mine.h5").path == tmp_path / "mine-2.h5"
    in_dir = train_head(fs, epochs=2, out=tmp_path / "dir")
    assert in_dir.path is not None and in_dir.path.parent == tmp_path / "dir"
    monkeypatch.chdir(tmp_path)
    default = train_head(fs, epochs=2)
    assert default.path is not None and default.path.parent == Path("cache/runs")
    assert default.path.name.startswith("synthetic@32__linear-")


def test_concatenated_caches(tmp_path: Path) -> None:
    fa = make_features(d=6, backbone="a")
    other = np.random.default_rng(1).standard_normal((len(fa), 10)).astype(np.float32)
    fb = replace(fa, key={"backbone": "b", "resolution": 32}, _embeddings=other)
    a = write_cache(tmp_path / "a_32.h5", fa)
    b = write_cache(tmp_path / "b_32.h5", fb)
    result = train_head([a, b], epochs=5)
    info = result.run.info
    assert info["dim"] == 16 and info["backbone_name"] == "a@32+b@32"
    assert info["features_path"] == [str(a), str(b)]
    assert info["model_info"]["params"] == 2 * MODEL_INFO["params"]
    assert info["timings"]["seconds"] == 2 * TIMINGS["seconds"]
    assert result.path is not None and result.path.parent == tmp_path / "runs"


@pytest.mark.parametrize("select", ["last", "val_loss"])
def test_select_options(select: str) -> None:
    fs = make_features(n=200, d=8)
    result = train_head(fs, epochs=25, lr=5e-2, select=select, save=False)
    if select == "last":
        assert result.best_epoch == 25
        for name, value in result.run.head_state.items():
            if not name.startswith("last."):
                assert np.array_equal(value, result.run.head_state["last." + name])
    else:
        assert result.best_epoch == int(np.argmin(result.history["val_loss"])) + 1


def test_select_last_works_without_validation_rows() -> None:
    fs = make_features(n=100, d=4, fractions=(0.8, 0.0, 0.2))
    with pytest.raises(ConfigError, match="--select last"):
        train_head(fs, epochs=3, solver="adam", save=False)
    with pytest.raises(ConfigError, match="tuned protocol chooses on a validation split"):
        train_head(fs, save=False)
    result = train_head(fs, epochs=3, solver="adam", select="last", save=False)
    assert result.best_epoch == 3 and np.isnan(result.val_auc)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"head": "linear", "hidden": (8,)}, "only applies to --head mlp"),
        ({"head": "cnn"}, "unknown head"),
        ({"select": "best"}, "unknown select"),
        ({"class_weight": "inversed"}, "unknown class weight"),
        ({"epochs": 0}, "epochs=0"),
        ({"lr": -1.0}, "lr=-1.0"),
        ({"dropout": 1.0, "head": "mlp"}, "dropout"),
        ({"momentum": 0.9}, "unknown head option"),
    ],
)
def test_invalid_options_are_config_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        train_head(make_features(n=50, d=4), save=False, **kwargs)


def test_more_than_two_classes_is_a_clear_config_error_for_the_lbfgs_solver() -> None:
    with pytest.raises(ConfigError, match="3 classes: the linear head with solver 'lbfgs'"):
        train_head(make_features(n=90, d=4, n_classes=3), solver="lbfgs", save=False)
