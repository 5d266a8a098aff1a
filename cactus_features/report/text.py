"""Plain-text summaries for the terminal: a comparison, or one run's metrics."""

from __future__ import annotations

from pathlib import Path

from cactus_features.metrics.core import METRIC_LABELS, METRIC_NAMES, METRIC_SHORT_LABELS
from cactus_features.metrics.results import Comparison, RunMetrics
from cactus_features.report.formatting import (
    efficiency_table,
    format_estimate,
    format_number,
    format_p,
    protocol_table,
    rule_description,
    table,
)

WITH_CI: frozenset[str] = frozenset({"roc_auc", "accuracy"})
"""Metrics shown with their interval in the terminal table (the others: value only)."""


def render_text(comparison: Comparison, report_path: Path | None = None) -> str:
    """Compact terminal summary: metrics at the primary rule, pairwise tests, efficiency.

    Args:
        comparison: The comparison.
        report_path: Where the report was written, if it was (named on the last line).

    Returns:
        The summary text.
    """
    c = comparison
    lines = _header(c)
    headers = ["Backbone", "Thr"] + [METRIC_SHORT_LABELS[m] for m in METRIC_NAMES]
    rows = [
        [r.backbone, f"{r.threshold:.3g}"]
        + [format_estimate(r.metrics[m], 3, ci=m in WITH_CI) for m in METRIC_NAMES]
        for r in c.rows()
    ]
    lines.append(table(headers, rows, markdown=False))
    lines += _pairwise(c)
    lines += ["", "Efficiency:", efficiency_table(c.efficiency, markdown=False)]
    if c.protocols:
        lines += ["", "Probe protocol:", protocol_table(c.protocols, markdown=False)]
    for note in c.notes:
        lines.append(f"note: {note}")
    if report_path is not None:
        lines += ["", f"Report written to {report_path}"]
    return "\n".join(lines)


def render_run_metrics(result: RunMetrics) -> str:
    """One run's confusion matrices and metrics at each rule, as plain text."""
    sizes = ", ".join(f"{k} {v}" for k, v in result.split_sizes.items())
    lines = [f"{result.label}  (predictions: {sizes}; evaluated on {result.split})"]
    width = max(len(METRIC_LABELS[m]) for m in METRIC_NAMES)
    for rule, res in result.results.items():
        desc = rule_description(rule, result.val_criterion).replace("each backbone's", "the")
        lines += ["", f"[{rule}] {desc}; applied threshold {res.threshold:.4g}"]
        lines.append(res.confusion.to_text())
        lines += [
            f"  {METRIC_LABELS[m]:<{width}}  {format_number(res.values[m], 4)}"
            for m in METRIC_NAMES
        ]
    lines += [f"note: {n}" for n in result.notes]
    return "\n".join(lines)


def _header(c: Comparison) -> list[str]:
    """The test set, the primary rule and the interval method."""
    return [
        f"Test set: {c.n_test} images ({int(c.test_is_pos.sum())} of class "
        f"'{c.positive_name}' = positive, {int((~c.test_is_pos).sum())} of class "
        f"'{c.negative_name}'); "
        f"{rule_description(c.primary_rule, c.val_criterion)}.",
        (
            f"[brackets]: {c.ci:.0%} paired bootstrap CI ({c.n_bootstrap} resamples, "
            f"seed {c.seed})."
            if c.n_bootstrap
            else "No bootstrap intervals (--bootstrap 0)."
        ),
        "",
    ]


def _pairwise(c: Comparison) -> list[str]:
    """AUC and accuracy differences at the primary rule, with their tests."""
    pairs = c.pairs()
    if not pairs:
        return []
    headers = ["A", "B", "ΔAUC", "DeLong p", "ΔAcc", "McNemar p"]
    rows = [
        [
            p.a,
            p.b,
            format_estimate(p.differences["roc_auc"]),
            format_p(p.delong.p_value),
            format_estimate(p.differences["accuracy"]),
            format_p(p.mcnemar.p_value),
        ]
        for p in pairs
    ]
    return ["", "Pairwise differences (A − B):", table(headers, rows, markdown=False, left=2)]
