"""Embeddings matrices streamed as row blocks, and their SHA-256."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import h5py
import numpy as np

ROW_BLOCK_BYTES = 16 << 20
"""Size of the row blocks that checksums and copies stream through."""


@dataclass(frozen=True)
class RowBlocks:
    """An ``[N, D]`` matrix as consecutive blocks of rows, produced one at a time.

    Attributes:
        shape: ``(N, D)``.
        read: Returns a fresh iterator over the blocks, top to bottom.
    """

    shape: tuple[int, int]
    read: Callable[[], Iterator[np.ndarray]]

    @classmethod
    def of(cls, matrix: np.ndarray | h5py.Dataset) -> RowBlocks:
        """Blocks of about :data:`ROW_BLOCK_BYTES` of an array or HDF5 dataset."""
        n, d = matrix.shape
        rows = max(1, ROW_BLOCK_BYTES // max(1, d * matrix.dtype.itemsize))

        def read() -> Iterator[np.ndarray]:
            for a in range(0, n, rows):
                yield np.asarray(matrix[a : a + rows])

        return cls((n, d), read)


class RowsSha256:
    """SHA-256 of a matrix's C-ordered little-endian bytes, fed block by block."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def update(self, block: np.ndarray) -> None:
        """Add the next rows."""
        le = np.ascontiguousarray(block, dtype=block.dtype.newbyteorder("<"))
        self._hash.update(memoryview(le).cast("B"))

    def hexdigest(self) -> str:
        """The digest of all rows so far."""
        return self._hash.hexdigest()


def embeddings_checksum(embeddings: np.ndarray | h5py.Dataset | RowBlocks) -> str:
    """SHA-256 of the embeddings as C-ordered little-endian bytes (read in row blocks)."""
    blocks = embeddings if isinstance(embeddings, RowBlocks) else RowBlocks.of(embeddings)
    digest = RowsSha256()
    for block in blocks.read():
        digest.update(block)
    return digest.hexdigest()
