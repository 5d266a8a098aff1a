"""Cache entries being written: file names, locks, resumable chunks.

Life of a cache entry ``<dir>/<name>.h5``:

1. A process takes the exclusive lock ``<name>.lock`` (:mod:`filelock`: ``flock`` on
   POSIX, ``msvcrt.locking`` on Windows; released by the operating system when the
   process dies, so a killed run never leaves a stale lock).
2. Finished chunks are written to ``<name>.parts/chunk-NNNNNN.npy``, each through a
   temporary name and ``os.replace``, so a chunk file either is complete or does
   not exist. A killed run resumes at the first missing chunk.
3. When every chunk exists, :func:`cactus_features.store.entries.write_entry`
   assembles the HDF5 file under a temporary name, one chunk at a time (memory
   does not grow with the dataset), flushed to disk and renamed to ``<name>.h5``
   in one step. Readers only ever open ``<name>.h5``, so they never see a
   half-written file.

This module opens no HDF5 file; :mod:`cactus_features.store` does that.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from cactus_features.errors import CacheError
from cactus_features.store.format import io_message, key_hash
from cactus_features.store.rows import RowBlocks

log = logging.getLogger("cactus_features")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "-", text).strip("-") or "x"


def entry_path(cache_dir: Path, dataset_dir: str, key: dict[str, Any]) -> Path:
    """Readable file name of a cache entry, e.g.
    ``cache/aerial-cactus-train-1a2b3c4d/resnet50_IMAGENET1K_V2_224px_weights_fp32_<hash>.h5``
    (a feature selection other than ``last`` follows the resolution: ``..._64px_stage-2_...``).
    """
    features = key.get("features", "last")
    stem = "_".join(
        [
            _slug(key["backbone"]),
            _slug(key["weights"]),
            f"{key['resolution']}px",
            *([] if features == "last" else [_slug(features)]),
            _slug(key["normalization"]),
            _slug(key["precision"]),
            key_hash(key),
        ]
    )
    return cache_dir / dataset_dir / f"{stem}.h5"


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
    lock = FileLock(path.with_suffix(".lock"))
    try:
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if timeout is not None and timeout <= 0:
                raise
            log.info("waiting for another process that is extracting %s", path.name)
            lock.acquire(timeout=-1 if timeout is None else timeout, poll_interval=0.2)
    except Timeout:
        raise CacheError(
            f"{path.name}: another process is extracting this entry right now; "
            "wait for it to finish (or raise --lock-timeout) and run again"
        ) from None
    except OSError as exc:
        raise CacheError(io_message(path.parent, exc)) from None
    try:
        yield
    finally:
        lock.release()


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

    @classmethod
    def for_entry(
        cls,
        path: Path,
        key: dict[str, Any],
        n_rows: int,
        chunk_size: int,
        batch_size: int,
        channels_last: bool = True,
        compiled: bool = False,
    ) -> PartStore:
        """The parts store of an entry; a resume needs the same chunking, batching and layout."""
        manifest = {
            "key_hash": key_hash(key),
            "n_rows": n_rows,
            "chunk_size": chunk_size,
            "batch_size": batch_size,
            "channels_last": bool(channels_last),
            "compiled": bool(compiled),
        }
        return cls(path, n_rows, chunk_size, manifest)

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


def remove_leftover_parts(path: Path) -> None:
    """Delete a parts folder that a kill after the final rename left beside a finished entry."""
    folder = path.with_suffix(".parts")
    if not folder.is_dir():
        return
    try:
        with entry_lock(path, timeout=0):
            shutil.rmtree(folder, ignore_errors=True)
    except CacheError:
        pass  # another process holds the entry; it cleans up itself


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a small file through a temporary name and ``os.replace``."""
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
