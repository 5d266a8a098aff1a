"""Writing the feature cache: keys, file names, locks, resumable chunks, atomic finish.

Life of a cache entry ``<dir>/<name>.h5``:

1. A process takes the exclusive lock ``<name>.lock`` (``fcntl.flock``; released by
   the kernel when the process dies, so a killed run never leaves a stale lock).
2. Finished chunks are written to ``<name>.parts/chunk-NNNNNN.npy``, each through a
   temporary name and ``os.replace``, so a chunk file either is complete or does
   not exist. A killed run resumes at the first missing chunk.
3. When every chunk exists, the HDF5 file is assembled under a temporary name,
   one chunk at a time (memory does not grow with the dataset), flushed to disk
   and renamed to ``<name>.h5`` in one step. Readers only ever open
   ``<name>.h5``, so they never see a half-written file.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from cactus_features.errors import CacheError
from cactus_features.features import FORMAT_VERSION

log = logging.getLogger("cactus_features")

EMBEDDINGS_KIND = "cactus-features/embeddings"

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


def key_hash(key: dict[str, Any]) -> str:
    """Stable 12-character hash of a cache key."""
    text = json.dumps(key, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "-", text).strip("-") or "x"


def entry_path(cache_dir: Path, dataset_dir: str, key: dict[str, Any]) -> Path:
    """Readable file name of a cache entry, e.g.
    ``cache/aerial-cactus-train-1a2b3c4d/resnet50_IMAGENET1K_V2_224px_weights_fp32_<hash>.h5``.
    """
    stem = "_".join(
        [
            _slug(key["backbone"]),
            _slug(key["weights"]),
            f"{key['resolution']}px",
            _slug(key["normalization"]),
            _slug(key["precision"]),
            key_hash(key),
        ]
    )
    return cache_dir / dataset_dir / f"{stem}.h5"


def is_complete(path: Path) -> bool:
    """Whether ``path`` is a finished cache file this library can read.

    Raises:
        CacheError: If it is a cache file of a newer format version: it must not be
            recomputed and overwritten by an older library.
    """
    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("kind") != EMBEDDINGS_KIND:
                return False
            version = int(f.attrs.get("format_version", 0))
            if version > FORMAT_VERSION:
                raise CacheError(
                    f"{path}: cache format version {version} is newer than this library's "
                    f"({FORMAT_VERSION}); upgrade cactus-features, or use another --cache-dir"
                )
            return bool(f.attrs.get("complete", False))
    except OSError:
        return False


@contextmanager
def entry_lock(path: Path, *, timeout: float | None = None) -> Iterator[None]:
    """Hold the exclusive writer lock of a cache entry.

    Args:
        path: The entry's ``.h5`` path.
        timeout: Seconds to wait for another process holding the lock; ``None``
            waits as long as it takes, ``0`` fails at once.

    Raises:
        CacheError: If the lock is held elsewhere past the timeout, or the folder
            is read-only.
    """
    lock_path = path.with_suffix(".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise CacheError(io_message(path.parent, exc)) from None
    try:
        start = time.monotonic()
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - start
                if timeout is not None and waited >= timeout:
                    raise CacheError(
                        f"{path.name}: another process is extracting this entry right now; "
                        "wait for it to finish (or raise --lock-timeout) and run again"
                    ) from None
                if not announced:
                    log.info("waiting for another process that is extracting %s", path.name)
                    announced = True
                time.sleep(0.2)
        yield
    finally:
        os.close(fd)


def io_message(where: Path, exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
        return (
            f"{where}: cache folder is not writable ({exc.strerror}); pass a writable --cache-dir"
        )
    if exc.errno == errno.ENOSPC:
        return (
            f"{where}: disk full while writing the cache; free space and run again "
            "(finished chunks are kept)"
        )
    return f"{where}: {exc.strerror or exc}; check the cache folder"


@dataclass
class PartStore:
    """The finished chunks of an entry being extracted.

    Attributes:
        path: The entry's final ``.h5`` path.
        n_rows: Number of images.
        chunk_size: Images per chunk.
        manifest: What the chunks were computed with; a resume needs the same.
    """

    path: Path
    n_rows: int
    chunk_size: int
    manifest: dict[str, Any]

    @property
    def folder(self) -> Path:
        """``<name>.parts/`` beside the final file."""
        return self.path.with_suffix(".parts")

    @property
    def n_chunks(self) -> int:
        """Number of chunks the entry is cut into."""
        return (self.n_rows + self.chunk_size - 1) // self.chunk_size

    def chunk_rows(self, index: int) -> range:
        """Row range of chunk ``index``."""
        start = index * self.chunk_size
        return range(start, min(start + self.chunk_size, self.n_rows))

    def _chunk_file(self, index: int) -> Path:
        return self.folder / f"chunk-{index:06d}.npy"

    def open(self) -> None:
        """Create the parts folder, or check an existing one was made with the same settings.

        Chunks from a different key or chunking are discarded (with a log line).
        """
        manifest_file = self.folder / "manifest.json"
        if self.folder.is_dir():
            try:
                old = json.loads(manifest_file.read_text())
            except (OSError, ValueError):
                old = None
            if old != self.manifest:
                log.info("%s: discarding chunks made with other settings", self.folder.name)
                shutil.rmtree(self.folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            if not manifest_file.exists():
                _atomic_write_bytes(
                    manifest_file, json.dumps(self.manifest, sort_keys=True).encode()
                )
            for stray in self.folder.glob("*.tmp*"):
                stray.unlink(missing_ok=True)
            # a final file torn by a kill before its rename (we hold the lock: nobody writes it)
            for torn in self.path.parent.glob(f".{self.path.stem}.tmp*.h5"):
                torn.unlink(missing_ok=True)
        except OSError as exc:
            raise CacheError(io_message(self.folder, exc)) from None

    def done(self, dim: int) -> set[int]:
        """Indices of chunks already written and intact."""
        out = set()
        for index in range(self.n_chunks):
            f = self._chunk_file(index)
            if not f.exists():
                continue
            try:
                arr = np.load(f, mmap_mode="r", allow_pickle=False)
                if arr.shape == (len(self.chunk_rows(index)), dim) and np.isfinite(arr).all():
                    out.add(index)
                    continue
            except (OSError, ValueError):
                pass
            log.info("%s: damaged chunk %d, recomputing it", self.folder.name, index)
            f.unlink(missing_ok=True)
        return out

    def save(self, index: int, embeddings: np.ndarray) -> None:
        """Write one finished chunk atomically."""
        f = self._chunk_file(index)
        tmp = f.with_name(f"{f.stem}.tmp{os.getpid()}.npy")
        try:
            with open(tmp, "wb") as fh:
                np.save(fh, np.ascontiguousarray(embeddings), allow_pickle=False)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, f)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise CacheError(io_message(self.folder, exc)) from None

    def iter_chunks(self) -> Iterator[np.ndarray]:
        """Every chunk in order, one in memory at a time (all must exist)."""
        for i in range(self.n_chunks):
            yield np.load(self._chunk_file(i), allow_pickle=False)

    def blocks(self, dim: int) -> RowBlocks:
        """The whole ``[n_rows, dim]`` matrix as :class:`RowBlocks` of one chunk each."""
        return RowBlocks((self.n_rows, dim), self.iter_chunks)

    def discard(self, index: int) -> None:
        """Delete one chunk file (e.g. one holding non-finite values)."""
        self._chunk_file(index).unlink(missing_ok=True)

    def remove(self) -> None:
        """Delete the parts folder once the final file exists."""
        shutil.rmtree(self.folder, ignore_errors=True)


def embeddings_checksum(embeddings: np.ndarray | h5py.Dataset | RowBlocks) -> str:
    """SHA-256 of the embeddings as C-ordered little-endian bytes (read in row blocks)."""
    blocks = embeddings if isinstance(embeddings, RowBlocks) else RowBlocks.of(embeddings)
    digest = RowsSha256()
    for block in blocks.read():
        digest.update(block)
    return digest.hexdigest()


def write_entry(
    path: Path,
    *,
    embeddings: np.ndarray | RowBlocks,
    ids: np.ndarray,
    labels: np.ndarray,
    split: np.ndarray,
    key: dict[str, Any],
    class_names: list[str],
    json_attrs: dict[str, Any],
    plain_attrs: dict[str, Any],
    dtype: str = "float32",
) -> None:
    """Assemble the final HDF5 file under a temporary name and rename it into place.

    The embeddings are copied and hashed one row block at a time, so memory does
    not grow with ``N``.

    Args:
        path: The final ``.h5`` path.
        embeddings: ``[N, D]`` features, in memory or as :class:`RowBlocks`.
        ids: Image ids ``[N]``.
        labels: Label indices ``[N]``.
        split: Split codes ``[N]``.
        key: The cache key (stored as JSON).
        class_names: Class names in index order.
        json_attrs: Structured metadata, each stored as a JSON text attribute.
        plain_attrs: Scalar metadata stored as plain HDF5 attributes.
        dtype: ``float32`` or ``float16`` storage of the embeddings.
    """
    blocks = embeddings if isinstance(embeddings, RowBlocks) else RowBlocks.of(embeddings)
    store = np.dtype(np.float16 if dtype == "float16" else np.float32)
    n, d = blocks.shape
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.h5")
    try:
        with h5py.File(tmp, "w", track_order=True) as f:
            ds = f.create_dataset(
                "embeddings",
                shape=(n, d),
                dtype=store,
                chunks=(min(n, max(1, (1 << 20) // max(1, d * store.itemsize))), d) if n else None,
                track_times=False,
            )
            digest, row = RowsSha256(), 0
            for block in blocks.read():
                part = np.asarray(block, dtype=store)
                if part.ndim != 2 or part.shape[1] != d or row + len(part) > n:
                    raise ValueError(f"row block of shape {part.shape} does not fit [{n}, {d}]")
                ds[row : row + len(part)] = part
                digest.update(part)
                row += len(part)
            if row != n:
                raise ValueError(f"row blocks gave {row} rows, expected {n}")
            f.create_dataset(
                "ids",
                data=np.asarray(ids, dtype=object),
                dtype=h5py.string_dtype(),
                track_times=False,
            )
            f.create_dataset("labels", data=np.asarray(labels, np.int64), track_times=False)
            f.create_dataset("split", data=np.asarray(split, np.uint8), track_times=False)
            f.attrs["kind"] = EMBEDDINGS_KIND
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["key"] = json.dumps(key, sort_keys=True)
            f.attrs["key_hash"] = key_hash(key)
            f.attrs["class_names"] = json.dumps(class_names)
            f.attrs["embeddings_sha256"] = digest.hexdigest()
            for name, value in json_attrs.items():
                f.attrs[name] = json.dumps(value, sort_keys=True)
            for name, value in plain_attrs.items():
                f.attrs[name] = value
            f.attrs["complete"] = True
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CacheError(io_message(path.parent, exc)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a small file through a temporary name and ``os.replace``."""
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
