"""Re-checking the contents of an embeddings file: format, completeness, checksum, finiteness.

Run files (format 1 or 2) are checked too: shapes, split codes, labels, probabilities.

Whether the dataset changed since extraction is checked by
:mod:`cactus_features.extract.verify`, which calls :func:`check_contents` first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from cactus_features.data.classes import MULTILABEL
from cactus_features.errors import CacheError
from cactus_features.store.format import EMBEDDINGS, RUN, check_version, key_hash, text_attr
from cactus_features.store.rows import RowBlocks, RowsSha256
from cactus_features.store.runs import load_run


@dataclass
class VerifyReport:
    """The outcome of verifying one cache file.

    Attributes:
        path: The file.
        ok: No problem found (a stale dataset counts as a problem).
        problems: What is wrong, one line each.
        notes: What was checked and passed, or could not be checked.
    """

    path: Path
    ok: bool = True
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        """Record a problem."""
        self.ok = False
        self.problems.append(message)


def check_contents(report: VerifyReport) -> tuple[dict, dict | None] | None:
    """Check everything inside ``report.path``, recording problems and notes in ``report``.

    Nothing in the file is unpickled: HDF5 attributes are JSON text or scalars.

    Args:
        report: The report of the file to check; filled in place.

    Returns:
        ``(key, source)`` when the file is sound, else ``None``; never raises for a
        missing or damaged file.
    """
    if not report.path.exists():
        report.fail("no such file; check the path (or run `cactus-features extract`)")
        return None
    if not report.path.is_file():
        report.fail("not a file; pass cache files (.h5), or --cache-dir for a folder")
        return None
    try:
        return _check_file(report)
    except Exception as exc:  # a damaged file can fail in any h5py/json call
        text = (str(exc).splitlines() or [""])[0][:200]
        report.fail(
            f"damaged: cannot read the file ({type(exc).__name__}: {text}); "
            "delete it and extract again"
        )
        return None


def _check_file(report: VerifyReport) -> tuple[dict, dict | None] | None:
    """Check everything inside the file; return ``(key, source)`` when the file is sound."""
    try:
        f = h5py.File(report.path, "r")
    except OSError as exc:
        text = (str(exc).splitlines() or [""])[0][:200]
        report.fail(f"cannot open as HDF5 ({text}); delete it and extract again")
        return None
    with f:
        if f.attrs.get("kind") == RUN.kind:
            version = check_version(f.attrs, RUN)
            f.close()
            _check_run(report, version)
            return None
        try:
            version = check_version(f.attrs, EMBEDDINGS)
        except CacheError as exc:
            report.fail(str(exc))
            return None
        report.notes.append(f"format version {version}")
        if not bool(f.attrs.get("complete", False)):
            report.fail("extraction did not finish; re-run it to resume")
            return None
        missing = [n for n in ("embeddings", "ids", "labels", "split") if n not in f]
        if missing:
            report.fail(f"damaged: no {', '.join(missing)} array; delete it and extract again")
            return None
        try:
            emb = f["embeddings"]
            ids = np.asarray(f["ids"].asstr()[...], dtype=object)
            n_labels = f["labels"].shape[0] if f["labels"].ndim == 1 else -1
            n_split = f["split"].shape[0] if f["split"].ndim == 1 else -1
        except (OSError, KeyError, ValueError, TypeError) as exc:
            report.fail(f"cannot read the arrays ({exc}); delete it and extract again")
            return None
        if not isinstance(emb, h5py.Dataset) or emb.ndim != 2 or emb.dtype.kind != "f":
            report.fail(
                f"damaged: embeddings are {emb.dtype} of shape {emb.shape}, not a float "
                "[N, D] matrix; delete it and extract again"
            )
            return None
        lengths = {
            "embeddings": emb.shape[0],
            "ids": len(ids),
            "labels": n_labels,
            "split": n_split,
        }
        if "label_matrix" in f:
            lengths["label_matrix"] = _check_label_matrix(report, f)
        if len(set(lengths.values())) != 1:
            shown = ", ".join(f"{k} {v}" for k, v in lengths.items())
            report.fail(f"damaged: the arrays disagree in length ({shown}); extract again")
        stored = str(f.attrs.get("embeddings_sha256", ""))
        try:
            checksum, finite = _scan_rows(emb)
        except (OSError, ValueError) as exc:
            report.fail(f"cannot read the embeddings ({exc}); delete it and extract again")
            return None
        if checksum != stored:
            report.fail("embeddings checksum mismatch: the file is damaged; extract again")
        else:
            report.notes.append("checksum ok")
        if not finite.all() and len(ids) == len(finite):
            bad = [str(i) for i in ids[~finite][:5]]
            report.fail(
                f"{int((~finite).sum())} rows are not finite (NaN/inf), first ids: {', '.join(bad)}"
            )
        elif not finite.all():
            report.fail(f"{int((~finite).sum())} rows are not finite (NaN/inf)")
        key = json.loads(text_attr(f.attrs, "key")) if "key" in f.attrs else None
        if not isinstance(key, dict):
            report.fail("damaged: no cache key recorded; delete it and extract again")
            return None
        recorded = str(f.attrs.get("key_hash", ""))
        if recorded and recorded != key_hash(key):
            report.fail(
                f"damaged: the key does not match its hash ({recorded} vs {key_hash(key)}); "
                "delete it and extract again"
            )
        source = json.loads(text_attr(f.attrs, "source")) if "source" in f.attrs else None
    if not report.ok:
        return None
    return key, source if isinstance(source, dict) else None


def _check_run(report: VerifyReport, version: int) -> None:
    """Check a run file (format 1 or 2): shapes, split codes, labels and probabilities."""
    run = load_run(report.path)
    p = run.predictions
    proba = p.proba
    k = proba.shape[1]
    report.notes.append(f"run format version {version} ({p.task}, {k} classes)")
    if len(set(map(str, p.ids))) != len(p.ids):
        report.fail("damaged: an image id appears twice in the predictions; train again")
    if not np.isin(p.split, (0, 1, 2)).all():
        report.fail("damaged: split codes other than 0, 1, 2; train again")
    if not np.isfinite(proba).all() or (proba < 0).any() or (proba > 1).any():
        report.fail("damaged: probabilities outside [0, 1] or not finite; train again")
    elif p.task != MULTILABEL and not np.allclose(proba.sum(axis=1), 1.0, atol=1e-6):
        report.fail("damaged: class probabilities do not sum to 1; train again")
    labels = np.asarray(p.label)
    valid = np.isin(labels, (0, 1)) if p.task == MULTILABEL else (labels >= 0) & (labels < k)
    if not valid.all():
        report.fail(f"damaged: labels outside the {k} classes; train again")
    if report.ok:
        report.notes.append(f"{len(p.ids)} predictions ok")


def _check_label_matrix(report: VerifyReport, f: h5py.File) -> int:
    """Check a multi-label file's ``[N, L]`` 0/1 label matrix; return its length ``N``."""
    matrix = f["label_matrix"]
    names = json.loads(text_attr(f.attrs, "class_names")) if "class_names" in f.attrs else []
    if not isinstance(matrix, h5py.Dataset) or matrix.ndim != 2 or matrix.shape[1] != len(names):
        report.fail(
            f"damaged: the label matrix of shape {matrix.shape} does not fit {len(names)} "
            "label names; delete it and extract again"
        )
        return -1
    values = np.asarray(matrix[...])
    if values.size and not np.isin(values, (0, 1)).all():
        report.fail("damaged: the label matrix holds values other than 0 and 1; extract again")
    else:
        report.notes.append(f"{len(names)} labels (multi-label)")
    return int(matrix.shape[0])


def _scan_rows(embeddings: h5py.Dataset) -> tuple[str, np.ndarray]:
    """Checksum and per-row finiteness, reading one row block at a time."""
    digest, finite = RowsSha256(), []
    for block in RowBlocks.of(embeddings).read():
        digest.update(block)
        finite.append(np.isfinite(block).all(axis=1))
    n = embeddings.shape[0]
    return digest.hexdigest(), np.concatenate(finite) if finite else np.ones(n, bool)
