"""Multi-label cache files: the label matrix stored and read back; single-label files unchanged."""

from __future__ import annotations

import csv

import h5py
import numpy as np
import pytest

from cactus_features import extract_features, load_features
from cactus_features.backbones.preprocessing import Preprocessing
from cactus_features.backbones.spec import IMAGENET_MEAN, IMAGENET_STD
from cactus_features.extract.verify import verify_file
from cactus_features.store.entries import write_entry
from cactus_features.store.features import concat_features
from tests.multilabel import LABELS, label_matrix, write_multilabel


def _write(path, matrix=None, names=("0", "1")):
    n = 20
    write_entry(
        path,
        embeddings=np.random.default_rng(0).normal(size=(n, 4)).astype(np.float32),
        ids=np.array([f"i{k}" for k in range(n)], object),
        labels=np.full(n, -1) if matrix is not None else np.arange(n) % 2,
        split=np.arange(n, dtype=np.uint8) % 3,
        key={
            "backbone": "b",
            "resolution": 8,
            "name": "b@8",
            "preprocessing": Preprocessing(IMAGENET_MEAN, IMAGENET_STD, "bilinear").as_key(),
        },
        class_names=list(names),
        json_attrs={},
        plain_attrs={},
        label_matrix=matrix,
    )
    return path


def test_label_matrix_round_trip_and_format_version(tmp_path):
    y = label_matrix(20, 0)
    fs = load_features(_write(tmp_path / "m.h5", y, LABELS))
    assert fs.task == "multilabel" and fs.class_names == list(LABELS)
    assert fs.label_matrix.dtype == np.uint8 and np.array_equal(fs.label_matrix, y)
    with h5py.File(fs.path, "r") as f:
        assert f.attrs["format_version"] == 2 and f.attrs["task"] == "multilabel"
    report = verify_file(fs.path, check_dataset=False)
    assert report.ok, report.problems
    assert "4 labels (multi-label)" in report.notes
    both = concat_features([fs, load_features(_write(tmp_path / "n.h5", y, LABELS))])
    assert np.array_equal(both.label_matrix, y)


def test_single_label_files_keep_format_one_without_a_matrix(tmp_path):
    fs = load_features(_write(tmp_path / "s.h5"))
    assert fs.task == "binary" and fs.label_matrix is None
    with h5py.File(fs.path, "r") as f:
        assert f.attrs["format_version"] == 1
        assert "task" not in f.attrs and "label_matrix" not in f
    assert load_features(_write(tmp_path / "k.h5", names=list("abc"))).task == "multiclass"


def test_verify_names_a_damaged_label_matrix(tmp_path):
    path = _write(tmp_path / "m.h5", label_matrix(20, 0), LABELS)
    with h5py.File(path, "a") as f:
        f["label_matrix"][0, 0] = 2
    report = verify_file(path, check_dataset=False)
    assert not report.ok and "values other than 0 and 1" in report.problems[0]
    with h5py.File(path, "a") as f:
        f.attrs["class_names"] = '["a"]'
    report = verify_file(path, check_dataset=False)
    assert not report.ok and "does not fit 1 label names" in report.problems[0]


@pytest.mark.parametrize("shape", ["columns", "sets"])
def test_extract_multilabel_data_into_a_cache(tmp_path, shape):
    img_dir, csv_path, y = write_multilabel(tmp_path / "ds", shape=shape)
    kw = dict(labels=csv_path, weights="none", cache_dir=tmp_path / "cache", quiet=True)
    if shape == "columns":
        kw["label_column"] = list(LABELS)
    else:
        kw.update(label_column="tags", label_separator="|")
    (fs,) = extract_features(img_dir, "resnet18@16", **kw)
    assert fs.task == "multilabel" and np.array_equal(fs.label_matrix, y)
    assert fs.key["task"] == "multilabel"
    assert fs.key["label_spec"]["names"] == sorted(LABELS)
    for code in range(3):
        assert (y[fs.split == code].sum(0) > 0).all()
    assert verify_file(fs.path).ok
    (again,) = extract_features(img_dir, "resnet18@16", **kw)
    assert again.path == fs.path
    # one label flipped: the same images, another cache key; verify sees the old file as stale
    with open(csv_path, newline="") as fh:
        rows = list(csv.reader(fh))
    rows[1][1] = ("1" if rows[1][1] == "0" else "0") if shape == "columns" else "road"
    with open(csv_path, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    report = verify_file(fs.path)
    assert not report.ok and "the labels changed since extraction" in report.problems[0]
    (changed,) = extract_features(img_dir, "resnet18@16", **kw)
    assert changed.path != fs.path and changed.path.parent == fs.path.parent


def test_cli_extract_label_columns_and_separator_then_info(tmp_path, capsys):
    from cactus_features.cli import main

    img_dir, csv_path, y = write_multilabel(tmp_path / "ds", n=40, shape="sets")
    base = ["extract", "--data", str(img_dir), "--labels", str(csv_path), "--weights", "none"]
    base += ["--backbone", "resnet18@16", "--cache-dir", str(tmp_path / "cache"), "-q"]
    with pytest.raises(SystemExit) as caught:
        main([*base, "--label-column", "tags", "--label-separator", "|"])
    assert caught.value.code == 0
    (path,) = (tmp_path / "cache").glob("*/*.h5")
    assert np.array_equal(load_features(path).label_matrix, y)
    with pytest.raises(SystemExit) as caught:
        main(["info", str(path)])
    out = capsys.readouterr().out
    assert "(multilabel)" in out and "per label" in out
    with pytest.raises(SystemExit) as caught:
        main([*base, "--label-columns", "cloud,road"])
    assert caught.value.code == 2
    assert "no column 'cloud'" in capsys.readouterr().err
