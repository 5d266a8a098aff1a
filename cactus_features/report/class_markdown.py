"""``report.md`` of a K-class or multi-label comparison, one function per section.

:data:`MULTICLASS_SECTIONS` and :data:`MULTILABEL_SECTIONS` list the sections in
report order (the K-class counterparts of
:data:`~cactus_features.report.markdown.SECTIONS`, whose task-independent sections
they share: title, runs, efficiency); a new section is one function
``(comparison, figures) -> lines`` added there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from cactus_features.metrics.class_compare import metric_labels, per_class_labels
from cactus_features.metrics.class_results import ClassComparison, ClassPairwiseRow
from cactus_features.report.class_figures import (
    MULTICLASS_DECISION,
    MULTICLASS_FIGURE_SPECS,
    MULTILABEL_DECISION,
    MULTILABEL_FIGURE_SPECS,
)
from cactus_features.report.formatting import format_estimate, format_p, md_escape, table
from cactus_features.report.markdown import (
    efficiency_section,
    figure_links,
    runs_section,
    title_section,
)

ClassSection = Callable[[ClassComparison, Mapping[str, str]], list[str]]
"""A report section: the comparison and ``{figure: file name}`` -> Markdown lines.

The shared sections (title, runs, efficiency) take a binary ``Comparison`` in their
signature and read only what both kinds of comparison have (backbones, efficiency).
"""

MAX_CONFUSION_TABLE = 12
"""Largest K whose confusion matrices are also written as Markdown tables."""


def render_class_markdown(c: ClassComparison, figures: Mapping[str, str] | None = None) -> str:
    """The full K-class (or multi-label) report as Markdown.

    Args:
        c: The comparison.
        figures: ``{figure: file name}`` of figures written next to the report.

    Returns:
        Markdown text.
    """
    sections = MULTILABEL_SECTIONS if c.task == "multilabel" else MULTICLASS_SECTIONS
    lines: list[str] = []
    for section in sections:
        lines += section(c, figures or {})
    return "\n".join(lines)


def class_setup_section(c: ClassComparison, figures: Mapping[str, str]) -> list[str]:
    """Task, classes, test set, decision rule, intervals, tests, averaging and notes."""
    multilabel = c.task == "multilabel"
    one = "label" if multilabel else "class"
    kind = f"{one}es" if one == "class" else f"{one}s"
    support = c.support
    names = ", ".join(f"`{md_escape(n)}`" for n in c.class_names)
    lines = [
        "",
        "## Setup",
        "",
        f"- **Task:** {c.task}, {c.n_classes} {kind}: {names}.",
        f"- **Test set:** {c.n_test} images, the same image ids for every backbone (aligned by "
        f"id); {'positives' if multilabel else 'images'} per {one}: "
        f"{int(support.min())} to {int(support.max())} (per-{one} table below).",
        f"- **Decision:** {MULTILABEL_DECISION if multilabel else MULTICLASS_DECISION}.",
    ]
    if c.n_bootstrap:
        lines.append(
            f"- **Confidence intervals:** {c.ci:.0%} percentile bootstrap, {c.n_bootstrap} "
            f"resamples of the test set with replacement (seed {c.seed}), shared by all "
            "backbones, so intervals of differences are paired. They cover test-set sampling "
            "only, not the variability of head training."
        )
        if c.degenerate_resamples:
            lines.append(
                f"  {c.degenerate_resamples} resample(s) lacked a {one} of the test set; "
                f"macro averages on them average the {kind} that remain."
            )
    else:
        lines.append("- **Confidence intervals:** none (bootstrap disabled).")
    correctness = "exact match (every label right at 0.5)" if multilabel else "top-1 correctness"
    tested = "macro mAP, macro ROC AUC" if multilabel else "macro one-vs-rest ROC AUC"
    lines += [
        f"- **Tests:** McNemar's exact test on per-image {correctness}. Every difference "
        f"(including {tested}) also gets a two-sided paired-bootstrap p-value: the smallest α "
        "at which the percentile interval of the difference excludes 0, "
        "2·min(#{Δ* ≤ 0} + 1, #{Δ* ≥ 0} + 1) / (B + 1), so never below 2 / (B + 1). The "
        "bootstrap resamples images, so "
        f"the correlation between the {kind}' one-vs-rest AUCs is kept (a per-class DeLong "
        "test would need their covariances). p-values are not corrected for multiple "
        "comparisons.",
    ]
    if multilabel:
        lines.append(
            "- Macro mAP and macro ROC AUC average the labels that occur in the test set (and, "
            "for AUC, are absent somewhere); micro mAP pools all (image, label) pairs. "
            "Average precision is scikit-learn's (sum of precision x recall gained)."
        )
    else:
        lines.append(
            "- Balanced accuracy (mean recall) and macro ROC AUC average the classes present in "
            "the test set; macro F1 the classes present or predicted (scikit-learn's rule); "
            "weighted F1 weights each class by its support. Precision is 0 for a class never "
            "predicted. Log loss is the mean of −log p(true class). Top-5 accuracy is shown "
            "for more than 5 classes."
        )
    lines.append("- Backbones marked *(random init)* use randomly initialised, untrained weights.")
    return lines + [f"- Note: {n}" for n in c.notes]


def class_metrics_section(c: ClassComparison, figures: Mapping[str, str]) -> list[str]:
    """Every overall metric of every backbone, with its interval."""
    labels = metric_labels(c.task)
    headers = ["Backbone"] + [labels[m] for m in c.metric_names]
    rows = [
        [r.backbone] + [format_estimate(r.metrics[m]) for m in c.metric_names] for r in c.metrics
    ]
    return [
        "",
        "## Test metrics",
        "",
        f"Point estimate [{c.ci:.0%} CI]." if c.n_bootstrap else "Point estimates.",
        "",
        table(headers, rows, markdown=True),
    ]


def per_class_section(c: ClassComparison, figures: Mapping[str, str]) -> list[str]:
    """Support and every per-class metric of each class, one table per backbone."""
    kind = "label" if c.task == "multilabel" else "class"
    labels = per_class_labels(c.task)
    headers = [kind.capitalize(), "Positives" if kind == "label" else "Support"]
    headers += [labels[m] for m in c.per_class_names]
    lines = [
        "",
        f"## Per-{kind} metrics",
        "",
        f"Point estimate [{c.ci:.0%} CI] per {kind}; — where undefined "
        f"(a {kind} absent from the test set). All values are in `per_class.csv`.",
    ]
    for b in c.backbones:
        rows = [
            [r.class_name, str(r.support)]
            + [format_estimate(r.metrics[m]) for m in c.per_class_names]
            for r in c.classes_of(b.label)
        ]
        lines += ["", f"**{md_escape(b.label)}**", "", table(headers, rows, markdown=True)]
    return lines


def class_confusion_section(c: ClassComparison, figures: Mapping[str, str]) -> list[str]:
    """Each backbone's K x K confusion counts (as tables up to :data:`MAX_CONFUSION_TABLE`)."""
    lines = [
        "",
        "## Confusion matrices",
        "",
        f"Rows: true class; columns: predicted class ({MULTICLASS_DECISION}). Every count is "
        "in `confusion.csv`"
        + (", drawn in `confusion_matrices.png`." if "class_confusion" in figures else "."),
    ]
    if c.n_classes > MAX_CONFUSION_TABLE:
        too_wide = f"With {c.n_classes} classes the matrices are too wide for a table."
        return [*lines, "", too_wide]
    for b in c.backbones:
        cm = c.confusion[b.label]
        rows = [[c.class_names[i], *(str(int(v)) for v in cm[i])] for i in range(c.n_classes)]
        lines += [
            "",
            f"**{md_escape(b.label)}**",
            "",
            table(["true \\ predicted", *c.class_names], rows, markdown=True),
        ]
    return lines


def class_pairwise_section(c: ClassComparison, figures: Mapping[str, str]) -> list[str]:
    """Differences of each pair with their paired-bootstrap p-values and McNemar's test."""
    if not c.pairwise:
        return []
    labels = metric_labels(c.task)
    correctness = "exact match" if c.task == "multilabel" else "top-1"
    headers = ["A", "B", f"McNemar b/c ({correctness})", "McNemar p"]
    headers += [f"Δ {labels[m]}" for m in c.metric_names]
    rows = [_pair_cells(p, c.metric_names) for p in c.pairwise]
    return [
        "",
        "## Pairwise differences (A − B)",
        "",
        f"Differences with paired {c.ci:.0%} bootstrap CIs and, in parentheses, the paired-"
        "bootstrap p-value. McNemar counts: b = A right and B wrong, c = A wrong and B right. "
        "All values are in `pairwise.csv`."
        if c.n_bootstrap
        else "Differences (no bootstrap: no intervals or bootstrap p-values). McNemar counts: "
        "b = A right and B wrong, c = A wrong and B right.",
        "",
        table(headers, rows, markdown=True),
    ]


def class_figure_links_section(c: ClassComparison, figures: Mapping[str, str]) -> list[str]:
    """The figures written next to the report, with captions."""
    specs = MULTILABEL_FIGURE_SPECS if c.task == "multilabel" else MULTICLASS_FIGURE_SPECS
    return figure_links(figures, {k: s.caption for k, s in specs.items()})


def class_files_section(c: ClassComparison, figures: Mapping[str, str]) -> list[str]:
    """What the CSV files next to the report hold."""
    kind = "label" if c.task == "multilabel" else "class"
    lines = [
        "",
        "## Files",
        "",
        "- `metrics.csv`: one row per backbone, every metric with CI columns.",
        f"- `per_class.csv`: one row per backbone per {kind}: support and per-{kind} metrics "
        "with CIs.",
        "- `pairwise.csv`: differences between each pair with CIs, bootstrap p-values and "
        "McNemar's test.",
    ]
    if c.task == "multiclass":
        lines.append(
            "- `confusion.csv`: one row per backbone, true and predicted class: count and "
            "share of the true class."
        )
    return [*lines, "- `efficiency.csv`: the efficiency table.", ""]


def _pair_cells(p: ClassPairwiseRow, metric_names: list[str]) -> list[str]:
    cells = [p.a, p.b, f"{p.mcnemar.b}/{p.mcnemar.c}", format_p(p.mcnemar.p_value)]
    for m in metric_names:
        text = format_estimate(p.differences[m])
        if math.isfinite(p.p_values[m]):
            text += f" (p {format_p(p.p_values[m])})"
        cells.append(text)
    return cells


MULTICLASS_SECTIONS: tuple[ClassSection, ...] = (
    title_section,
    class_setup_section,
    runs_section,
    class_metrics_section,
    per_class_section,
    class_confusion_section,
    class_pairwise_section,
    efficiency_section,
    class_figure_links_section,
    class_files_section,
)
"""The sections of a K-class ``report.md``, in order."""

MULTILABEL_SECTIONS: tuple[ClassSection, ...] = (
    title_section,
    class_setup_section,
    runs_section,
    class_metrics_section,
    per_class_section,
    class_pairwise_section,
    efficiency_section,
    class_figure_links_section,
    class_files_section,
)
"""The sections of a multi-label ``report.md``, in order."""
