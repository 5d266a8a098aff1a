"""Re-checking cache files: format, completeness, checksum, finiteness, staleness.

The file's contents are checked by :mod:`cactus_features.store.verify`; this module
adds the checks against this library and the data: whether the entry was written
with the pre-processing this library applies (an entry written before it was
recorded in the key is never served again), and whether the dataset changed since
extraction.
"""

from __future__ import annotations

from pathlib import Path

from cactus_features.backbones.preprocessing import PREPROCESSING_VERSION, stale_reason
from cactus_features.data.multilabel import label_spec
from cactus_features.data.readers import read_dataset
from cactus_features.errors import UserError
from cactus_features.extract.scan import dataset_fingerprint
from cactus_features.store.verify import VerifyReport, check_contents


def verify_file(path: str | Path, *, check_dataset: bool = True) -> VerifyReport:
    """Verify one cache file.

    Checks the format version, the completion flag, that the arrays agree in
    length, the embeddings checksum, that every value is finite, that the entry's
    pre-processing is the one this library applies (else it is stale: never served
    again), and (when the data folder is still there) that the dataset has not
    changed since extraction.
    Nothing in the file is unpickled: HDF5 attributes are JSON text or scalars.

    Args:
        path: The ``.h5`` cache file.
        check_dataset: Re-read the dataset and compare its fingerprint.

    Returns:
        The report; never raises for a missing or damaged file.
    """
    report = VerifyReport(Path(path))
    found = check_contents(report)
    if found is None:
        return report
    reason = stale_reason(found[0])
    if reason is None:
        report.notes.append(f"preprocessing version {PREPROCESSING_VERSION}")
    else:
        report.fail(reason)
    if check_dataset:
        _check_stale(report, *found)
    return report


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
            label_separator=source.get("label_separator"),
            limit=source.get("limit"),
        )
        fp = dataset_fingerprint(table, key.get("fingerprint_mode", "content"))
        if "label_spec" in key and table.label_matrix is not None:
            labels = label_spec(table.class_names, table.label_matrix, table.source)
            if labels != key["label_spec"]:
                report.fail("stale: the labels changed since extraction; extract again")
                return
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
