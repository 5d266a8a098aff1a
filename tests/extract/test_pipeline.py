"""The pipeline's defaults."""

from __future__ import annotations

import itertools

import pytest

from cactus_features.extract.pipeline import CPU_BATCH_PIXELS, default_batch_size


@pytest.mark.parametrize(
    ("resolution", "batch"), [(32, 256), (64, 64), (96, 16), (128, 16), (224, 8), (512, 8)]
)
def test_cpu_batches_hold_a_bounded_number_of_pixels(resolution: int, batch: int) -> None:
    assert default_batch_size("cpu", resolution) == batch
    assert batch == 8 or batch * resolution**2 <= CPU_BATCH_PIXELS


def test_cpu_batch_never_grows_with_resolution() -> None:
    sizes = [default_batch_size("cpu", r) for r in range(1, 600)]
    assert all(a >= b for a, b in itertools.pairwise(sizes))
    assert max(sizes) == 256 and min(sizes) == 8


def test_accelerators_take_large_batches() -> None:
    assert default_batch_size("cuda", 224) == 256
