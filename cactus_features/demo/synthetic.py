"""A synthetic stand-in for Kaggle's *Aerial Cactus Identification*, written to disk.

:func:`make_synthetic_aerial` writes the competition's layout exactly::

    root/
      train/<32 hex digits>.jpg     32x32 RGB JPEGs (quality 90, 4:2:0)
      train.csv                     id,has_cactus   (ids include ".jpg"; sorted)
      test/<32 hex digits>.jpg      unlabelled images of the same kind
      sample_submission.csv         id,has_cactus = 0.5, in test id order
      synthetic.json                manifest, written last (not part of Kaggle's layout)

so every command of the library can run on it with no download. The images come
from :func:`cactus_features.demo.render.render_aerial`; the same parameters give
byte-identical files (with the same numpy, scipy and Pillow builds).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cactus_features.demo.render import render_aerial
from cactus_features.errors import ConfigError, DataError

MANIFEST_NAME = "synthetic.json"
"""File name of the manifest that marks a complete synthetic dataset."""

FORMAT = "cactus-features/synthetic-aerial"
FORMAT_VERSION = 1
"""Bumped whenever the generator's output changes, so old folders are not reused."""

JPEG_QUALITY = 90
JPEG_SUBSAMPLING = 2  # 4:2:0, as in the Kaggle images
RENDER_CHUNK = 256
"""Images of 32x32 rendered per vectorised batch; fewer for larger sizes (same memory).
Fixed for a given size: part of what makes the output reproducible."""

_OWNED = ("train", "test", "train.csv", "sample_submission.csv")
"""The entries the generator writes (besides the manifest); ``overwrite`` removes only these."""


@dataclass(frozen=True)
class SyntheticDataset:
    """Where a synthetic dataset lies and what it holds.

    Attributes:
        root: The dataset folder.
        train_dir: Folder of the labelled images (``root/train``).
        labels_csv: ``root/train.csv`` (``id,has_cactus``).
        test_dir: Folder of the unlabelled images (``root/test``).
        sample_submission: ``root/sample_submission.csv``.
        manifest: ``root/synthetic.json``.
        n_train: Number of labelled images.
        n_test: Number of unlabelled images.
        n_positive: Labelled images with a cactus (``has_cactus`` = 1).
        reused: True when a complete dataset with the same parameters was
            already there and nothing was written.
    """

    root: Path
    train_dir: Path
    labels_csv: Path
    test_dir: Path
    sample_submission: Path
    manifest: Path
    n_train: int
    n_test: int
    n_positive: int
    reused: bool = False

    @property
    def n_negative(self) -> int:
        """Labelled images without a cactus."""
        return self.n_train - self.n_positive


def make_synthetic_aerial(
    root: str | Path,
    *,
    n_train: int = 2000,
    n_test: int = 400,
    positive_share: float = 0.75,
    size: int = 32,
    seed: int = 0,
    overwrite: bool = False,
) -> SyntheticDataset:
    """Write a synthetic aerial-cactus dataset in the Kaggle layout, or reuse one.

    Exactly ``round(positive_share * n_train)`` training images show cacti; the
    test images are drawn with the same share. If ``root`` already holds a
    complete dataset made with the same parameters (its manifest says so and the
    files are there), it is returned as is.

    Args:
        root: Dataset folder; created if missing.
        n_train: Labelled images (at least 2).
        n_test: Unlabelled images (0 or more).
        positive_share: Share of images with cacti, strictly between 0 and 1.
        size: Image side in pixels (at least 8).
        seed: Seed (non-negative); the same seed gives byte-identical files.
        overwrite: Replace whatever ``root`` holds under the names the generator
            writes (``train/``, ``test/``, ``train.csv``, ``sample_submission.csv``,
            ``synthetic.json``), even a matching dataset; other entries are kept.

    Returns:
        The paths and counts of the dataset.

    Raises:
        ConfigError: A parameter is out of range.
        DataError: ``root`` is not a folder, or holds something other than this
            dataset and ``overwrite`` is false.
    """
    params = _check_params(n_train, n_test, positive_share, size, seed)
    folder = Path(root)
    dataset = _describe(folder, params, reused=True)
    if not overwrite and _is_complete(dataset, params):
        return dataset
    _prepare_folder(dataset, params, overwrite=overwrite)
    id_seed, train_seed, test_seed, test_label_seed = np.random.SeedSequence(seed).spawn(4)
    train_ids, test_ids, labels = _draw_ids_and_labels(np.random.default_rng(id_seed), params)
    _write_images(dataset.train_dir, train_ids, labels, size=size, seed=train_seed)
    test_rng = np.random.default_rng(test_label_seed)
    test_labels = _shuffled_labels(test_rng, n_test, positive_share)
    _write_images(dataset.test_dir, test_ids, test_labels, size=size, seed=test_seed)
    order = np.argsort(train_ids)
    _write_csv(dataset.labels_csv, [(train_ids[i], int(labels[i])) for i in order])
    _write_csv(dataset.sample_submission, [(i, 0.5) for i in sorted(test_ids)])
    _write_manifest(dataset, params)
    return _describe(folder, params, reused=False)


def _check_params(
    n_train: int, n_test: int, positive_share: float, size: int, seed: int
) -> dict[str, Any]:
    """Validate the generator parameters and return them as a JSON-ready dict.

    Raises:
        ConfigError: On a value of the wrong type or out of range.
    """
    for name, value, low in (("n_train", n_train, 2), ("n_test", n_test, 0), ("size", size, 8)):
        if not _is_int(value) or value < low:
            raise ConfigError(f"{name}={value!r}: must be an integer of at least {low}")
    if not _is_int(seed) or seed < 0:
        raise ConfigError(f"seed={seed!r}: must be a non-negative integer")
    if not isinstance(positive_share, float | np.floating) or not 0.0 < positive_share < 1.0:
        raise ConfigError(f"positive_share={positive_share!r}: must be strictly between 0 and 1")
    n_positive = round(float(positive_share) * int(n_train))
    if not 0 < n_positive < n_train:
        raise ConfigError(
            f"positive_share={positive_share} of n_train={n_train} leaves a class empty; "
            "use more images or a share nearer 0.5"
        )
    return {
        "n_train": int(n_train),
        "n_test": int(n_test),
        "positive_share": float(positive_share),
        "size": int(size),
        "seed": int(seed),
    }


def _is_int(value: object) -> bool:
    """Whether ``value`` is an integer (not a bool)."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _describe(root: Path, params: dict[str, Any], *, reused: bool) -> SyntheticDataset:
    """The :class:`SyntheticDataset` for ``params`` at ``root``."""
    return SyntheticDataset(
        root=root,
        train_dir=root / "train",
        labels_csv=root / "train.csv",
        test_dir=root / "test",
        sample_submission=root / "sample_submission.csv",
        manifest=root / MANIFEST_NAME,
        n_train=params["n_train"],
        n_test=params["n_test"],
        n_positive=round(params["positive_share"] * params["n_train"]),
        reused=reused,
    )


def _manifest_body(dataset: SyntheticDataset, params: dict[str, Any]) -> dict[str, Any]:
    """What the manifest of a complete dataset says (checksums of both CSVs included)."""
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "params": params,
        "counts": {
            "train": dataset.n_train,
            "test": dataset.n_test,
            "positive": dataset.n_positive,
        },
        "sha256": {
            p.name: _sha256(p) if p.is_file() else None
            for p in (dataset.labels_csv, dataset.sample_submission)
        },
    }


def _is_complete(dataset: SyntheticDataset, params: dict[str, Any]) -> bool:
    """Whether ``dataset.root`` holds a complete dataset made with ``params``."""
    try:
        found = json.loads(dataset.manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        found == _manifest_body(dataset, params)
        and _count_jpegs(dataset.train_dir) == dataset.n_train
        and _count_jpegs(dataset.test_dir) == dataset.n_test
    )


def _count_jpegs(folder: Path) -> int:
    """Number of ``*.jpg`` files in ``folder`` (-1 when it is not a folder)."""
    if not folder.is_dir():
        return -1
    return sum(1 for p in folder.iterdir() if p.suffix == ".jpg" and p.is_file())


def _prepare_folder(dataset: SyntheticDataset, params: dict[str, Any], *, overwrite: bool) -> None:
    """Make the dataset folder ready for writing: create it, or clear the generator's entries.

    Raises:
        DataError: The folder is not a folder, or is not empty and ``overwrite`` is false.
    """
    root = dataset.root
    if root.exists() and not root.is_dir():
        raise DataError(f"{root}: exists and is not a folder; choose another place for the demo")
    if root.is_dir() and any(root.iterdir()):
        if not overwrite:
            raise DataError(
                f"{root}: {_contents(dataset, params)}; choose an empty folder, or replace it "
                "with overwrite=True"
            )
        for name in (MANIFEST_NAME, *_OWNED):
            _remove(root / name)
    root.mkdir(parents=True, exist_ok=True)


def _contents(dataset: SyntheticDataset, params: dict[str, Any]) -> str:
    """Say what a non-empty folder holds instead of the requested dataset."""
    try:
        found = json.loads(dataset.manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "not empty and holds no synthetic dataset (or an unfinished one)"
    if not isinstance(found, dict) or found.get("format") != FORMAT:
        return f"{MANIFEST_NAME} is not a synthetic-dataset manifest"
    if found.get("version") != FORMAT_VERSION:
        return f"holds a synthetic dataset of generator version {found.get('version')!r}"
    found_params = found.get("params")
    if found_params != params:
        shown = json.dumps(found_params, sort_keys=True)
        return f"holds a synthetic dataset made with other parameters {shown}"
    return "holds a synthetic dataset with missing or changed files"


def _remove(path: Path) -> None:
    """Delete a file or folder tree if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _shuffled_labels(rng: np.random.Generator, n: int, positive_share: float) -> np.ndarray:
    """``n`` labels, exactly ``round(positive_share * n)`` of them 1, in random order."""
    labels = np.zeros(n, dtype=np.int64)
    labels[: round(positive_share * n)] = 1
    return rng.permutation(labels)


def _draw_ids_and_labels(
    rng: np.random.Generator, params: dict[str, Any]
) -> tuple[list[str], list[str], np.ndarray]:
    """Unique random file names for train and test, and the training labels.

    Returns:
        ``(train_ids, test_ids, train_labels)``; ids are ``<32 hex digits>.jpg``.
    """
    seen: set[str] = set()
    ids: list[str] = []
    while len(ids) < params["n_train"] + params["n_test"]:
        name = rng.bytes(16).hex() + ".jpg"
        if name not in seen:
            seen.add(name)
            ids.append(name)
    labels = _shuffled_labels(rng, params["n_train"], params["positive_share"])
    return ids[: params["n_train"]], ids[params["n_train"] :], labels


def _write_images(
    folder: Path, ids: list[str], labels: np.ndarray, *, size: int, seed: np.random.SeedSequence
) -> None:
    """Render and save one JPEG per id, in fixed-size batches with their own seeds."""
    folder.mkdir(parents=True, exist_ok=True)
    chunk = max(1, RENDER_CHUNK * 32 * 32 // (size * size))
    starts = range(0, len(ids), chunk)
    for start, chunk_seed in zip(starts, seed.spawn(len(starts)), strict=True):
        stop = start + chunk
        pixels = render_aerial(labels[start:stop], size=size, rng=np.random.default_rng(chunk_seed))
        for name, image in zip(ids[start:stop], pixels, strict=True):
            Image.fromarray(image, "RGB").save(
                folder / name, format="JPEG", quality=JPEG_QUALITY, subsampling=JPEG_SUBSAMPLING
            )


def _write_csv(path: Path, rows: list[tuple[str, int | float]]) -> None:
    """Write ``id,has_cactus`` rows (LF line ends, like Kaggle's files)."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["id", "has_cactus"])
        writer.writerows(rows)


def _sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_manifest(dataset: SyntheticDataset, params: dict[str, Any]) -> None:
    """Write the manifest atomically (temporary file, then rename): the last step."""
    text = json.dumps(_manifest_body(dataset, params), indent=2, sort_keys=True) + "\n"
    tmp = dataset.manifest.with_name(f".{MANIFEST_NAME}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, dataset.manifest)
