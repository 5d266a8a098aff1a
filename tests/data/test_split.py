from __future__ import annotations

import numpy as np
import pytest

from cactus_features.data.split import SplitConfig, split_counts, stratified_split
from cactus_features.errors import ConfigError, DataError


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
