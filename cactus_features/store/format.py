"""File kinds, format versions and the attribute codecs shared by every HDF5 file.

Every file this library writes carries two attributes: ``kind`` (what it is) and
``format_version`` (its layout). :func:`check_version` is the one place that checks
both before anything else is read.
"""

from __future__ import annotations

import errno
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from cactus_features.errors import CacheError

H5PY_VERSION: str = h5py.__version__
"""Version of the HDF5 binding the files are written with (recorded in each cache file)."""


@dataclass(frozen=True)
class FileFormat:
    """One kind of file and the newest layout version this library reads and writes.

    Attributes:
        kind: The ``kind`` attribute, e.g. ``cactus-features/embeddings``.
        version: The ``format_version`` this library writes (and the newest it reads).
        noun: How messages name the file (``cache``, ``run``).
    """

    kind: str
    version: int
    noun: str


EMBEDDINGS = FileFormat("cactus-features/embeddings", 2, "cache")
"""Embeddings (feature cache) files: format 2 adds the multi-label ``label_matrix``;
single-label files are still written as format 1."""
RUN = FileFormat("cactus-features/run", 2, "run")
"""Run files (one head-training run): format 2 holds ``[N, K]`` probabilities and the
task kind; binary runs are still written as format 1."""


def check_version(
    attrs: h5py.AttributeManager,
    fmt: FileFormat,
    *,
    path: Path | None = None,
    advice: str = "upgrade cactus-features to read it",
) -> int:
    """Check a file's kind and format version.

    Args:
        attrs: The file's root attributes.
        fmt: The expected kind and newest readable version.
        path: Prefix the messages with ``"<path>: "`` and name the file (``cache format
            version ...``); ``None`` gives the bare messages used inside a report.
        advice: What the user should do about a newer file.

    Returns:
        The file's format version (``0`` when it records none).

    Raises:
        CacheError: If the ``kind`` attribute is not ``fmt.kind``, or the version is
            newer than ``fmt.version``.
    """
    prefix = "" if path is None else f"{path}: "
    if attrs.get("kind") != fmt.kind:
        raise CacheError(f"{prefix}not a cactus-features {fmt.noun} file")
    version = int(attrs.get("format_version", 0))
    if version > fmt.version:
        named = "" if path is None else f"{fmt.noun} "
        raise CacheError(
            f"{prefix}{named}format version {version} is newer than this library's "
            f"({fmt.version}); {advice}"
        )
    return version


def open_existing(path: Path, *, missing: str, unreadable: str = "") -> h5py.File:
    """Open an HDF5 file read-only, with a user-facing error when that is impossible.

    Args:
        path: The file.
        missing: What to say (after ``"<path>: "``) when there is no such file.
        unreadable: Advice appended to ``"<path>: not a readable HDF5 file (<error>)"``.

    Returns:
        The open file; close it (``with``) when done.

    Raises:
        CacheError: If the file does not exist or is not HDF5.
    """
    if not path.is_file():
        raise CacheError(f"{path}: {missing}")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise CacheError(f"{path}: not a readable HDF5 file ({exc}){unreadable}") from None


def key_hash(key: dict[str, Any]) -> str:
    """Stable 12-character hash of a cache key (JSON with sorted keys, SHA-256)."""
    text = json.dumps(key, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def text_attr(attrs: h5py.AttributeManager, name: str) -> str:
    """A string attribute as ``str`` (h5py may return ``bytes``)."""
    value = attrs[name]
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    return str(value)


def read_json_attr(attrs: h5py.AttributeManager, name: str, default: Any = None) -> Any:
    """Read a JSON-encoded HDF5 attribute, or ``default`` when absent."""
    if name not in attrs:
        return default
    return json.loads(text_attr(attrs, name))


def plain(value: Any) -> Any:
    """Convert an HDF5 attribute value to plain Python types."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def json_default(obj: Any) -> Any:
    """``json.dumps`` fallback for NumPy values and paths."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def io_message(where: Path, exc: OSError) -> str:
    """A user-facing message for an ``OSError`` while writing into a cache folder."""
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
