"""A window of per-epoch snapshots of linear heads, scored together on validation rows.

Scoring the validation rows after every epoch re-reads them from memory every
epoch (21.5 MB for 2,625 x 2,048 floats, a fifth of an epoch's traffic). The
fused engine instead copies each epoch's weights into a window and, once it is
full, scores the whole window in one pass over the validation rows: each row is
read once and dotted with weights that stay in the L2 cache. The curves,
selected epochs and selected weights are exactly those of scoring every epoch
as it ends (only reported later, a window at a time).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

WINDOW_BYTES = 512 << 10
"""Weights of one window (half a core's L2 cache here): up to 64 epochs of one 2,048-wide head."""

MAX_WINDOW = 64
"""Most epochs in one window."""


def window_epochs(heads: int, dim: int) -> int:
    """Epochs per window for ``heads`` linear heads of input width ``dim``."""
    return max(1, min(MAX_WINDOW, WINDOW_BYTES // (4 * heads * (dim + 1))))


class SnapshotWindow:
    """Copies of stacked linear-head parameters ``[W [K, 1, D], b [K, 1]]`` at up to
    ``size`` epochs.

    Args:
        params: The live parameters (only their shapes, dtype and device are used here).
        size: Epochs the window holds.
    """

    def __init__(self, params: Sequence[torch.Tensor], size: int) -> None:
        w, b = params
        self.k, self.dim = w.shape[0], w.shape[-1]
        self.size = size
        self._w = torch.empty((size, *w.shape), dtype=w.dtype, device=w.device)
        self._b = torch.empty((size, *b.shape), dtype=b.dtype, device=b.device)
        self.epochs: list[int] = []

    def __len__(self) -> int:
        return len(self.epochs)

    @property
    def full(self) -> bool:
        """Whether the window holds ``size`` epochs."""
        return len(self.epochs) == self.size

    def push(self, params: Sequence[torch.Tensor], epoch: int) -> None:
        """Copy the parameters as they are after ``epoch``.

        Raises:
            RuntimeError: The window is full.
        """
        j = len(self.epochs)
        if j == self.size:
            raise RuntimeError("the snapshot window is full: score and clear it first")
        self._w[j].copy_(params[0])
        self._b[j].copy_(params[1])
        self.epochs.append(epoch)

    def params(self, j: int) -> list[torch.Tensor]:
        """The ``j``-th snapshot, shaped like the parameters (views, valid until the next push)."""
        return [self._w[j], self._b[j]]

    def flat(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All snapshots as ``M = len(self) * K`` weight vectors: ``w [M, D]``, ``b [M]``
        (epoch-major: row ``j * K + k`` is head ``k`` after ``self.epochs[j]``)."""
        m = len(self.epochs) * self.k
        return self._w[: len(self)].reshape(m, self.dim), self._b[: len(self)].reshape(m)

    def clear(self) -> None:
        """Forget the snapshots (the buffers are reused)."""
        self.epochs.clear()
