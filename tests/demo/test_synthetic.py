"""Tests of the synthetic aerial-cactus dataset behind ``cactus-features demo``."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from cactus_features.data.readers import read_dataset
from cactus_features.demo import SyntheticDataset, make_synthetic_aerial, render_aerial
from cactus_features.errors import ConfigError, DataError

ID_PATTERN = re.compile(r"^[0-9a-f]{32}\.jpg$")
SMALL = {"n_train": 40, "n_test": 12}


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _mtimes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> SyntheticDataset:
    return make_synthetic_aerial(tmp_path_factory.mktemp("small") / "aerial", **SMALL)


def test_writes_the_kaggle_layout(small: SyntheticDataset) -> None:
    root = small.root
    assert sorted(p.name for p in root.iterdir()) == [
        "sample_submission.csv",
        "synthetic.json",
        "test",
        "train",
        "train.csv",
    ]
    assert (small.train_dir, small.test_dir) == (root / "train", root / "test")
    assert (small.labels_csv, small.sample_submission) == (
        root / "train.csv",
        root / "sample_submission.csv",
    )
    rows = _rows(small.labels_csv)
    assert rows[0] == ["id", "has_cactus"]
    ids = [r[0] for r in rows[1:]]
    assert all(ID_PATTERN.match(i) for i in ids)
    assert ids == sorted(ids)
    assert {r[1] for r in rows[1:]} == {"0", "1"}
    assert sorted(p.name for p in small.train_dir.iterdir()) == ids
    sub = _rows(small.sample_submission)
    assert sub[0] == ["id", "has_cactus"]
    test_ids = [r[0] for r in sub[1:]]
    assert test_ids == sorted(p.name for p in small.test_dir.iterdir())
    assert all(ID_PATTERN.match(i) for i in test_ids)
    assert {r[1] for r in sub[1:]} == {"0.5"}
    assert not set(ids) & set(test_ids)


def test_counts_and_class_share(small: SyntheticDataset, tmp_path: Path) -> None:
    labels = [int(r[1]) for r in _rows(small.labels_csv)[1:]]
    assert (small.n_train, small.n_test) == (40, 12)
    assert len(labels) == 40 and len(list(small.test_dir.iterdir())) == 12
    assert sum(labels) == small.n_positive == 30 and small.n_negative == 10
    other = make_synthetic_aerial(tmp_path, n_train=250, n_test=0, positive_share=0.6, seed=3)
    share = np.mean([int(r[1]) for r in _rows(other.labels_csv)[1:]])
    assert abs(share - 0.6) < 0.005
    assert other.n_test == 0 and list(other.test_dir.iterdir()) == []
    assert len(_rows(other.sample_submission)) == 1


def test_images_decode_as_rgb_jpegs_of_the_requested_size(
    small: SyntheticDataset, tmp_path: Path
) -> None:
    for path in [*small.train_dir.iterdir(), *small.test_dir.iterdir()]:
        with Image.open(path) as img:
            assert (img.format, img.mode, img.size) == ("JPEG", "RGB", (32, 32))
            pixels = np.asarray(img)
        assert pixels.std() > 3  # textured, not flat
    big = make_synthetic_aerial(tmp_path, n_train=4, n_test=1, size=48, positive_share=0.5)
    with Image.open(next(big.train_dir.iterdir())) as img:
        assert img.size == (48, 48)


def test_the_library_reads_it(small: SyntheticDataset) -> None:
    table = read_dataset(small.train_dir, small.labels_csv)
    assert len(table) == 40 and table.class_names == ["0", "1"] and not table.warnings
    assert int(table.labels.sum()) == 30


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path: Path) -> None:
    a = make_synthetic_aerial(tmp_path / "a", seed=7, **SMALL)
    b = make_synthetic_aerial(tmp_path / "b", seed=7, **SMALL)
    c = make_synthetic_aerial(tmp_path / "c", seed=8, **SMALL)
    assert _snapshot(a.root) == _snapshot(b.root)
    snap_a, snap_c = _snapshot(a.root), _snapshot(c.root)
    shared = {"train.csv", "sample_submission.csv", "synthetic.json"}
    assert not (set(snap_a) & set(snap_c)) - shared
    assert snap_a["train.csv"] != snap_c["train.csv"]


def test_render_is_deterministic_and_shaped() -> None:
    labels = np.array([0, 1, 1, 0, 1])
    first = render_aerial(labels, rng=np.random.default_rng(5))
    again = render_aerial(labels, rng=np.random.default_rng(5))
    other = render_aerial(labels, rng=np.random.default_rng(6))
    assert first.shape == (5, 32, 32, 3) and first.dtype == np.uint8
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert render_aerial(labels, size=20, rng=np.random.default_rng(5)).shape == (5, 20, 20, 3)


def test_reuses_a_complete_dataset_without_rewriting(tmp_path: Path) -> None:
    first = make_synthetic_aerial(tmp_path, **SMALL)
    assert not first.reused
    before = _mtimes(tmp_path)
    again = make_synthetic_aerial(tmp_path, **SMALL)
    assert again.reused and again.n_positive == first.n_positive
    assert _mtimes(tmp_path) == before
    manifest = json.loads(first.manifest.read_text())
    assert manifest["params"] == {
        "n_test": 12,
        "n_train": 40,
        "positive_share": 0.75,
        "seed": 0,
        "size": 32,
    }


def test_refuses_other_parameters_unless_overwrite(tmp_path: Path) -> None:
    first = make_synthetic_aerial(tmp_path, **SMALL)
    old = _snapshot(tmp_path)
    with pytest.raises(DataError, match="other parameters"):
        make_synthetic_aerial(tmp_path, seed=1, **SMALL)
    assert _snapshot(tmp_path) == old
    replaced = make_synthetic_aerial(tmp_path, seed=1, overwrite=True, **SMALL)
    assert not replaced.reused
    assert len(list(replaced.train_dir.iterdir())) == 40
    shared = {"train.csv", "sample_submission.csv", "synthetic.json"}
    assert not (set(_snapshot(tmp_path)) & set(old)) - shared
    restored = make_synthetic_aerial(tmp_path, overwrite=True, **SMALL)
    assert _snapshot(restored.root) == old == _snapshot(first.root)


def test_refuses_a_foreign_or_damaged_folder(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="no synthetic dataset"):
        make_synthetic_aerial(foreign, **SMALL)
    made = make_synthetic_aerial(foreign, overwrite=True, **SMALL)
    assert (foreign / "notes.txt").read_text() == "mine"  # only its own entries are replaced
    assert make_synthetic_aerial(foreign, **SMALL).reused

    next(made.train_dir.iterdir()).unlink()
    with pytest.raises(DataError, match="missing or changed"):
        make_synthetic_aerial(foreign, **SMALL)
    assert not make_synthetic_aerial(foreign, overwrite=True, **SMALL).reused

    made.manifest.unlink()  # as if interrupted before the manifest
    with pytest.raises(DataError, match="unfinished"):
        make_synthetic_aerial(foreign, **SMALL)

    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(DataError, match="not a folder"):
        make_synthetic_aerial(a_file, overwrite=True, **SMALL)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_train": 1},
        {"n_train": 2.5},
        {"n_test": -1},
        {"positive_share": 0.0},
        {"positive_share": 1.0},
        {"positive_share": "0.5"},
        {"positive_share": float("nan")},
        {"n_train": 3, "positive_share": 0.01},
        {"size": 4},
        {"seed": -1},
        {"n_train": True},
    ],
)
def test_rejects_bad_parameters(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        make_synthetic_aerial(tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()


# --- learnability ----------------------------------------------------------------------------


def _greenness(pixels: np.ndarray) -> np.ndarray:
    """Per-pixel green excess ``G - (R + B) / 2`` on the 0..1 scale."""
    return pixels[..., 1] - (pixels[..., 0] + pixels[..., 2]) / 2


def _coherence(maps: np.ndarray) -> np.ndarray:
    """How much of the gradient energy shares one orientation (structure tensor), per image."""
    gy, gx = np.gradient(maps, axis=(1, 2))
    a, b, c = (gx * gx).mean((1, 2)), (gy * gy).mean((1, 2)), (gx * gy).mean((1, 2))
    return np.sqrt((a - b) ** 2 + 4 * c * c) / (a + b + 1e-9)


def _simple_features(pixels: np.ndarray) -> np.ndarray:
    """Colour statistics, greenness quantiles, gradient statistics and orientation coherence."""
    n = len(pixels)
    grey = pixels.mean(-1)
    green = _greenness(pixels)
    gy, gx = np.gradient(grey, axis=(1, 2))
    magnitude = np.hypot(gx, gy).reshape(n, -1)
    return np.column_stack(
        [
            pixels.mean((1, 2)),
            pixels.std((1, 2)),
            np.quantile(green.reshape(n, -1), [0.5, 0.9, 0.98, 1.0], axis=1).T,
            np.quantile(magnitude, [0.5, 0.9, 0.98], axis=1).T,
            (green > 0.03).mean((1, 2)),
            _coherence(grey),
            _coherence(green),
        ]
    )


@pytest.fixture(scope="module")
def learn_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, np.ndarray]:
    """1,200 decoded training images (0..1 floats) and their labels."""
    data = make_synthetic_aerial(tmp_path_factory.mktemp("learn"), n_train=1200, n_test=0, seed=11)
    rows = _rows(data.labels_csv)[1:]
    pixels = np.stack([np.asarray(Image.open(data.train_dir / r[0])) for r in rows])
    return pixels.astype(np.float32) / 255.0, np.array([int(r[1]) for r in rows])


def test_simple_features_learn_it_well_above_chance(
    learn_set: tuple[np.ndarray, np.ndarray],
) -> None:
    pixels, labels = learn_set
    features = _simple_features(pixels)
    train, held = slice(0, 800), slice(800, None)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(features[train], labels[train])
    auc = roc_auc_score(labels[held], model.predict_proba(features[held])[:, 1])
    assert auc > 0.75


def test_mean_green_alone_is_far_from_enough(learn_set: tuple[np.ndarray, np.ndarray]) -> None:
    pixels, labels = learn_set
    for score in (pixels[..., 1].mean((1, 2)), _greenness(pixels).mean((1, 2))):
        auc = roc_auc_score(labels, score)
        assert max(auc, 1 - auc) < 0.95
