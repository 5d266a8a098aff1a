"""Plain-text summary of a K-class or multi-label comparison for the terminal."""

from __future__ import annotations

from pathlib import Path

from cactus_features.metrics.class_compare import metric_short_labels
from cactus_features.metrics.class_results import ClassComparison
from cactus_features.report.class_figures import MULTICLASS_DECISION, MULTILABEL_DECISION
from cactus_features.report.formatting import efficiency_table, format_estimate, format_p, table

WITH_CI: frozenset[str] = frozenset({"accuracy", "macro_roc_auc", "macro_map"})
"""Metrics shown with their interval in the terminal table (the others: value only)."""

TESTED: dict[str, tuple[str, str]] = {
    "multiclass": ("accuracy", "macro_roc_auc"),
    "multilabel": ("macro_map", "macro_roc_auc"),
}
"""The two differences shown in the terminal's pairwise table, by task."""


def render_class_text(c: ClassComparison, report_path: Path | None = None) -> str:
    """Compact terminal summary: overall metrics, pairwise tests, efficiency.

    Args:
        c: The comparison.
        report_path: Where the report was written, if it was (named on the last line).

    Returns:
        The summary text.
    """
    short = metric_short_labels(c.task)
    one = "label" if c.task == "multilabel" else "class"
    kind = "labels" if one == "label" else "classes"
    decision = MULTILABEL_DECISION if c.task == "multilabel" else MULTICLASS_DECISION
    lines = [
        f"Test set: {c.n_test} images, {c.task}, {c.n_classes} {kind}; {decision}.",
        (
            f"[brackets]: {c.ci:.0%} paired bootstrap CI ({c.n_bootstrap} resamples, "
            f"seed {c.seed})."
            if c.n_bootstrap
            else "No bootstrap intervals (--bootstrap 0)."
        ),
        "",
    ]
    headers = ["Backbone"] + [short[m] for m in c.metric_names]
    rows = [
        [r.backbone] + [format_estimate(r.metrics[m], 3, ci=m in WITH_CI) for m in c.metric_names]
        for r in c.metrics
    ]
    lines.append(table(headers, rows, markdown=False))
    if c.pairwise:
        first, second = TESTED[c.task]
        correctness = "exact match" if c.task == "multilabel" else "top-1"
        headers = [
            "A",
            "B",
            f"Δ{short[first]}",
            "p",
            f"Δ{short[second]}",
            "p",
            f"McNemar p ({correctness})",
        ]
        rows = [
            [
                p.a,
                p.b,
                format_estimate(p.differences[first]),
                format_p(p.p_values[first]),
                format_estimate(p.differences[second]),
                format_p(p.p_values[second]),
                format_p(p.mcnemar.p_value),
            ]
            for p in c.pairwise
        ]
        lines += [
            "",
            "Pairwise differences (A − B; p: paired bootstrap):",
            table(headers, rows, markdown=False, left=2),
        ]
    lines += ["", "Efficiency:", efficiency_table(c.efficiency, markdown=False)]
    lines += [f"note: {n}" for n in c.notes]
    if report_path is not None:
        lines += ["", f"Report written to {report_path} (per-{one} tables there)"]
    return "\n".join(lines)
