"""Re-checking cache files: format, completeness, checksum, finiteness, staleness."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from cactus_features.data.readers import read_dataset
from cactus_features.errors import UserError
from cactus_features.extract.cache import EMBEDDINGS_KIND, RowBlocks, RowsSha256, key_hash
from cactus_features.extract.scan import dataset_fingerprint
from cactus_features.features import FORMAT_VERSION


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


def verify_file(path: str | Path, *, check_dataset: bool = True) -> VerifyReport:
    """Verify one cache file.

    Checks the format version, the completion flag, that the arrays agree in
    length, the embeddings checksum, that every value is finite, and (when the
    data folder is still there) that the dataset has not changed since extraction.
    Nothing in the file is unpickled: HDF5 attributes are JSON text or scalars.

    Args:
        path: The ``.h5`` cache file.
        check_dataset: Re-read the dataset and compare its fingerprint.

    Returns:
        The report; never raises for a missing or damaged file.
    """
    report = VerifyReport(Path(path))
    if not report.path.exists():
        report.fail("no such file; check the path (or run `cactus-features extract`)")
        return report
    if not report.path.is_file():
        report.fail("not a file; pass cache files (.h5), or --cache-dir for a folder")
        return report
    try:
        found = _check_file(report)
    except Exception as exc:  # a damaged file can fail in any h5py/json call
        text = (str(exc).splitlines() or [""])[0][:200]
        report.fail(
            f"damaged: cannot read the file ({type(exc).__name__}: {text}); "
            "delete it and extract again"
        )
        return report
    if found is not None and check_dataset:
        _check_stale(report, *found)
    return report


def _text_attr(attrs: h5py.AttributeManager, name: str) -> str:
    value = attrs[name]
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    return str(value)


def _check_file(report: VerifyReport) -> tuple[dict, dict | None] | None:
    """Check everything inside the file; return ``(key, source)`` when the file is sound."""
    try:
        f = h5py.File(report.path, "r")
    except OSError as exc:
        text = (str(exc).splitlines() or [""])[0][:200]
        report.fail(f"cannot open as HDF5 ({text}); delete it and extract again")
        return None
    with f:
        if f.attrs.get("kind") != EMBEDDINGS_KIND:
            report.fail("not a cactus-features cache file")
            return None
        version = int(f.attrs.get("format_version", 0))
        if version > FORMAT_VERSION:
            report.fail(
                f"format version {version} is newer than this library's ({FORMAT_VERSION}); "
                "upgrade cactus-features to read it"
            )
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
        key = json.loads(_text_attr(f.attrs, "key")) if "key" in f.attrs else None
        if not isinstance(key, dict):
            report.fail("damaged: no cache key recorded; delete it and extract again")
            return None
        recorded = str(f.attrs.get("key_hash", ""))
        if recorded and recorded != key_hash(key):
            report.fail(
                f"damaged: the key does not match its hash ({recorded} vs {key_hash(key)}); "
                "delete it and extract again"
            )
        source = json.loads(_text_attr(f.attrs, "source")) if "source" in f.attrs else None
    if not report.ok:
        return None
    return key, source if isinstance(source, dict) else None


def _check_stale(report: VerifyReport, key: dict, source: dict | None) -> None:
    if not source:
        report.notes.append("dataset not checked: no source recorded")
        return
    data = source.get("data")
    if not data or not Path(data).is_dir():
        report.notes.append(f"dataset not checked: {data} is not here")
        return
    try:
        table = read_dataset(
            data,
            source.get("labels"),
            layout=source.get("layout", "auto"),
            id_column=source.get("id_column", "id"),
            label_column=source.get("label_column", "has_cactus"),
            limit=source.get("limit"),
        )
        fp = dataset_fingerprint(table, key.get("fingerprint_mode", "content"))
    except UserError as exc:
        report.fail(f"stale: the dataset can no longer be read as extracted ({exc})")
        return
    except OSError as exc:  # an image vanished or became unreadable while hashing
        report.fail(
            f"stale: cannot read the dataset as extracted ({exc.strerror or exc}: "
            f"{exc.filename}); extract again"
        )
        return
    if fp != key.get("dataset_fingerprint"):
        report.fail(
            "stale: the dataset changed since extraction (fingerprint "
            f"{key.get('dataset_fingerprint', '')[:8]} -> {fp[:8]}); extract again"
        )
    else:
        report.notes.append("dataset unchanged")


def _scan_rows(embeddings: h5py.Dataset) -> tuple[str, np.ndarray]:
    """Checksum and per-row finiteness, reading one row block at a time."""
    digest, finite = RowsSha256(), []
    for block in RowBlocks.of(embeddings).read():
        digest.update(block)
        finite.append(np.isfinite(block).all(axis=1))
    n = embeddings.shape[0]
    return digest.hexdigest(), np.concatenate(finite) if finite else np.ones(n, bool)
