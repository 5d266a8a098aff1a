"""Generated multi-label data: label matrices and a Kaggle-layout folder with a label CSV."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from tests.conftest import make_image

LABELS = ("cloud", "field", "road", "water")
"""Label names of the generated folders."""


def label_matrix(n: int, seed: int = 0, prevalence=(0.04, 0.1, 0.3, 0.5)) -> np.ndarray:
    """``[n, L]`` 0/1 labels with the given shares; the last label also follows the first."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, len(prevalence))) < np.asarray(prevalence)).astype(np.uint8)
    y[:, -1] |= y[:, 0]
    return y


def write_multilabel(root: Path, n: int = 80, *, shape: str = "columns", seed: int = 0):
    """Write ``root/train/*.png`` and ``root/train.csv`` with labels from :func:`label_matrix`.

    Args:
        root: Folder to create.
        n: Images.
        shape: ``columns`` (one 0/1 column per label) or ``sets`` (one ``tags`` column
            of ``|``-separated label names).
        seed: Seed of the labels and pixels.

    Returns:
        The image folder, the CSV and the label matrix (in CSV row order).
    """
    rng = np.random.default_rng(seed)
    y = label_matrix(n, seed, prevalence=(0.15, 0.3, 0.4, 0.5))
    img_dir = root / "train"
    img_dir.mkdir(parents=True)
    csv_path = root / "train.csv"
    with open(csv_path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", *LABELS] if shape == "columns" else ["id", "tags"])
        for i, row in enumerate(y):
            name = f"img{i:04d}.png"
            make_image(rng, int(row[0]), 16).save(img_dir / name)
            if shape == "columns":
                w.writerow([name, *map(int, row)])
            else:
                w.writerow([name, "|".join(lab for lab, on in zip(LABELS, row, strict=True) if on)])
    return img_dir, csv_path, y
