"""The window of per-epoch weight snapshots scored together on validation rows."""

from __future__ import annotations

import pytest
import torch

from cactus_features.heads.fastpath.snapshots import (
    MAX_WINDOW,
    WINDOW_BYTES,
    SnapshotWindow,
    window_epochs,
)


def test_window_size_follows_the_cache_budget() -> None:
    assert window_epochs(1, 2048) == WINDOW_BYTES // (4 * 2049)  # 63 epochs of one head
    assert window_epochs(1, 12) == MAX_WINDOW
    assert window_epochs(128, 2048) == 1
    assert 1 <= window_epochs(8, 1280) <= MAX_WINDOW


def test_push_flat_params_and_clear() -> None:
    w = torch.zeros(2, 1, 3)
    b = torch.zeros(2, 1)
    window = SnapshotWindow([w, b], 3)
    for epoch in (4, 5):
        w.fill_(epoch)
        b.fill_(-epoch)
        window.push([w, b], epoch)
    w.fill_(99)  # later changes to the live weights do not reach the snapshots
    assert len(window) == 2 and not window.full and window.epochs == [4, 5]
    flat_w, flat_b = window.flat()
    assert flat_w.shape == (4, 3) and flat_b.shape == (4,)
    # epoch-major: row j * K + k is head k after epoch j
    assert flat_w[:, 0].tolist() == [4, 4, 5, 5]
    assert flat_b.tolist() == [-4, -4, -5, -5]
    snap_w, snap_b = window.params(1)
    assert snap_w.shape == w.shape and snap_b.shape == b.shape
    assert torch.equal(snap_w, torch.full_like(w, 5))
    window.push([w, b], 6)
    assert window.full
    with pytest.raises(RuntimeError, match="full"):
        window.push([w, b], 7)
    window.clear()
    assert len(window) == 0
    window.push([w, b], 7)
    assert window.flat()[0][:, 0].tolist() == [99, 99]
