"""Render a :class:`~cactus_features.metrics.compare.Comparison` as text, Markdown, CSV and PNG.

:func:`write_report` writes into one folder:

* ``report.md`` — setup (positive class, split sizes, test-set size, threshold
  rules, CI method, tests), metric tables with CIs, confusion matrices,
  pairwise differences with p-values, efficiency, and the figures;
* ``metrics.csv`` — one row per backbone per threshold rule, with CI columns;
* ``pairwise.csv`` — one row per pair of backbones per threshold rule;
* ``efficiency.csv`` — one row per backbone;
* ``roc.png``, ``precision_recall.png``, ``training_curves.png``,
  ``confusion_matrices.png``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cactus_features.metrics import plots
from cactus_features.metrics.core import METRIC_LABELS, METRIC_NAMES

if TYPE_CHECKING:
    from cactus_features.metrics.compare import Comparison, EfficiencyRow, RunMetrics

DASH = "—"
"""Shown for a value that is absent or undefined."""

SHORT_LABELS: dict[str, str] = {
    "roc_auc": "AUC",
    "average_precision": "AP",
    "accuracy": "Acc",
    "balanced_accuracy": "BalAcc",
    "precision": "Prec",
    "recall": "Recall",
    "f1": "F1",
    "specificity": "Spec",
    "log_loss": "LogLoss",
}
"""Column headers of the terminal table."""

FIGURES: dict[str, str] = {
    "roc": "roc.png",
    "precision_recall": "precision_recall.png",
    "training_curves": "training_curves.png",
    "confusion_matrices": "confusion_matrices.png",
}
"""File name of each figure in the report folder."""


def rule_description(rule: str, val_criterion: str) -> str:
    """A readable description of a threshold rule."""
    if rule == "val":
        crit = "Youden's J" if val_criterion == "youden" else "F1"
        return f"threshold chosen on each backbone's validation split (max {crit})"
    return f"fixed threshold {rule}"


def rule_short(rule: str) -> str:
    """A short description of a threshold rule (for legends)."""
    return "validation-chosen threshold" if rule == "val" else f"threshold {rule}"


def write_report(comparison: Comparison, out: str | Path) -> Path:
    """Write the report folder (Markdown, CSV tables, PNG figures).

    Args:
        comparison: The comparison to report.
        out: Destination folder (created if needed; existing report files are replaced).

    Returns:
        The path of ``report.md``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_metrics_csv(comparison, out / "metrics.csv")
    write_pairwise_csv(comparison, out / "pairwise.csv")
    write_efficiency_csv(comparison, out / "efficiency.csv")
    figures = write_figures(comparison, out)
    path = out / "report.md"
    path.write_text(render_markdown(comparison, figures), encoding="utf-8")
    return path


def write_figures(comparison: Comparison, out: Path) -> dict[str, str]:
    """Draw and save every figure; returns ``{figure: file name}`` of those written."""
    from cactus_features.metrics.core import cumulative_counts

    labels = [b.label for b in comparison.backbones]
    curves = [cumulative_counts(comparison.test_is_pos, b.test_score) for b in comparison.backbones]
    rows = comparison.rows()
    operating = [
        (1.0 - r.confusion.rates()["specificity"], r.confusion.rates()["recall"]) for r in rows
    ]
    rule = rule_description(comparison.primary_rule, comparison.val_criterion)
    written: dict[str, str] = {}

    figs = {
        "roc": plots.roc_figure(
            labels,
            curves,
            positive_name=comparison.positive_name,
            operating_points=operating,
            operating_label=f"operating point ({rule_short(comparison.primary_rule)})",
        ),
        "precision_recall": plots.precision_recall_figure(
            labels, curves, positive_name=comparison.positive_name
        ),
        "training_curves": plots.history_figure(labels, [b.history for b in comparison.backbones]),
        "confusion_matrices": plots.confusion_figure(
            labels, [r.confusion for r in rows], rule_description=rule
        ),
    }
    for key, fig in figs.items():
        if fig is not None:
            plots.save_figure(fig, out / FIGURES[key])
            written[key] = FIGURES[key]
    return written


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
    header = ["rule", "backbone_a", "backbone_b", "n_test"]
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
        row: list[Any] = [r.rule, r.a, r.b, comparison.n_test]
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
    header = [
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
    ]
    rows = [[getattr(e, h) for h in header] for e in comparison.efficiency]
    _write_csv(path, header, rows)


def render_text(comparison: Comparison) -> str:
    """Compact terminal summary: metrics at the primary rule, pairwise tests, efficiency."""
    c = comparison
    pct = f"{c.ci:.0%}"
    lines = [
        f"Test set: {c.n_test} images ({int(c.test_is_pos.sum())} of class "
        f"'{c.positive_name}' = positive, {int((~c.test_is_pos).sum())} of class "
        f"'{c.negative_name}'); "
        f"{rule_description(c.primary_rule, c.val_criterion)}.",
        (
            f"[brackets]: {pct} paired bootstrap CI ({c.n_bootstrap} resamples, seed {c.seed})."
            if c.n_bootstrap
            else "No bootstrap intervals (--bootstrap 0)."
        ),
        "",
    ]
    headers = ["Backbone", "Thr"] + [SHORT_LABELS[m] for m in METRIC_NAMES]
    with_ci = {"roc_auc", "accuracy"}
    rows = [
        [r.backbone, f"{r.threshold:.3g}"]
        + [r.metrics[m].format(3, ci=m in with_ci) for m in METRIC_NAMES]
        for r in c.rows()
    ]
    lines.append(_table(headers, rows, markdown=False))
    pairs = c.pairs()
    if pairs:
        lines += ["", "Pairwise differences (A − B):"]
        headers = ["A", "B", "ΔAUC", "DeLong p", "ΔAcc", "McNemar p"]
        rows = [
            [
                p.a,
                p.b,
                p.differences["roc_auc"].format(3),
                _p(p.delong.p_value),
                p.differences["accuracy"].format(3),
                _p(p.mcnemar.p_value),
            ]
            for p in pairs
        ]
        lines.append(_table(headers, rows, markdown=False, left=2))
    lines += ["", "Efficiency:", _efficiency_table(c.efficiency, markdown=False)]
    for note in c.notes:
        lines.append(f"note: {note}")
    if c.report_path is not None:
        lines += ["", f"Report written to {c.report_path}"]
    return "\n".join(lines)


def render_markdown(comparison: Comparison, figures: dict[str, str] | None = None) -> str:
    """The full report as Markdown.

    Args:
        comparison: The comparison.
        figures: ``{figure: file name}`` of figures written next to the report.

    Returns:
        Markdown text.
    """
    from cactus_features._version import __version__

    c = comparison
    figures = figures or {}
    pct = f"{c.ci:.0%}"
    n_pos = int(c.test_is_pos.sum())
    lines = [
        "# Backbone comparison",
        "",
        f"Generated by cactus-features {__version__} from {len(c.backbones)} run file(s); "
        "every number below is computed from the predictions saved in those files.",
        "",
        "## Setup",
        "",
        f"- **Positive class:** `{c.positive_name}` (class index {c.positive_class} of "
        f"{_names(c.class_names)}); the negative class is `{c.negative_name}`. Scores are the "
        f"predicted probability of `{c.positive_name}`.",
        f"- **Test set:** {c.n_test} images ({n_pos} positive, {c.n_test - n_pos} negative), "
        "the same image ids for every backbone (aligned by id).",
        "- **Threshold rules** (a score ≥ threshold is predicted positive):",
    ]
    for rule in c.rules:
        primary = " — primary rule" if rule == c.primary_rule else ""
        lines.append(f"  - `{rule}`: {rule_description(rule, c.val_criterion)}{primary}.")
    if "val" in c.rules:
        crit = (
            "Youden's J = recall + specificity − 1"
            if c.val_criterion == "youden"
            else "F1 of the positive class"
        )
        lines.append(
            f"    Each backbone's validation predictions are scanned at every distinct score; "
            f"the cut maximising {crit} is taken (midpoint to the next lower score) and applied "
            "unchanged to the test set."
        )
    if c.n_bootstrap:
        lines.append(
            f"- **Confidence intervals:** {pct} percentile bootstrap, {c.n_bootstrap} resamples of "
            f"the test set with replacement (seed {c.seed}). The resampled indices are shared by "
            "all backbones, so intervals of differences are paired. Thresholds are held fixed, so "
            "the intervals cover test-set sampling only, not the variability of head training."
        )
        if c.degenerate_resamples:
            lines.append(
                f"  {c.degenerate_resamples} resample(s) lacked a class; metrics undefined on them "
                "were left out of those intervals."
            )
    else:
        lines.append("- **Confidence intervals:** none (bootstrap disabled).")
    lines += [
        "- **Tests:** DeLong's test for the difference of two correlated ROC AUCs (DeLong et al. "
        "1988; fast midrank algorithm of Sun & Xu 2014; two-sided, normal approximation); "
        "McNemar's exact test for the difference in accuracy at each threshold rule (two-sided "
        "binomial test on the discordant pairs). p-values are not corrected for multiple "
        "comparisons.",
        "- Precision = tp / (tp + fp), recall = tp / (tp + fn), specificity = tn / (tn + fp), "
        "all from the confusion matrices shown below; precision is 0 when nothing is predicted "
        "positive. Log loss is the mean binary cross-entropy of the scores.",
        "- Backbones marked *(random init)* use randomly initialised, untrained weights.",
    ]
    lines += [f"- Note: {n}" for n in c.notes]

    lines += ["", "## Runs", ""]
    headers = [
        "Backbone",
        "Weights",
        "Head",
        "Run file",
        "Train",
        "Val",
        "Test",
        "Best epoch",
        "Val threshold",
    ]
    rows = []
    for b in c.backbones:
        head = b.config.get("head")
        epochs = b.info.get("epochs_run")
        best = b.info.get("best_epoch")
        rows.append(
            [
                b.label,
                b.weights or DASH,
                str(head) if head is not None else DASH,
                f"`{b.path.name}`" if b.path else DASH,
                str(b.split_sizes["train"]),
                str(b.split_sizes["val"]),
                str(b.split_sizes["test"]),
                f"{best} of {epochs}" if best is not None and epochs is not None else _opt(best),
                f"{b.thresholds['val']:.4g}" if "val" in b.thresholds else DASH,
            ]
        )
    lines.append(_table(headers, rows, markdown=True))

    for rule in c.rules:
        lines += [
            "",
            f"## Test metrics — {rule_description(rule, c.val_criterion)}",
            "",
            f"Point estimate [{pct} CI]." if c.n_bootstrap else "Point estimates.",
            "",
        ]
        headers = ["Backbone", "Threshold"] + [METRIC_LABELS[m] for m in METRIC_NAMES]
        rows = [
            [r.backbone, f"{r.threshold:.4g}"] + [r.metrics[m].format(3) for m in METRIC_NAMES]
            for r in c.rows(rule)
        ]
        lines.append(_table(headers, rows, markdown=True))

    for rule in c.rules:
        lines += [
            "",
            f"## Confusion matrices — {rule_description(rule, c.val_criterion)}",
            "",
            "Rows: true class; columns: predicted class.",
        ]
        for r in c.rows(rule):
            cm = r.confusion
            lines += ["", f"**{_md(r.backbone)}** (threshold {cm.threshold:.4g})", ""]
            lines.append(
                _table(
                    ["true \\ predicted", cm.negative_name, cm.positive_name],
                    [
                        [cm.negative_name, str(cm.tn), str(cm.fp)],
                        [cm.positive_name, str(cm.fn), str(cm.tp)],
                    ],
                    markdown=True,
                )
            )

    if c.pairwise:
        for rule in c.rules:
            lines += [
                "",
                f"## Pairwise differences (A − B) — {rule_description(rule, c.val_criterion)}",
                "",
                f"Differences with paired {pct} bootstrap CIs. McNemar counts: b = A right and B "
                "wrong, c = A wrong and B right. All metrics are in `pairwise.csv`.",
                "",
            ]
            headers = [
                "A",
                "B",
                "Δ ROC AUC",
                "DeLong p",
                "Δ Accuracy",
                "McNemar b/c",
                "McNemar p",
                "Δ Balanced acc.",
                "Δ F1",
                "Δ AP",
                "Δ Log loss",
            ]
            rows = [
                [
                    p.a,
                    p.b,
                    p.differences["roc_auc"].format(3),
                    _p(p.delong.p_value),
                    p.differences["accuracy"].format(3),
                    f"{p.mcnemar.b}/{p.mcnemar.c}",
                    _p(p.mcnemar.p_value),
                    p.differences["balanced_accuracy"].format(3),
                    p.differences["f1"].format(3),
                    p.differences["average_precision"].format(3),
                    p.differences["log_loss"].format(3),
                ]
                for p in c.pairs(rule)
            ]
            lines.append(_table(headers, rows, markdown=True))

    lines += [
        "",
        "## Efficiency",
        "",
        "As recorded in the run files: backbone parameters, GFLOPs per image at the extraction "
        f"resolution, extraction throughput and time, head training time, embedding dimension "
        f"({DASH}: not recorded).",
        "",
        _efficiency_table(c.efficiency, markdown=True),
    ]

    captions = {
        "roc": "ROC curves on the test set (AUC in the legend; dots: operating points at the "
        "primary threshold rule).",
        "precision_recall": "Precision-recall curves on the test set (average precision in the "
        "legend).",
        "training_curves": "Head training and validation curves per epoch.",
        "confusion_matrices": "Test confusion matrices at the primary threshold rule.",
    }
    if figures:
        lines += ["", "## Figures", ""]
        for key, name in figures.items():
            lines += [f"![{captions[key]}]({name})", "", f"*{captions[key]}*", ""]
    lines += [
        "",
        "## Files",
        "",
        "- `metrics.csv`: one row per backbone per threshold rule, with CI columns.",
        "- `pairwise.csv`: differences between each pair with CIs, DeLong and McNemar p-values.",
        "- `efficiency.csv`: the efficiency table.",
        "",
    ]
    return "\n".join(lines)


def render_run_metrics(result: RunMetrics) -> str:
    """One run's confusion matrices and metrics at each rule, as plain text."""
    sizes = ", ".join(f"{k} {v}" for k, v in result.split_sizes.items())
    lines = [f"{result.label}  (predictions: {sizes}; evaluated on {result.split})"]
    for rule, res in result.results.items():
        desc = rule_description(rule, result.val_criterion).replace("each backbone's", "the")
        lines += ["", f"[{rule}] {desc}; applied threshold {res.threshold:.4g}"]
        lines.append(res.confusion.to_text())
        width = max(len(METRIC_LABELS[m]) for m in METRIC_NAMES)
        lines += [f"  {METRIC_LABELS[m]:<{width}}  {_fmt(res.values[m], 4)}" for m in METRIC_NAMES]
    lines += [f"note: {n}" for n in result.notes]
    return "\n".join(lines)


def _efficiency_table(rows: Sequence[EfficiencyRow], *, markdown: bool) -> str:
    headers = [
        "Backbone",
        "Weights",
        "Params",
        "GFLOPs",
        "Res",
        "Extract img/s",
        "Extract s",
        "Head train s",
        "Dim",
    ]
    body = [
        [
            e.backbone,
            e.weights or DASH,
            DASH if e.params is None else f"{e.params / 1e6:.1f}M",
            _fmt(e.gflops, 2),
            DASH if e.resolution is None else f"{e.resolution:.0f}",
            _fmt(e.images_per_second, 0),
            _fmt(e.extract_seconds, 1),
            _fmt(e.train_seconds, 1),
            DASH if e.dim is None else f"{e.dim:.0f}",
        ]
        for e in rows
    ]
    return _table(headers, body, markdown=markdown, left=2)


def _table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, markdown: bool, left: int = 1
) -> str:
    """A Markdown table, or a plain-text one with the first ``left`` columns left-aligned."""
    if markdown:
        esc = [[_md(str(x)) for x in r] for r in [headers, *rows]]
        out = ["| " + " | ".join(esc[0]) + " |", "|" + "|".join(["---"] * len(headers)) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in esc[1:]]
        return "\n".join(out)
    cells = [[str(x) for x in r] for r in [headers, *rows]]
    widths = [max(len(r[j]) for r in cells) for j in range(len(headers))]
    out = []
    for k, r in enumerate(cells):
        out.append(
            "  ".join(
                x.ljust(widths[j]) if j < left else x.rjust(widths[j]) for j, x in enumerate(r)
            ).rstrip()
        )
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _names(names: Sequence[str]) -> str:
    return "[" + ", ".join(f"`{n}`" for n in names) + "]" if names else "(class names not recorded)"


def _fmt(value: float | None, digits: int) -> str:
    if value is None or not math.isfinite(value):
        return DASH
    return f"{value:.{digits}f}"


def _opt(value: Any) -> str:
    return DASH if value is None else str(value)


def _p(p: float) -> str:
    if not math.isfinite(p):
        return DASH
    return "<0.001" if p < 0.001 else f"{p:.3f}"


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
