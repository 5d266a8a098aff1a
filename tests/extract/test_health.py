"""The feature health check, streamed block by block."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cactus_features.extract.health import HealthStats, check_health


def test_health_check_flags_collapse() -> None:
    rng = np.random.default_rng(0)
    ok = check_health(rng.normal(size=(50, 16)))
    assert not ok.collapsed
    dead = np.zeros((50, 16))
    dead[:, 0] = 1e-8 * rng.random(50)
    report = check_health(dead)
    assert report.collapsed and "COLLAPSED" in report.message and report.constant_share >= 0.9


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 120),
    block=st.integers(1, 50),
    offset=st.floats(-1e3, 1e3),
    zeros=st.floats(0, 1),
    seed=st.integers(0, 2**16),
)
def test_streamed_statistics_match_one_shot(n, block, offset, zeros, seed) -> None:
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, 7)) * rng.uniform(0.1, 10, 7) + offset).astype(np.float32)
    x[rng.random((n, 7)) < zeros] = 0.0
    x[:, 3] = 2.5  # one constant dimension
    report = check_health(x, block_rows=block)
    x64 = x.astype(np.float64)
    std = x64.std(axis=0)
    assert report.mean_std == pytest.approx(std.mean(), rel=1e-9, abs=1e-9)
    assert report.zero_share == pytest.approx((x64 == 0).mean())
    assert report.mean_abs == pytest.approx(np.abs(x64).mean(), rel=1e-12)
    constant = std <= max(std.max() * 1e-6, 1e-12)
    assert report.constant_share == pytest.approx(constant.mean())


def test_empty_blocks_are_ignored() -> None:
    stats = HealthStats(3)
    stats.update(np.zeros((0, 3)))
    stats.update(np.eye(3))
    assert stats.count == 3
    assert stats.report().zero_share == pytest.approx(6 / 9)
