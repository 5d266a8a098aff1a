"""Writing embeddings (feature cache) files, and asking whether one is finished.

The file is assembled under a temporary name, flushed to disk and renamed into
place in one step, so readers (which only open the final name) never see a
half-written file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from cactus_features.data.classes import MULTILABEL
from cactus_features.errors import CacheError
from cactus_features.store.format import EMBEDDINGS, check_version, io_message, key_hash
from cactus_features.store.rows import RowBlocks, RowsSha256

SINGLE_LABEL_VERSION = 1
"""Format version of binary, multi-class and unlabelled cache files (unchanged layout)."""


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
            if f.attrs.get("kind") != EMBEDDINGS.kind:
                return False
            check_version(
                f.attrs,
                EMBEDDINGS,
                path=path,
                advice="upgrade cactus-features, or use another --cache-dir",
            )
            return bool(f.attrs.get("complete", False))
    except OSError:
        return False


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
    label_matrix: np.ndarray | None = None,
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
        label_matrix: Multi-label data only: the ``[N, L]`` 0/1 labels (``class_names``
            are then the label names). Such a file is written as format 2 (so an older
            library refuses it instead of reading it as single-label); every other
            file keeps format 1, laid out exactly as before.
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
            if label_matrix is not None:
                f.create_dataset(
                    "label_matrix", data=np.asarray(label_matrix, np.uint8), track_times=False
                )
            f.attrs["kind"] = EMBEDDINGS.kind
            f.attrs["format_version"] = SINGLE_LABEL_VERSION if label_matrix is None else 2
            if label_matrix is not None:
                f.attrs["task"] = MULTILABEL
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
