"""scikit-learn's digits written as class folders plus a held-out, unlabelled test folder."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from cactus_features.demo.digits import make_digits_folders
from cactus_features.errors import ConfigError, DataError


def test_writes_every_digit_once_with_a_stratified_held_out_share(tmp_path):
    data = make_digits_folders(tmp_path / "d", test_share=0.1, seed=3)
    digits = load_digits()
    train = {p.name: p.parent.name for p in data.train_dir.glob("*/*.png")}
    test = {p.name for p in data.test_dir.glob("*.png")}
    assert len(train) + len(test) == len(digits.target) == data.n_train + data.n_test
    assert not set(train) & test
    assert sorted(p.name for p in data.train_dir.iterdir()) == list(data.class_names)
    for name, folder in train.items():  # each image in the folder of its own class
        assert folder == str(digits.target[int(name[:4])])
    answers = data.answers()
    assert set(answers) == test
    per_class = np.bincount([int(v) for v in answers.values()], minlength=10)
    expected = np.rint(0.1 * np.bincount(digits.target)).astype(int)
    np.testing.assert_array_equal(per_class, expected)
    with data.sample_submission.open(newline="") as fh:
        assert [r["id"] for r in csv.DictReader(fh)] == list(answers)
    # pixels 0..16 scaled to 0..255
    n = int(next(iter(test))[:4])
    img = np.asarray(Image.open(data.test_dir / f"{n:04d}.png"))
    np.testing.assert_array_equal(img, np.rint(digits.images[n] * 255 / 16).astype(np.uint8))


def test_same_parameters_reuse_the_folder_and_other_ones_rewrite_it(tmp_path):
    first = make_digits_folders(tmp_path / "d", seed=0)
    stamp, answers = first.test_labels.stat().st_mtime_ns, first.answers()
    again = make_digits_folders(tmp_path / "d", seed=0)
    assert again == first and first.test_labels.stat().st_mtime_ns == stamp
    other = make_digits_folders(tmp_path / "d", seed=1)
    assert other.answers() != answers
    assert len(list(other.train_dir.glob("*/*.png"))) == other.n_train


@pytest.mark.parametrize("kw", [{"test_share": 0.7}, {"test_share": -0.1}, {"seed": -1}])
def test_bad_parameters_are_refused(tmp_path, kw):
    with pytest.raises(ConfigError):
        make_digits_folders(tmp_path / "d", **kw)


def test_a_file_in_the_way_is_refused(tmp_path):
    (tmp_path / "d").write_text("x")
    with pytest.raises(DataError, match="not a folder"):
        make_digits_folders(tmp_path / "d")
