from __future__ import annotations

import csv

import numpy as np
import pytest

from cactus_features.data.readers import read_dataset
from cactus_features.errors import ConfigError, DataError
from tests.multilabel import LABELS, write_multilabel


def _rewrite(path, edit):
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    edit(rows)
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)


def test_several_label_columns_give_a_label_matrix(tmp_path):
    img_dir, csv_path, y = write_multilabel(tmp_path / "ds")
    t = read_dataset(img_dir, csv_path, label_column=list(LABELS))
    assert t.task == "multilabel"
    assert t.class_names == list(LABELS)
    assert t.label_matrix.dtype == np.uint8 and np.array_equal(t.label_matrix, y)
    assert (t.labels == -1).all()
    assert t.source["label_column"] == list(LABELS)
    sub = t.subset(np.array([3, 1]))
    assert np.array_equal(sub.label_matrix, y[[3, 1]])


def test_column_order_is_the_order_given(tmp_path):
    img_dir, csv_path, y = write_multilabel(tmp_path / "ds")
    t = read_dataset(img_dir, csv_path, label_column=["road", "cloud"])
    assert t.class_names == ["road", "cloud"]
    assert np.array_equal(t.label_matrix, y[:, [2, 0]])


def test_label_sets_with_a_separator_give_the_same_matrix(tmp_path):
    img_dir, csv_path, y = write_multilabel(tmp_path / "ds", shape="sets")
    t = read_dataset(img_dir, csv_path, label_column="tags", label_separator="|")
    assert t.task == "multilabel"
    assert t.class_names == sorted(LABELS)
    assert np.array_equal(t.label_matrix, y)
    assert t.source["label_separator"] == "|"
    assert any("carry no label" in w for w in t.warnings) == bool((y.sum(1) == 0).any())


def test_whitespace_separator_splits_at_any_run_of_spaces(tmp_path):
    img_dir, csv_path, y = write_multilabel(tmp_path / "ds", shape="sets")
    _rewrite(csv_path, lambda rows: [r.__setitem__(1, r[1].replace("|", "  ")) for r in rows[1:]])
    t = read_dataset(img_dir, csv_path, label_column="tags", label_separator=" ")
    assert np.array_equal(t.label_matrix, y)


def test_single_label_column_stays_single_label(kaggle_data):
    img_dir, csv_path = kaggle_data
    t = read_dataset(img_dir, csv_path, label_column=["has_cactus"])
    assert t.task == "binary" and t.label_matrix is None
    assert t.labels.min() == 0


def test_a_value_that_is_not_0_or_1_is_named(tmp_path):
    img_dir, csv_path, _ = write_multilabel(tmp_path / "ds")
    _rewrite(csv_path, lambda rows: rows[5].__setitem__(3, "2"))
    with pytest.raises(
        DataError,
        match=r"column 'road' has 1 values that are not 0 or 1 "
        r"\(first: '2' for id 'img0004\.png'\)",
    ):
        read_dataset(img_dir, csv_path, label_column=list(LABELS))
    _rewrite(csv_path, lambda rows: rows[5].__setitem__(3, ""))
    with pytest.raises(DataError, match=r"first: an empty value for id 'img0004\.png'"):
        read_dataset(img_dir, csv_path, label_column=list(LABELS))


def test_missing_column_constant_label_and_option_errors(tmp_path):
    img_dir, csv_path, _ = write_multilabel(tmp_path / "ds")
    with pytest.raises(DataError, match=r"no column 'sky'.*--label-column"):
        read_dataset(img_dir, csv_path, label_column=["cloud", "sky"])
    _rewrite(csv_path, lambda rows: [r.__setitem__(1, "0") for r in rows[1:]])
    with pytest.raises(DataError, match="label 'cloud' is on no image"):
        read_dataset(img_dir, csv_path, label_column=list(LABELS))
    _rewrite(csv_path, lambda rows: [r.__setitem__(1, "1") for r in rows[1:]])
    with pytest.raises(DataError, match=r"label 'cloud' is on every image \(80\)"):
        read_dataset(img_dir, csv_path, label_column=list(LABELS))
    with pytest.raises(ConfigError, match="'road' given twice"):
        read_dataset(img_dir, csv_path, label_column=["road", "road"])
    with pytest.raises(ConfigError, match="splits one label column, got 2"):
        read_dataset(img_dir, csv_path, label_column=["road", "water"], label_separator="|")
    with pytest.raises(ConfigError, match="--label-separator ''"):
        read_dataset(img_dir, csv_path, label_column="road", label_separator="")


def test_label_sets_with_no_label_anywhere_are_refused(tmp_path):
    img_dir, csv_path, _ = write_multilabel(tmp_path / "ds", shape="sets")
    _rewrite(csv_path, lambda rows: [r.__setitem__(1, "") for r in rows[1:]])
    with pytest.raises(DataError, match="column 'tags' holds no labels on any row"):
        read_dataset(img_dir, csv_path, label_column="tags", label_separator="|")


def test_expected_classes_check_the_label_names(tmp_path):
    img_dir, csv_path, _ = write_multilabel(tmp_path / "ds")
    with pytest.raises(DataError, match="'water' are outside the expected classes"):
        read_dataset(
            img_dir, csv_path, label_column=list(LABELS), classes=["cloud", "field", "road"]
        )
