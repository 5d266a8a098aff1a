"""``train_rows``: training on a subset of the training split (label-efficiency seam)."""

from __future__ import annotations

import numpy as np
import pytest

from cactus_features.errors import ConfigError
from cactus_features.heads import HeadConfig, train_head
from cactus_features.heads.prepare.data import prepare

from .synthetic import make_features


def test_prepare_uses_only_the_given_training_rows() -> None:
    fs = make_features(n=200, d=8)
    train = np.flatnonzero(fs.split == 0)
    subset = np.concatenate([train[fs.labels[train] == c][:10] for c in (0, 1)])
    data = prepare(fs, HeadConfig.create(), train_rows=subset[::-1])
    np.testing.assert_array_equal(data.train, np.sort(subset))
    np.testing.assert_array_equal(data.val, np.flatnonzero(fs.split == 1))
    np.testing.assert_array_equal(data.test, np.flatnonzero(fs.split == 2))
    np.testing.assert_allclose(data.class_weights, [0.5, 0.5])  # 10 + 10 rows
    np.testing.assert_allclose(data.standardizer.mean, fs.embeddings[subset].mean(0), rtol=1e-5)
    assert data.subset_info() == {"train_subset": {"rows": 20, "of": int(train.size)}}
    full = prepare(fs, HeadConfig.create(), train_rows=train)
    assert full.subset_info() == {} and np.array_equal(full.train, train)


def test_a_head_on_a_subset_still_scores_every_row() -> None:
    fs = make_features(n=200, d=8)
    train = np.flatnonzero(fs.split == 0)
    result = train_head(fs, epochs=20, lr=0.01, save=False, train_rows=train[:30])
    assert result.run.info["n_train"] == 30
    assert len(result.predictions.ids) == len(fs.ids)


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        ([], "non-empty"),
        ([0.5], "non-empty"),
        ("val", "not in the training split"),
        ([10_000], "not in the training split"),
        ("repeat", "repeated"),
    ],
)
def test_bad_training_rows_are_refused(rows, match) -> None:
    fs = make_features(n=200, d=8)
    train = np.flatnonzero(fs.split == 0)
    if rows == "val":
        rows = [int(train[0]), int(np.flatnonzero(fs.split == 1)[0])]
    elif rows == "repeat":
        rows = [int(train[0]), int(train[0]), int(train[1])]
    with pytest.raises(ConfigError, match=match):
        prepare(fs, HeadConfig.create(), train_rows=np.asarray(rows))


def test_a_subset_of_one_class_is_refused() -> None:
    fs = make_features(n=200, d=8)
    train = np.flatnonzero(fs.split == 0)
    with pytest.raises(ConfigError, match="only class"):
        prepare(fs, HeadConfig.create(), train_rows=train[fs.labels[train] == 1][:5])
