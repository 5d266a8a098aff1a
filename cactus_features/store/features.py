"""Reading embeddings (feature cache) files: :class:`FeatureSet` and :func:`load_features`.

A cache file is a plain HDF5 file (see ``docs/cache-format.md``). This module only
reads; writing lives in :mod:`cactus_features.store.entries`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from cactus_features.data.classes import task_kind
from cactus_features.errors import CacheError
from cactus_features.store.format import (
    EMBEDDINGS,
    check_version,
    open_existing,
    plain,
    read_json_attr,
)

FORMAT_VERSION = EMBEDDINGS.version
"""Newest cache file layout this library reads and writes (2: multi-label; others stay 1)."""

SPLIT_NAMES = ("train", "val", "test")
"""Split codes stored in the ``split`` dataset: 0 train, 1 val, 2 test."""
SPLIT_NONE = 255
"""Split code of unlabelled images (not in any split)."""
UNLABELLED = -1
"""Label index of unlabelled images."""
JSON_ATTRS = frozenset(
    {
        "key",
        "class_names",
        "timings",
        "health",
        "model_info",
        "split_config",
        "dataset_stats",
        "normalization_stats",
        "skipped",
        "source",
        "versions",
    }
)
"""Cache-file attributes stored as JSON text (all others are plain HDF5 scalars)."""


def split_code(name: str) -> int:
    """Return the integer code of a split name.

    Args:
        name: ``"train"``, ``"val"`` or ``"test"``.

    Returns:
        The code stored in the ``split`` dataset.

    Raises:
        ValueError: If the name is not a split.
    """
    try:
        return SPLIT_NAMES.index(name)
    except ValueError:
        raise ValueError(f"unknown split {name!r}; use one of {', '.join(SPLIT_NAMES)}") from None


@dataclass
class FeatureSet:
    """Embeddings of one dataset by one backbone configuration, as stored in the cache.

    Metadata arrays are read eagerly (they are small); the embeddings matrix is
    read on first access of :attr:`embeddings`.

    Attributes:
        path: The HDF5 file, or ``None`` for an in-memory set (e.g. a concatenation).
        key: Everything that determines the embeddings (backbone, weights,
            resolution, normalisation, dataset fingerprint, ...).
        ids: Image ids, shape ``[N]``.
        labels: Label indices into :attr:`class_names`, ``-1`` for unlabelled; ``[N]``.
        split: Split codes (0 train, 1 val, 2 test, 255 none); ``[N]``.
        class_names: Class names in index order (the label names, for multi-label data).
        attrs: All other stored metadata (timings, versions, health, model info).
        label_matrix: Multi-label data only: ``[N, L]`` uint8 0/1 labels, one column
            per name in :attr:`class_names` (:attr:`labels` is then ``-1``); ``None``
            for single-label data.
    """

    path: Path | None
    key: dict[str, Any]
    ids: np.ndarray
    labels: np.ndarray
    split: np.ndarray
    class_names: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    label_matrix: np.ndarray | None = None
    _embeddings: np.ndarray | None = field(default=None, repr=False)

    @property
    def task(self) -> str:
        """``"binary"``, ``"multiclass"``, ``"multilabel"`` (or ``"unlabelled"``)."""
        return task_kind(self.class_names, self.label_matrix)

    @cached_property
    def embeddings(self) -> np.ndarray:
        """The ``[N, D]`` embeddings as float32 (read from disk on first access)."""
        if self._embeddings is not None:
            return self._embeddings
        if self.path is None:
            raise CacheError("this feature set has neither a file nor in-memory embeddings")
        with h5py.File(self.path, "r") as f:
            return np.asarray(f["embeddings"][...], dtype=np.float32)

    @property
    def name(self) -> str:
        """A short readable label, e.g. ``efficientnet_lite0@128``."""
        return str(self.key.get("name") or f"{self.key['backbone']}@{self.key['resolution']}")

    @property
    def dim(self) -> int:
        """Embedding dimension ``D`` (read from the file's header, not its data)."""
        if "dim" in self.attrs:
            return int(self.attrs["dim"])
        if self._embeddings is None and "embeddings" not in self.__dict__ and self.path:
            with h5py.File(self.path, "r") as f:
                return int(f["embeddings"].shape[1])
        return int(self.embeddings.shape[1])

    def __len__(self) -> int:
        return len(self.ids)

    def mask(self, split: str) -> np.ndarray:
        """Boolean mask of the rows in ``split`` (``"train"``, ``"val"`` or ``"test"``)."""
        return self.split == split_code(split)


def load_features(path: str | Path) -> FeatureSet:
    """Open a complete cache file written by :func:`cactus_features.extract_features`.

    Args:
        path: Path to the ``.h5`` cache file.

    Returns:
        The feature set; embeddings are loaded lazily.

    Raises:
        CacheError: If the file is missing, incomplete, of a newer format or not a cache file.
    """
    path = Path(path)
    f = open_existing(
        path,
        missing="no such cache file; run `cactus-features extract` first",
        unreadable="; delete it and extract again",
    )
    with f:
        attrs = f.attrs
        check_version(attrs, EMBEDDINGS, path=path)
        if not bool(attrs.get("complete", False)):
            raise CacheError(f"{path}: extraction did not finish; re-run it to resume")
        key = read_json_attr(attrs, "key", {})
        class_names = read_json_attr(attrs, "class_names", [])
        meta = {
            k: (read_json_attr(attrs, k) if k in JSON_ATTRS else plain(attrs[k]))
            for k in attrs
            if k not in {"key", "class_names"}
        }
        ids = f["ids"].asstr()[...]
        labels = np.asarray(f["labels"][...], dtype=np.int64)
        split = np.asarray(f["split"][...], dtype=np.uint8)
        matrix = np.asarray(f["label_matrix"][...], np.uint8) if "label_matrix" in f else None
        meta["dim"] = int(f["embeddings"].shape[1])
    return FeatureSet(
        path=path,
        key=key,
        ids=np.asarray(ids, dtype=object),
        labels=labels,
        split=split,
        class_names=list(class_names),
        attrs=meta,
        label_matrix=matrix,
    )


def concat_features(sets: Sequence[FeatureSet]) -> FeatureSet:
    """Concatenate the embeddings of several backbones on the same images.

    Args:
        sets: Feature sets of the same dataset (same ids, labels and split, in order).

    Returns:
        An in-memory feature set whose embeddings are the column-wise concatenation.

    Raises:
        CacheError: If the sets do not cover the same images in the same order and split.
    """
    if not sets:
        raise CacheError("nothing to concatenate: give at least one feature set")
    first = sets[0]
    for other in sets[1:]:
        if not (
            np.array_equal(first.ids, other.ids)
            and np.array_equal(first.labels, other.labels)
            and np.array_equal(first.split, other.split)
            and _same_matrix(first.label_matrix, other.label_matrix)
        ):
            raise CacheError(
                f"cannot concatenate {first.name} and {other.name}: they were extracted from "
                "different images or splits; extract both from the same data with the same split"
            )
    if len(sets) == 1:
        return first
    name = "+".join(s.name for s in sets)
    key = {"name": name, "parts": [s.key for s in sets], "backbone": name, "resolution": None}
    attrs = {"parts": [str(s.path) for s in sets], "dim": sum(s.dim for s in sets)}
    return FeatureSet(
        path=None,
        key=key,
        ids=first.ids,
        labels=first.labels,
        split=first.split,
        class_names=first.class_names,
        attrs=attrs,
        label_matrix=first.label_matrix,
        _embeddings=np.concatenate([s.embeddings for s in sets], axis=1),
    )


def _same_matrix(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    """Whether two label matrices (or their absence) agree."""
    return (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))
