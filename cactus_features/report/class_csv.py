"""The CSV tables of a K-class or multi-label report.

:data:`MULTICLASS_CSV_FILES` and :data:`MULTILABEL_CSV_FILES` map each file name to
its writer (the K-class counterparts of
:data:`~cactus_features.report.csv_files.CSV_FILES`); metric columns follow the
task's registries (:attr:`ClassComparison.metric_names`, ``per_class_names``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from cactus_features.metrics.class_results import ClassComparison
from cactus_features.metrics.multiclass import row_normalised
from cactus_features.metrics.results import Estimate
from cactus_features.report.csv_files import _write_csv, write_efficiency_csv

CORRECTNESS = {"multiclass": "top-1", "multilabel": "exact match"}
"""What McNemar's test counts as a correct image, by task."""


def _provenance(c: ClassComparison) -> list[Any]:
    return [c.ci, c.n_bootstrap, c.seed]


def _estimate_columns(names: list[str]) -> list[str]:
    return [col for m in names for col in (m, f"{m}_ci_low", f"{m}_ci_high")]


def _estimate_cells(estimates: dict[str, Estimate], names: list[str]) -> list[float]:
    return [v for m in names for v in (estimates[m].value, estimates[m].low, estimates[m].high)]


_PROVENANCE = ["ci_level", "n_bootstrap", "seed"]


def write_class_metrics_csv(c: ClassComparison, path: Path) -> None:
    """One row per backbone: every overall metric and its CI."""
    header = ["backbone", "backbone_name", "weights", "random_init", "run_file", "task"]
    header += ["n_test", "n_classes", *_estimate_columns(c.metric_names)]
    rows = []
    for b, r in zip(c.backbones, c.metrics, strict=True):
        row = [b.label, b.name, b.weights, b.random_init, b.path, c.task, c.n_test, c.n_classes]
        rows.append(row + _estimate_cells(r.metrics, c.metric_names) + _provenance(c))
    _write_csv(path, header + _PROVENANCE, rows)


def write_per_class_csv(c: ClassComparison, path: Path) -> None:
    """One row per backbone per class (label): support and per-class metrics with CIs."""
    header = ["backbone", "class_index", "class_name", "support"]
    header += _estimate_columns(c.per_class_names)
    rows = []
    for r in c.per_class:
        row: list[Any] = [r.backbone, r.class_index, r.class_name, r.support]
        rows.append(row + _estimate_cells(r.metrics, c.per_class_names) + _provenance(c))
    _write_csv(path, header + _PROVENANCE, rows)


def write_class_pairwise_csv(c: ClassComparison, path: Path) -> None:
    """One row per pair: differences ``a - b`` with CIs and p-values, and McNemar's test."""
    header = ["backbone_a", "backbone_b", "n_test"]
    for m in c.metric_names:
        header += [f"diff_{m}", f"diff_{m}_ci_low", f"diff_{m}_ci_high", f"diff_{m}_p"]
    header += [
        "mcnemar_correctness",
        "mcnemar_a_right_b_wrong",
        "mcnemar_a_wrong_b_right",
        "mcnemar_p",
    ]
    rows = []
    for p in c.pairwise:
        row: list[Any] = [p.a, p.b, c.n_test]
        for m in c.metric_names:
            e = p.differences[m]
            row += [e.value, e.low, e.high, p.p_values[m]]
        row += [CORRECTNESS[c.task], p.mcnemar.b, p.mcnemar.c, p.mcnemar.p_value]
        rows.append(row + _provenance(c))
    _write_csv(path, header + _PROVENANCE, rows)


def write_confusion_csv(c: ClassComparison, path: Path) -> None:
    """One row per backbone, true class and predicted class: count and share of the true class."""
    header = ["backbone", "true_class", "predicted_class", "count", "share_of_true_class"]
    rows = []
    for b in c.backbones:
        counts = c.confusion[b.label]
        share = row_normalised(counts)
        for i, true_name in enumerate(c.class_names):
            for j, predicted_name in enumerate(c.class_names):
                rows.append([b.label, true_name, predicted_name, int(counts[i, j]), share[i, j]])
    _write_csv(path, header, rows)


MULTICLASS_CSV_FILES: dict[str, Callable[[ClassComparison, Path], None]] = {
    "metrics.csv": write_class_metrics_csv,
    "per_class.csv": write_per_class_csv,
    "pairwise.csv": write_class_pairwise_csv,
    "confusion.csv": write_confusion_csv,
    "efficiency.csv": write_efficiency_csv,  # type: ignore[dict-item]
}
"""Every CSV table of a K-class report folder: file name -> writer."""

MULTILABEL_CSV_FILES: dict[str, Callable[[ClassComparison, Path], None]] = {
    name: write for name, write in MULTICLASS_CSV_FILES.items() if name != "confusion.csv"
}
"""Every CSV table of a multi-label report folder: file name -> writer."""
