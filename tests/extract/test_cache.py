"""Streaming cache writes: row blocks, the incremental checksum, bounded memory."""

from __future__ import annotations

import hashlib
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest

from cactus_features.store import rows
from cactus_features.store.entries import write_entry
from cactus_features.store.rows import RowBlocks, embeddings_checksum


def entry(path: Path, embeddings, **kw) -> None:
    n = embeddings.shape[0]
    write_entry(
        path,
        embeddings=embeddings,
        ids=np.array([f"i{k}" for k in range(n)], dtype=object),
        labels=np.zeros(n, np.int64),
        split=np.zeros(n, np.uint8),
        key={"backbone": "t"},
        class_names=["0", "1"],
        json_attrs={},
        plain_attrs={},
        **kw,
    )


def test_checksum_streams_the_bytes_of_the_whole_matrix(monkeypatch) -> None:
    monkeypatch.setattr(rows, "ROW_BLOCK_BYTES", 1000)  # many small blocks
    x = np.random.default_rng(0).standard_normal((301, 17)).astype(np.float32)
    assert embeddings_checksum(x) == hashlib.sha256(x.tobytes()).hexdigest()
    big_endian = x.astype(">f4")
    assert embeddings_checksum(big_endian) == hashlib.sha256(x.tobytes()).hexdigest()


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_writing_row_blocks_equals_writing_the_array(tmp_path: Path, dtype: str) -> None:
    x = np.random.default_rng(1).standard_normal((250, 9)).astype(np.float32)
    blocks = RowBlocks(x.shape, lambda: (x[a : a + 64] for a in range(0, 250, 64)))
    entry(tmp_path / "a.h5", x, dtype=dtype)
    entry(tmp_path / "b.h5", blocks, dtype=dtype)
    with h5py.File(tmp_path / "a.h5") as fa, h5py.File(tmp_path / "b.h5") as fb:
        np.testing.assert_array_equal(fa["embeddings"][...], fb["embeddings"][...])
        assert fa["embeddings"].dtype == np.dtype(dtype)
        assert fa.attrs["embeddings_sha256"] == fb.attrs["embeddings_sha256"]
        assert fa.attrs["embeddings_sha256"] == embeddings_checksum(fb["embeddings"])


@pytest.mark.parametrize(
    ("blocks", "needle"),
    [
        (lambda x: (x[:100],), "gave 100 rows, expected 250"),
        (lambda x: (x, x[:1]), "does not fit"),
        (lambda x: (x[:, :5],), "does not fit"),
    ],
)
def test_row_blocks_that_do_not_add_up_leave_nothing_behind(tmp_path, blocks, needle) -> None:
    x = np.ones((250, 9), np.float32)
    with pytest.raises(ValueError, match=needle):
        entry(tmp_path / "a.h5", RowBlocks(x.shape, lambda: iter(blocks(x))))
    assert list(tmp_path.iterdir()) == []


def test_write_entry_memory_does_not_grow_with_rows(tmp_path: Path) -> None:
    """Peak Python-side allocation while writing 64 MB of blocks stays near one block."""
    block = np.ones((1024, 512), np.float32)  # 2 MiB
    n_blocks = 32
    blocks = RowBlocks((1024 * n_blocks, 512), lambda: (block for _ in range(n_blocks)))
    tracemalloc.start()
    try:
        entry(tmp_path / "big.h5", blocks)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * block.nbytes, f"peak {peak / 2**20:.1f} MiB for 64 MiB of rows"


def test_entry_lock_is_exclusive_and_times_out_with_the_same_message(tmp_path):
    import time

    from cactus_features.errors import CacheError
    from cactus_features.extract.cache import entry_lock

    entry = tmp_path / "x.h5"
    with entry_lock(entry):
        with pytest.raises(CacheError, match="another process is extracting this entry"):
            with entry_lock(entry, timeout=0):
                pass
        t0 = time.monotonic()
        with pytest.raises(CacheError, match="raise --lock-timeout"):
            with entry_lock(entry, timeout=0.3):
                pass
        assert time.monotonic() - t0 >= 0.3
    with entry_lock(entry, timeout=0):  # released: free at once
        pass
    assert entry.with_suffix(".lock").exists()  # the (empty) lock file stays, like before
