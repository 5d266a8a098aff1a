"""Fixtures of the head tests (helpers live in :mod:`.synthetic`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from cactus_features.features import FeatureSet

from .synthetic import make_features, write_cache


@pytest.fixture
def features() -> FeatureSet:
    """A small imbalanced feature set (75% positives) with a learnable signal."""
    return make_features()


@pytest.fixture
def cache_file(tmp_path: Path) -> Path:
    """A cache file of :func:`make_features` in ``tmp_path/cache``."""
    return write_cache(tmp_path / "cache" / "synthetic_32.h5", make_features(n_unlabelled=10))


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny problems: one intra-op thread is as fast, and immune to busy CPUs.

    (The fused engine's worker threads are tested with an explicit ``threads=2``.)
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
