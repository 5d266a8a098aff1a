"""The image table: which files, which ids, which labels."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cactus_features.data.classes import task_kind


@dataclass
class ImageTable:
    """A dataset as a table of images, before any pixel is read.

    Attributes:
        root: The image folder.
        ids: Image ids as the user gave them (for the Kaggle layout the CSV's id,
            for class folders ``<class>/<file>``); ``[N]``, dtype object.
        paths: Absolute file paths, one per id.
        labels: Label indices into :attr:`class_names`; ``-1`` when unlabelled, and
            for multi-label data (no single class: see :attr:`label_matrix`).
        class_names: Class names in index order (sorted, so the mapping is stable);
            for multi-label data the label names, in the columns' order.
        name: A short readable dataset name used in cache folder names.
        layout: ``"kaggle"``, ``"folders"`` or ``"unlabelled"``.
        warnings: Non-fatal findings (e.g. files that no CSV row names).
        skipped: Ids dropped by ``skip_bad_images``, with the reason.
        source: The arguments that read this table (stored in the cache so
            ``verify`` can read the dataset again and detect changes).
        label_matrix: Multi-label data only: ``[N, L]`` uint8, 1 where image ``n``
            carries label ``class_names[l]``; ``None`` for single-label data.
    """

    root: Path
    ids: np.ndarray
    paths: list[Path]
    labels: np.ndarray
    class_names: list[str]
    name: str
    layout: str
    warnings: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    source: dict = field(default_factory=dict)
    label_matrix: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def labelled(self) -> bool:
        """Whether every image has a label."""
        return self.layout != "unlabelled"

    @property
    def task(self) -> str:
        """``"binary"``, ``"multiclass"``, ``"multilabel"`` (or ``"unlabelled"``)."""
        return task_kind(self.class_names, self.label_matrix)

    def subset(self, rows: np.ndarray) -> ImageTable:
        """Return the table restricted to the given row indices (order kept)."""
        rows = np.asarray(rows, dtype=np.int64)
        return ImageTable(
            root=self.root,
            ids=self.ids[rows],
            paths=[self.paths[i] for i in rows],
            labels=self.labels[rows],
            class_names=self.class_names,
            name=self.name,
            layout=self.layout,
            warnings=list(self.warnings),
            skipped=dict(self.skipped),
            source=dict(self.source),
            label_matrix=None if self.label_matrix is None else self.label_matrix[rows],
        )
