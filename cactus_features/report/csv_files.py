"""The CSV tables of a report: metrics, pairwise differences and efficiency.

:data:`CSV_FILES` maps each file name to its writer; a new table is one
writer added there. Metric columns follow :data:`~cactus_features.metrics.core.METRICS`.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cactus_features.metrics.core import METRIC_NAMES
from cactus_features.metrics.results import Comparison

EFFICIENCY_COLUMNS: tuple[str, ...] = (
    "backbone",
    "weights",
    "params",
    "gflops",
    "resolution",
    "images_per_second",
    "extract_seconds",
    "train_seconds",
    "dim",
    "epochs_run",
    "best_epoch",
    "one_off_seconds",
)
"""Columns of ``efficiency.csv``: attributes of an ``EfficiencyRow``, in order."""


def write_metrics_csv(comparison: Comparison, path: Path) -> None:
    """One row per backbone per threshold rule: counts, every metric and its CI."""
    backbones = {b.label: b for b in comparison.backbones}
    header = [
        "backbone",
        "backbone_name",
        "weights",
        "random_init",
        "run_file",
        "rule",
        "threshold",
        "val_criterion",
        "positive_class",
        "n_test",
        "tp",
        "fp",
        "tn",
        "fn",
    ]
    for m in METRIC_NAMES:
        header += [m, f"{m}_ci_low", f"{m}_ci_high"]
    header += ["ci_level", "n_bootstrap", "seed"]
    rows = []
    for r in comparison.metrics:
        b = backbones[r.backbone]
        cm = r.confusion
        row = [
            r.backbone,
            b.name,
            b.weights,
            b.random_init,
            b.path,
            r.rule,
            r.threshold,
            comparison.val_criterion if r.rule == "val" else None,
            comparison.positive_name,
            cm.n,
            cm.tp,
            cm.fp,
            cm.tn,
            cm.fn,
        ]
        for m in METRIC_NAMES:
            e = r.metrics[m]
            row += [e.value, e.low, e.high]
        row += [comparison.ci, comparison.n_bootstrap, comparison.seed]
        rows.append(row)
    _write_csv(path, header, rows)


def write_pairwise_csv(comparison: Comparison, path: Path) -> None:
    """One row per pair per rule: differences ``a - b`` with CIs, DeLong and McNemar."""
    header = ["rule", "backbone_a", "backbone_b", "positive_class", "n_test"]
    for m in METRIC_NAMES:
        header += [f"diff_{m}", f"diff_{m}_ci_low", f"diff_{m}_ci_high"]
    header += [
        "auc_a",
        "auc_b",
        "delong_se",
        "delong_z",
        "delong_p",
        "mcnemar_a_right_b_wrong",
        "mcnemar_a_wrong_b_right",
        "mcnemar_p",
        "ci_level",
        "n_bootstrap",
        "seed",
    ]
    rows = []
    for r in comparison.pairwise:
        row: list[Any] = [r.rule, r.a, r.b, comparison.positive_name, comparison.n_test]
        for m in METRIC_NAMES:
            e = r.differences[m]
            row += [e.value, e.low, e.high]
        d = r.delong
        row += [
            d.auc_a,
            d.auc_b,
            d.std_error,
            d.z,
            d.p_value,
            r.mcnemar.b,
            r.mcnemar.c,
            r.mcnemar.p_value,
            comparison.ci,
            comparison.n_bootstrap,
            comparison.seed,
        ]
        rows.append(row)
    _write_csv(path, header, rows)


def write_efficiency_csv(comparison: Comparison, path: Path) -> None:
    """One row per backbone with the recorded cost figures (empty when absent)."""
    rows = [[getattr(e, h) for h in EFFICIENCY_COLUMNS] for e in comparison.efficiency]
    _write_csv(path, list(EFFICIENCY_COLUMNS), rows)


CSV_FILES: dict[str, Callable[[Comparison, Path], None]] = {
    "metrics.csv": write_metrics_csv,
    "pairwise.csv": write_pairwise_csv,
    "efficiency.csv": write_efficiency_csv,
}
"""Every CSV table of a report folder: file name -> writer."""


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float) and not math.isfinite(v):
        return ""
    if isinstance(v, Path):
        return str(v)
    return v


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in rows:
            writer.writerow([_csv_value(v) for v in row])
