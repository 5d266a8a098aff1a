"""scikit-learn's digits as a K-class folder set on disk: the offline multi-class demo.

:func:`make_digits_folders` writes the 1,797 8x8 greyscale digit images that ship
with scikit-learn (real scans, 10 classes, no download) as::

    root/
      train/<digit>/<nnnn>.png      labelled images, one folder per class
      test/<nnnn>.png               held-out images, unlabelled (their labels are in
                                    test_labels.csv, for checking a submission only)
      sample_submission.csv         id (in test id order)
      test_labels.csv               id,label of the held-out images
      digits.json                   manifest, written last (marks a complete folder)

``nnnn`` is the image's index in ``sklearn.datasets.load_digits()``. Pixel values
0..16 are scaled to 0..255 (rounded). The held-out share is stratified by class
with a seeded generator, so the same parameters always give the same files.
"""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from cactus_features.errors import ConfigError, DataError

MANIFEST_NAME = "digits.json"
"""File name of the manifest that marks a complete digits folder."""
FORMAT = "cactus-features/digits-folders"
FORMAT_VERSION = 1
"""Bumped whenever the written files change, so old folders are not reused."""
_OWNED = ("train", "test", "sample_submission.csv", "test_labels.csv", MANIFEST_NAME)
"""The entries this module writes; only these are replaced."""


@dataclass(frozen=True)
class DigitsFolders:
    """Where the digits folder set lies.

    Attributes:
        root: The dataset folder.
        train_dir: Class folders of the labelled images (``root/train``).
        test_dir: The held-out, unlabelled images (``root/test``).
        sample_submission: ``root/sample_submission.csv`` (the ``id`` column).
        test_labels: ``root/test_labels.csv`` (``id,label``), the held-out answers.
        class_names: ``"0"`` to ``"9"``.
        n_train: Labelled images.
        n_test: Held-out images.
    """

    root: Path
    train_dir: Path
    test_dir: Path
    sample_submission: Path
    test_labels: Path
    class_names: tuple[str, ...]
    n_train: int
    n_test: int

    def answers(self) -> dict[str, str]:
        """The held-out images' labels, ``{id: class name}``."""
        with self.test_labels.open(newline="") as fh:
            return {row["id"]: row["label"] for row in csv.DictReader(fh)}


def make_digits_folders(
    root: str | Path, *, test_share: float = 0.1, seed: int = 0
) -> DigitsFolders:
    """Write scikit-learn's digits as class folders plus a held-out test folder, or reuse them.

    Args:
        root: Dataset folder; created if missing.
        test_share: Share of each class held out as unlabelled test images, in ``[0, 0.5]``.
        seed: Seed of the held-out draw (non-negative).

    Returns:
        The paths and counts.

    Raises:
        ConfigError: ``test_share`` or ``seed`` out of range.
        DataError: ``root`` exists and is not a folder.
    """
    if not 0.0 <= test_share <= 0.5:
        raise ConfigError(f"test_share={test_share}: use a share between 0 and 0.5")
    if seed < 0:
        raise ConfigError(f"seed={seed}: use a non-negative seed")
    from sklearn.datasets import load_digits

    folder = Path(root)
    if folder.exists() and not folder.is_dir():
        raise DataError(f"{folder}: exists and is not a folder; give a folder for the digits")
    params = {"format": FORMAT, "version": FORMAT_VERSION, "test_share": test_share, "seed": seed}
    digits = load_digits()
    test = _held_out(digits.target, test_share, seed)
    dataset = _describe(folder, digits.target, test)
    manifest = folder / MANIFEST_NAME
    if manifest.is_file() and json.loads(manifest.read_text()) == params:
        return dataset
    for name in _OWNED:
        path = folder / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    dataset.test_dir.mkdir(parents=True)
    answers = []
    for n, (pixels, target) in enumerate(zip(digits.images, digits.target, strict=True)):
        grey = np.clip(np.rint(pixels * (255 / 16)), 0, 255).astype(np.uint8)
        if test[n]:
            out = dataset.test_dir / f"{n:04d}.png"
            answers.append((out.name, str(int(target))))
        else:
            out = dataset.train_dir / str(int(target)) / f"{n:04d}.png"
            out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(grey, "L").save(out)
    _write_rows(dataset.test_labels, ("id", "label"), answers)
    _write_rows(dataset.sample_submission, ("id",), [(i,) for i, _ in answers])
    manifest.write_text(json.dumps(params))
    return dataset


def _held_out(target: np.ndarray, share: float, seed: int) -> np.ndarray:
    """Mask of the held-out images: ``round(share * n_c)`` of each class, drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(target), dtype=bool)
    for c in np.unique(target):
        rows = np.flatnonzero(target == c)
        mask[rng.choice(rows, size=round(share * len(rows)), replace=False)] = True
    return mask


def _describe(folder: Path, target: np.ndarray, test: np.ndarray) -> DigitsFolders:
    return DigitsFolders(
        root=folder,
        train_dir=folder / "train",
        test_dir=folder / "test",
        sample_submission=folder / "sample_submission.csv",
        test_labels=folder / "test_labels.csv",
        class_names=tuple(str(c) for c in range(int(target.max()) + 1)),
        n_train=int((~test).sum()),
        n_test=int(test.sum()),
    )


def _write_rows(path: Path, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
