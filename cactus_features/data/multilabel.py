"""Multi-label tables: several 0/1 label columns, or one column of label sets.

Two CSV shapes give an ``[N, L]`` uint8 label matrix:

* several label columns (``--label-columns cat,dog,bird``), each holding ``0`` or
  ``1`` on every row; the label names are the column names, in the order given;
* one label column of label sets split at a separator (``--label-separator '|'``:
  ``cat|dog``; a space splits at any run of whitespace); the label names are the
  distinct labels, sorted (numbers numerically). An empty cell is an image with
  no label.

An image with no label is kept (a negative for every label) and counted in a
warning; a label on no image, or on every image, is refused.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cactus_features.data.classes import sorted_class_names
from cactus_features.errors import ConfigError, DataError


def label_columns(label_column: str | Sequence[str], separator: str | None) -> list[str]:
    """The label column names, checked against the separator option.

    Args:
        label_column: One column name, or several.
        separator: The label-set separator, or ``None``.

    Returns:
        The column names, stripped, in the order given.

    Raises:
        ConfigError: No or a blank column name, a name given twice, an empty
            separator, or a separator with several columns.
    """
    given = [label_column] if isinstance(label_column, str) else list(label_column)
    columns = [str(c).strip() for c in given]
    if not columns or not all(columns):
        raise ConfigError(
            f"--label-column {given!r}: a column name is empty; name the CSV label column(s)"
        )
    twice = sorted({c for c in columns if columns.count(c) > 1})
    if twice:
        raise ConfigError(
            f"--label-columns: {', '.join(map(repr, twice))} given twice; list each once"
        )
    if separator is not None:
        if separator == "":
            raise ConfigError("--label-separator '': give a separator such as '|' or ' '")
        if len(columns) > 1:
            raise ConfigError(
                f"--label-separator {separator!r} splits one label column, got {len(columns)} "
                f"({', '.join(columns)}); give one column, or drop the separator for 0/1 columns"
            )
    return columns


def parse_label_columns(
    values: list[list[str]], columns: list[str], ids: list[str], source: Path
) -> tuple[list[str], np.ndarray]:
    """The label matrix of several 0/1 columns.

    Args:
        values: Each row's stripped values of ``columns``.
        columns: The label column names (the label names).
        ids: Each row's image id (to name a bad row).
        source: The CSV (to name it in errors).

    Returns:
        The label names and the ``[N, L]`` uint8 matrix.

    Raises:
        DataError: A value that is not ``0`` or ``1`` (empty included).
    """
    raw = np.asarray(values, dtype=object).reshape(len(values), len(columns))
    for j, column in enumerate(columns):
        bad = np.flatnonzero((raw[:, j] != "0") & (raw[:, j] != "1"))
        if bad.size:
            value = raw[bad[0], j]
            shown = "an empty value" if value == "" else repr(value)
            raise DataError(
                f"{source}: column {column!r} has {bad.size} values that are not 0 or 1 "
                f"(first: {shown} for id {ids[bad[0]]!r}); a multi-label column holds 0 or 1 "
                "on every row"
            )
    return list(columns), (raw == "1").astype(np.uint8)


def parse_label_sets(
    cells: list[str], separator: str, column: str, source: Path
) -> tuple[list[str], np.ndarray]:
    """The label matrix of one column of label sets, e.g. ``cat|dog``.

    Args:
        cells: Each row's stripped cell.
        separator: What separates labels; whitespace splits at any run of whitespace.
        column: The column's name (for errors).
        source: The CSV (for errors).

    Returns:
        The label names (sorted, numbers numerically) and the ``[N, L]`` uint8 matrix.

    Raises:
        DataError: If no row holds any label.
    """
    split = separator.isspace()
    sets = [
        [p.strip() for p in (c.split() if split else c.split(separator)) if p.strip()]
        for c in cells
    ]
    names = sorted_class_names({p for s in sets for p in s})
    if not names:
        raise DataError(
            f"{source}: column {column!r} holds no labels on any row; "
            "check --label-column and --label-separator"
        )
    lookup = {c: n for n, c in enumerate(names)}
    matrix = np.zeros((len(cells), len(names)), dtype=np.uint8)
    for row, labels in enumerate(sets):
        matrix[row, [lookup[p] for p in labels]] = 1
    return names, matrix


def check_label_matrix(
    matrix: np.ndarray, names: list[str], ids: list[str], source: Path
) -> list[str]:
    """Refuse labels no head can learn; report images with no label.

    Args:
        matrix: The ``[N, L]`` 0/1 label matrix.
        names: The label names.
        ids: The image ids.
        source: The CSV (for messages).

    Returns:
        Warnings (images that carry no label).

    Raises:
        DataError: A label on no image, or on every image.
    """
    counts = matrix.sum(axis=0, dtype=np.int64)
    for name, count in zip(names, counts, strict=True):
        if count == 0 or count == len(matrix):
            where = "no image" if count == 0 else f"every image ({count})"
            raise DataError(
                f"{source}: label {name!r} is on {where}; a label needs images with and "
                "without it: drop it or add images"
            )
    empty = np.flatnonzero(matrix.sum(axis=1) == 0)
    if empty.size:
        return [
            f"{empty.size} images in {source.name} carry no label (first: {ids[empty[0]]!r}); "
            "they count as negatives for every label"
        ]
    return []


def label_matrix_sha256(matrix: np.ndarray) -> str:
    """SHA-256 of a label matrix's shape and 0/1 values (so a label edit changes it)."""
    m = np.ascontiguousarray(np.asarray(matrix, dtype=np.uint8))
    digest = hashlib.sha256(f"{m.shape[0]}x{m.shape[1]}\n".encode())
    digest.update(m.tobytes())
    return digest.hexdigest()


def label_spec(
    names: list[str], matrix: np.ndarray, source: dict
) -> dict[str, str | list[str] | None]:
    """What the labels of a multi-label table are, for its cache key.

    Args:
        names: The label names.
        matrix: The ``[N, L]`` label matrix.
        source: The table's :attr:`~cactus_features.data.table.ImageTable.source`.

    Returns:
        The label column(s), the separator, the label names and the matrix's SHA-256
        (the dataset fingerprint hashes one class per image, which multi-label data lacks).
    """
    column = source.get("label_column")
    return {
        "columns": [column] if isinstance(column, str) else list(column or []),
        "separator": source.get("label_separator"),
        "names": list(names),
        "matrix_sha256": label_matrix_sha256(matrix),
    }
