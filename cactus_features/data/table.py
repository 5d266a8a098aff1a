"""The image table: which files, which ids, which labels."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class ImageTable:
    """A dataset as a table of images, before any pixel is read.

    Attributes:
        root: The image folder.
        ids: Image ids as the user gave them (for the Kaggle layout the CSV's id,
            for class folders ``<class>/<file>``); ``[N]``, dtype object.
        paths: Absolute file paths, one per id.
        labels: Label indices into :attr:`class_names`; ``-1`` when unlabelled.
        class_names: Class names in index order (sorted, so the mapping is stable).
        name: A short readable dataset name used in cache folder names.
        layout: ``"kaggle"``, ``"folders"`` or ``"unlabelled"``.
        warnings: Non-fatal findings (e.g. files that no CSV row names).
        skipped: Ids dropped by ``skip_bad_images``, with the reason.
        source: The arguments that read this table (stored in the cache so
            ``verify`` can read the dataset again and detect changes).
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

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def labelled(self) -> bool:
        """Whether every image has a label."""
        return self.layout != "unlabelled"

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
        )
