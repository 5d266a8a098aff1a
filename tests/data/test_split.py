from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from cactus_features.data.split import (
    SplitConfig,
    iterative_split,
    split_counts,
    split_table,
    stratified_split,
)
from cactus_features.data.table import ImageTable
from cactus_features.errors import ConfigError, DataError
from tests.multilabel import label_matrix

PINNED = {"binary": "76ad7ae0024f027f", "three": "cdd780b137acb1bf"}
"""Made by the code at 729af6f (before multi-label support)."""


def test_cactus_proportions_are_stratified():
    labels = np.array([1] * 13136 + [0] * 4364)
    split = stratified_split(labels)
    counts = split_counts(split, labels)
    for name, share in (("train", 0.70), ("val", 0.15), ("test", 0.15)):
        n = sum(counts[name].values())
        assert abs(n - share * len(labels)) <= 2
        assert abs(counts[name][0] / n - 4364 / 17500) < 0.001


def test_seed_reproducible_and_different():
    labels = np.random.default_rng(0).integers(0, 2, 500)
    a = stratified_split(labels, SplitConfig(seed=3))
    b = stratified_split(labels, SplitConfig(seed=3))
    c = stratified_split(labels, SplitConfig(seed=4))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_unlabelled_rows_get_no_split():
    split = stratified_split(np.array([0, 1, -1] * 20))
    assert (split[2::3] == 255).all()


def test_bad_ratios_and_tiny_classes():
    with pytest.raises(ConfigError, match="sum to 1"):
        SplitConfig(0.8, 0.15, 0.15)
    with pytest.raises(ConfigError):
        SplitConfig(1.0, 0.0, 0.0)
    with pytest.raises(DataError, match="too few"):
        stratified_split(np.array([0, 0, 1] + [1] * 50))


def _sha(split: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(split, dtype=np.uint8).tobytes()).hexdigest()[:16]


def test_single_label_splits_are_pinned():
    # Hashes of the splits made before multi-label support: binary and 3 classes.
    rng = np.random.default_rng(7)
    binary = rng.integers(0, 2, 1000)
    three = rng.integers(0, 3, 1000)
    assert _sha(stratified_split(binary)) == PINNED["binary"]
    assert _sha(stratified_split(three, SplitConfig(seed=5))) == PINNED["three"]
    table = ImageTable(
        Path("."), np.arange(1000).astype(str).astype(object), [], three, list("abc"), "t", "kaggle"
    )
    assert _sha(split_table(table, SplitConfig(seed=5))) == PINNED["three"]


def _max_count_error(y: np.ndarray, split: np.ndarray, config: SplitConfig) -> float:
    ratios = (config.train, config.val, config.test)
    return max(
        float(np.abs(y[split == c].sum(0) - y.sum(0) * r).max()) for c, r in enumerate(ratios)
    )


@pytest.mark.parametrize(("n", "seed"), [(600, 0), (3000, 1)])
def test_iterative_split_keeps_every_label_share_within_three_images(n, seed):
    # Stated tolerance: each split holds n_l * r_j positives of each label l, within 3
    # images (a random split of 3000 images is off by about 20).
    y = label_matrix(n, seed)
    config = SplitConfig(seed=seed)
    split = iterative_split(y, config, label_names=["a", "b", "c", "d"])
    assert _max_count_error(y, split, config) <= 3
    sizes = np.bincount(split, minlength=3)
    assert np.abs(sizes - n * np.array([0.7, 0.15, 0.15])).max() <= 3
    shuffled = np.random.default_rng(seed).permutation(split)
    assert _max_count_error(y, shuffled, config) > 3


def test_iterative_split_is_seeded_and_deterministic():
    y = label_matrix(400, 2)
    a = iterative_split(y, SplitConfig(seed=3))
    assert np.array_equal(a, iterative_split(y.copy(), SplitConfig(seed=3)))
    assert not np.array_equal(a, iterative_split(y, SplitConfig(seed=4)))
    assert set(np.unique(a)) == {0, 1, 2}


def test_iterative_split_places_images_with_no_label_too():
    y = label_matrix(400, 3)
    y[:100] = 0
    split = iterative_split(y, SplitConfig())
    # they fill what the labelled images left, so the split sizes still come out 70/15/15
    assert np.abs(np.bincount(split, minlength=3) - [280, 60, 60]).max() <= 2
    assert set(np.unique(split[:100])) == {0, 1, 2}


def test_iterative_split_names_a_label_too_rare_for_the_split():
    y = label_matrix(200, 0)
    y[:, 1] = 0
    y[:2, 1] = 1
    with pytest.raises(
        DataError, match=r"label 'b' is on 2 of 200 images: too few .* an image with it"
    ):
        iterative_split(y, SplitConfig(), label_names=["a", "b", "c", "d"])
