"""Readers for the supported dataset layouts.

* Kaggle: an image folder plus a CSV with an id and a label column.
* Class folders: ``root/<class>/*.jpg``.
* Unlabelled: a flat folder of images (for prediction).

Every reader validates the table before any pixel is read, raising
:class:`~cactus_features.errors.DataError` with the file, the value and what to do.
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import numpy as np

from cactus_features.data.classes import sorted_class_names
from cactus_features.data.multilabel import (
    check_label_matrix,
    label_columns,
    parse_label_columns,
    parse_label_sets,
)
from cactus_features.data.table import ImageTable
from cactus_features.errors import DataError

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)
"""File suffixes (lower case) treated as images when a folder is listed."""


def read_dataset(
    data: str | Path,
    labels: str | Path | None = None,
    *,
    layout: str = "auto",
    id_column: str = "id",
    label_column: str | Sequence[str] = "has_cactus",
    label_separator: str | None = None,
    classes: list[str] | None = None,
    limit: int | None = None,
) -> ImageTable:
    """Read a dataset in any supported layout.

    Args:
        data: The image folder.
        labels: The label CSV (Kaggle layout). When ``None`` and ``layout`` is
            ``"auto"``, a folder whose sub-folders hold images is read as class
            folders, and a flat folder as unlabelled.
        layout: ``"auto"``, ``"kaggle"``, ``"folders"`` or ``"unlabelled"``.
        id_column: CSV column holding the image ids (file names relative to ``data``).
        label_column: CSV column holding the labels; several columns of 0/1 values
            (one per label) make a multi-label table.
        label_separator: Read the one label column as label sets split at this
            separator (e.g. ``"|"``; ``" "`` splits at any run of whitespace), which
            makes a multi-label table.
        classes: The expected class (or label) names; one outside them is an error.
        limit: Keep only the first ``limit`` rows (in id order), for quick tries.

    Returns:
        The validated image table.

    Raises:
        DataError: On any problem with the folder, the CSV or the ids.
    """
    root = Path(data)
    if not root.exists():
        raise DataError(f"{root}: data folder does not exist; pass the folder holding the images")
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; pass the folder holding the images")
    if layout == "auto":
        if labels is not None:
            layout = "kaggle"
        elif any(p.is_dir() and not p.name.startswith(".") for p in root.iterdir()):
            layout = "folders"
        else:
            layout = "unlabelled"
    if layout == "kaggle":
        if labels is None:
            raise DataError("the Kaggle layout needs a label CSV: pass --labels train.csv")
        table = read_kaggle(
            root,
            labels,
            id_column=id_column,
            label_column=label_column,
            label_separator=label_separator,
        )
    elif layout == "folders":
        table = read_class_folders(root)
    elif layout == "unlabelled":
        table = read_unlabelled(root)
    else:
        raise DataError(f"unknown layout {layout!r}; use auto, kaggle, folders or unlabelled")
    table.source = {
        "data": str(root.resolve()),
        "labels": str(Path(labels).resolve()) if labels is not None else None,
        "layout": layout,
        "id_column": id_column,
        "label_column": label_column if isinstance(label_column, str) else list(label_column),
        "limit": limit,
    }
    if label_separator is not None:
        table.source["label_separator"] = label_separator
    if classes is not None and table.labelled:
        expected = [str(c).strip() for c in classes if str(c).strip()]
        if not expected:
            raise DataError("--classes is empty; list the class names, e.g. --classes 0,1")
        unexpected = sorted(set(table.class_names) - set(expected))
        if unexpected:
            raise DataError(
                f"{labels or root}: labels {', '.join(map(repr, unexpected))} are outside the "
                f"expected classes {', '.join(expected)}; fix the labels or --classes"
            )
    if limit is not None:
        if limit < 1:
            raise DataError(f"--limit {limit}: must be a positive number of images")
        table = table.subset(np.arange(min(limit, len(table))))
    return table


def dataset_name(root: Path) -> str:
    """A short file-system-safe name for a data folder (``parent-name``)."""
    root = root.resolve()
    parts = [p for p in (root.parent.name, root.name) if p]
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(parts)) or "dataset"


def read_kaggle(
    root: Path,
    labels: str | Path,
    *,
    id_column: str = "id",
    label_column: str | Sequence[str] = "has_cactus",
    label_separator: str | None = None,
) -> ImageTable:
    """Read an image folder plus a CSV of ``id,label`` rows.

    One label column gives a binary or multi-class table (one class per image).
    Several label columns of 0/1 values, or one column of label sets split at
    ``label_separator``, give a multi-label table (see
    :mod:`cactus_features.data.multilabel`).

    Args:
        root: The image folder.
        labels: The CSV file.
        id_column: Name of the id column.
        label_column: Name of the label column, or the names of several 0/1 columns.
        label_separator: Separator of the label sets in the one label column.

    Returns:
        The table, rows in CSV order; files in the folder that no row names are
        listed in :attr:`ImageTable.warnings`.

    Raises:
        DataError: Missing or empty CSV, missing columns, duplicate ids, unsafe ids,
            ids with no file, a single class, or multi-label values that are not 0/1.
    """
    csv_path = Path(labels)
    columns = label_columns(label_column, label_separator)
    ids, values = _read_csv(csv_path, id_column, columns)
    multilabel = len(columns) > 1 or label_separator is not None
    if not multilabel:
        raw_labels = [v[0] for v in values]
        empty = [i for i, lab in zip(ids, raw_labels, strict=True) if lab == ""]
        if empty:
            raise DataError(
                f"{csv_path}: {len(empty)} rows have no {columns[0]!r} value "
                f"(first: {empty[0]!r}); fill them in or remove the rows"
            )
    _check_ids(ids, csv_path)
    paths = [root / i for i in ids]
    top = _top_level_files(root)  # one directory listing instead of a stat per image
    missing = [
        i
        for i, p in zip(ids, paths, strict=True)
        if not (_is_plain(i) and i in top) and not p.is_file()  # is_file: nested, other case
    ]
    if missing:
        raise DataError(
            f"{csv_path}: {len(missing)} ids have no file in {root} (first: {missing[0]!r}); "
            "check --data points at the image folder, or remove those rows"
        )
    listed = {_normal(i) for i in ids}
    extra = sorted(
        name
        for name in top
        if os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES and name not in listed
    )
    warnings = []
    if extra:
        warnings.append(
            f"{len(extra)} image files in {root} have no row in {csv_path.name} and are ignored "
            f"(first: {', '.join(extra[:5])})"
        )
    matrix = None
    if multilabel:
        if label_separator is None:
            class_names, matrix = parse_label_columns(values, columns, ids, csv_path)
        else:
            class_names, matrix = parse_label_sets(
                [v[0] for v in values], label_separator, columns[0], csv_path
            )
        warnings.extend(check_label_matrix(matrix, class_names, ids, csv_path))
        label_idx = np.full(len(ids), -1, dtype=np.int64)
    else:
        class_names, label_idx = _index_labels(raw_labels)
        _check_classes(class_names, label_idx, str(csv_path))
    return ImageTable(
        root=root,
        ids=np.asarray(ids, dtype=object),
        paths=paths,
        labels=label_idx,
        class_names=class_names,
        name=dataset_name(root),
        layout="kaggle",
        warnings=warnings,
        label_matrix=matrix,
    )


def _read_csv(
    csv_path: Path, id_column: str, columns: list[str]
) -> tuple[list[str], list[list[str]]]:
    """The stripped ids and label-column values of every row of a label CSV.

    Raises:
        DataError: Missing, unreadable or empty CSV, or a missing column.
    """
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: label CSV does not exist; pass the file with --labels")
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            # "id, has_cactus" (a space after the comma) still names the column has_cactus.
            header = [str(h).strip() for h in reader.fieldnames or []]
            reader.fieldnames = header
            wanted = [(id_column, "--id-column")] + [(c, "--label-column") for c in columns]
            for column, option in wanted:
                if column not in header:
                    raise DataError(
                        f"{csv_path}: no column {column!r} "
                        f"(columns: {', '.join(map(repr, header)) or 'none'}); "
                        f"name the right one with {option}"
                    )
            # A short row gives None for the missing fields: read those as empty.
            rows = [(r.get(id_column) or "", [r.get(c) or "" for c in columns]) for r in reader]
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{csv_path}: not UTF-8 text (byte {exc.start}); save the CSV as UTF-8"
        ) from None
    except csv.Error as exc:
        raise DataError(f"{csv_path}: not a readable CSV ({exc}); check the file") from None
    except OSError as exc:
        raise DataError(
            f"{csv_path}: cannot read the label CSV ({exc.strerror or exc}); check the file"
        ) from None
    if not rows:
        raise DataError(f"{csv_path}: no data rows; the CSV must list one image per row")
    ids = [str(i).strip() for i, _ in rows]
    values = [[str(v).strip() for v in vs] for _, vs in rows]
    return ids, values


def read_class_folders(root: Path) -> ImageTable:
    """Read ``root/<class>/<image>`` folders; the class names are the folder names.

    Raises:
        DataError: No class folders, empty class folders, or a single class.
    """
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DataError(f"{root}: no class sub-folders; use root/<class>/<image> or pass --labels")
    ids: list[str] = []
    paths: list[Path] = []
    raw: list[str] = []
    for d in class_dirs:
        files = _list_images(d)
        if not files:
            raise DataError(f"{d}: class folder holds no images; add images or remove the folder")
        for f in files:
            ids.append(f"{d.name}/{f.name}")
            paths.append(f)
            raw.append(d.name)
    class_names, label_idx = _index_labels(raw)
    _check_classes(class_names, label_idx, str(root))
    return ImageTable(
        root=root,
        ids=np.asarray(ids, dtype=object),
        paths=paths,
        labels=label_idx,
        class_names=class_names,
        name=dataset_name(root),
        layout="folders",
    )


def read_unlabelled(root: Path) -> ImageTable:
    """Read a flat folder of images with no labels (for prediction).

    Raises:
        DataError: If the folder holds no images.
    """
    files = _list_images(root)
    if not files:
        raise DataError(
            f"{root}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))}); "
            "check the folder"
        )
    return ImageTable(
        root=root,
        ids=np.asarray([f.name for f in files], dtype=object),
        paths=files,
        labels=np.full(len(files), -1, dtype=np.int64),
        class_names=[],
        name=dataset_name(root),
        layout="unlabelled",
    )


def _list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _is_plain(image_id: str) -> bool:
    """Whether an id is a bare file name (no folder, nothing to normalise): most are."""
    return not ("/" in image_id or "\\" in image_id or image_id.startswith(".") or not image_id)


def _normal(image_id: str) -> str:
    """The id as a normalised relative POSIX path (bare names as they are, quickly)."""
    return image_id if _is_plain(image_id) else str(PurePosixPath(image_id))


def _top_level_files(root: Path) -> set[str]:
    """Names of the files directly in ``root`` (one listing; symlinks followed)."""
    with os.scandir(root) as entries:
        return {e.name for e in entries if e.is_file()}


def _check_ids(ids: list[str], source: Path) -> None:
    blank = [n for n, i in enumerate(ids) if not i]
    if blank:
        raise DataError(
            f"{source}: row {blank[0] + 2} has an empty id; every row needs a file name"
        )
    # "a.jpg", "./a.jpg" and "sub//a.jpg" name the same file as "a.jpg"/"sub/a.jpg".
    normals = [_normal(i) for i in ids]
    normal = Counter(normals)
    dupes = [i for i, n in zip(ids, normals, strict=True) if normal[n] > 1]
    if dupes:
        n_files = len({_normal(i) for i in dupes})
        raise DataError(
            f"{source}: {n_files} ids appear more than once (first: {dupes[0]!r}); "
            "each image must be listed once"
        )
    for i in ids:
        if _is_plain(i):
            continue
        pure = PurePosixPath(i.replace("\\", "/"))
        if pure.is_absolute() or os.path.isabs(i) or ".." in pure.parts:
            raise DataError(
                f"{source}: id {i!r} is an absolute path or climbs out of the data folder; "
                "ids must be file names relative to --data"
            )


def _index_labels(raw: list[str]) -> tuple[list[str], np.ndarray]:
    """Map label strings to indices in sorted order (numeric labels sort numerically)."""
    class_names = sorted_class_names(set(raw))
    lookup = {c: n for n, c in enumerate(class_names)}
    return class_names, np.asarray([lookup[r] for r in raw], dtype=np.int64)


def _check_classes(class_names: list[str], labels: np.ndarray, source: str) -> None:
    if len(class_names) < 2:
        raise DataError(
            f"{source}: every image has the label {class_names[0]!r}; a classifier needs at least "
            "two classes (and a stratified split needs examples of each)"
        )
