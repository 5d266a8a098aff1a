from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from cactus_features.data.readers import read_dataset
from cactus_features.errors import DataError
from tests.conftest import make_image


def _csv(path, rows, header=("id", "has_cactus")):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_kaggle_layout_keeps_csv_order_and_class_names(kaggle_data):
    img_dir, csv_path = kaggle_data
    t = read_dataset(img_dir, csv_path)
    assert t.layout == "kaggle"
    assert t.class_names == ["0", "1"]
    assert list(t.ids[:3]) == ["img0000.jpg", "img0001.jpg", "img0002.jpg"]
    assert t.labels[0] == 0 and t.labels[1] == 1
    assert all(p.is_file() for p in t.paths)


def test_named_columns(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        make_image(rng, i % 2).save(d / f"{i}.png")
    csv_path = _csv(
        tmp_path / "l.csv",
        [(f"{i}.png", ["no", "yes"][i % 2]) for i in range(4)],
        header=("file", "cls"),
    )
    t = read_dataset(d, csv_path, id_column="file", label_column="cls")
    assert t.class_names == ["no", "yes"]
    assert t.labels.tolist() == [0, 1, 0, 1]


def test_class_folders_and_unlabelled(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("b_cactus", "a_ground"):
        (tmp_path / "f" / cls).mkdir(parents=True)
        for i in range(3):
            make_image(rng, 0).save(tmp_path / "f" / cls / f"{i}.jpg")
    t = read_dataset(tmp_path / "f")
    assert t.layout == "folders"
    assert t.class_names == ["a_ground", "b_cactus"]
    assert t.ids[0] == "a_ground/0.jpg" and t.labels[0] == 0
    u = read_dataset(tmp_path / "f" / "a_ground")
    assert u.layout == "unlabelled" and (u.labels == -1).all() and len(u) == 3


@pytest.mark.parametrize(
    ("rows", "header", "match"),
    [
        ([("img0000.jpg", 1)], ("name", "has_cactus"), "no column 'id'"),
        ([("img0000.jpg", 1)], ("id", "label"), "no column 'has_cactus'"),
        ([("img0000.jpg", 1), ("img0000.jpg", 0)], ("id", "has_cactus"), "more than once"),
        ([("missing.jpg", 1), ("img0001.jpg", 0)], ("id", "has_cactus"), "have no file"),
        ([("../x.jpg", 1)], ("id", "has_cactus"), "climbs out"),
        ([("/etc/passwd", 1)], ("id", "has_cactus"), "absolute path"),
        ([("img0000.jpg", 1), ("img0001.jpg", 1)], ("id", "has_cactus"), "two classes"),
        ([], ("id", "has_cactus"), "no data rows"),
    ],
)
def test_bad_csv_is_a_clear_error(kaggle_data, tmp_path, rows, header, match):
    img_dir, _ = kaggle_data
    bad = _csv(tmp_path / "bad.csv", rows, header)
    with pytest.raises(DataError, match=match) as info:
        read_dataset(img_dir, bad)
    assert str(bad) in str(info.value) or "absolute" in str(info.value) or "two" in str(info.value)


def test_unexpected_labels_and_missing_folder(kaggle_data, tmp_path):
    img_dir, csv_path = kaggle_data
    with pytest.raises(DataError, match="outside the expected classes"):
        read_dataset(img_dir, csv_path, classes=["0", "2"])
    with pytest.raises(DataError, match="does not exist"):
        read_dataset(tmp_path / "nope", csv_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no images"):
        read_dataset(empty)


def test_files_without_id_warn_not_fail(kaggle_data):
    img_dir, csv_path = kaggle_data
    Image.new("RGB", (8, 8)).save(img_dir / "stray.jpg")
    t = read_dataset(img_dir, csv_path)
    assert len(t) == 60
    assert any("stray.jpg" in w for w in t.warnings)
