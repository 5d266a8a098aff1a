"""Re-checking cache files: format, completeness, checksum, finiteness, staleness."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from cactus_features.data.readers import read_dataset
from cactus_features.errors import UserError
from cactus_features.extract.cache import EMBEDDINGS_KIND, embeddings_checksum
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

    Checks the format version, the completion flag, the embeddings checksum,
    that every value is finite, and (when the data folder is still there)
    that the dataset has not changed since extraction.

    Args:
        path: The ``.h5`` cache file.
        check_dataset: Re-read the dataset and compare its fingerprint.

    Returns:
        The report; never raises for a damaged file.
    """
    report = VerifyReport(Path(path))
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        report.fail(f"cannot open as HDF5 ({exc}); delete it and extract again")
        return report
    with f:
        if f.attrs.get("kind") != EMBEDDINGS_KIND:
            report.fail("not a cactus-features cache file")
            return report
        version = int(f.attrs.get("format_version", 0))
        if version > FORMAT_VERSION:
            report.fail(f"format version {version} is newer than {FORMAT_VERSION}; upgrade")
            return report
        report.notes.append(f"format version {version}")
        if not bool(f.attrs.get("complete", False)):
            report.fail("extraction did not finish; re-run it to resume")
            return report
        try:
            emb = f["embeddings"][...]
            ids = f["ids"].asstr()[...]
        except (OSError, KeyError) as exc:
            report.fail(f"cannot read the arrays ({exc}); delete it and extract again")
            return report
        stored = str(f.attrs.get("embeddings_sha256", ""))
        if embeddings_checksum(emb) != stored:
            report.fail("embeddings checksum mismatch: the file is damaged; extract again")
        else:
            report.notes.append("checksum ok")
        finite = np.isfinite(emb).all(axis=1)
        if not finite.all():
            bad = [str(i) for i in np.asarray(ids)[~finite][:5]]
            report.fail(f"{int((~finite).sum())} rows are not finite (first ids: {', '.join(bad)})")
        key = json.loads(f.attrs["key"])
        source = json.loads(f.attrs["source"]) if "source" in f.attrs else None
    if check_dataset:
        _check_stale(report, key, source)
    return report


def _check_stale(report: VerifyReport, key: dict, source: dict | None) -> None:
    if not source:
        report.notes.append("dataset not checked: no source recorded")
        return
    if not Path(source["data"]).is_dir():
        report.notes.append(f"dataset not checked: {source['data']} is not here")
        return
    try:
        table = read_dataset(
            source["data"],
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
    if fp != key.get("dataset_fingerprint"):
        report.fail(
            "stale: the dataset changed since extraction (fingerprint "
            f"{key.get('dataset_fingerprint', '')[:8]} -> {fp[:8]}); extract again"
        )
    else:
        report.notes.append("dataset unchanged")
