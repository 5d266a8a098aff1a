"""Label-efficiency curves as a Markdown table, a CSV file and a figure.

Renders a :class:`~cactus_features.study.label_efficiency.LabelEfficiencyResult`;
:func:`write_label_efficiency` writes ``label_efficiency.md``, ``.csv`` and ``.png``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from cactus_features.data.classes import BINARY, MULTICLASS, MULTILABEL
from cactus_features.report.csv_files import _write_csv
from cactus_features.report.formatting import format_estimate, table
from cactus_features.report.plots import colors, save_figure
from cactus_features.study.label_efficiency import LabelEfficiencyResult

METRIC_TITLES = {
    "roc_auc": "Test ROC AUC",
    "accuracy": "Test accuracy",
    "macro_roc_auc": "Test macro ROC AUC",
    "macro_map": "Test macro mAP",
}
"""Column and axis titles of the curve metrics."""
_ACCURACY_NOTES = {
    BINARY: "accuracy at each run's validation-chosen threshold (max Youden's J)",
    MULTICLASS: "accuracy: top-1",
    MULTILABEL: "macro averages over the labels",
}
"""How the curves' values are taken, by task (the description's sentence)."""
STEM = "label_efficiency"
"""File stem of the written table, CSV and figure."""


def describe(result: LabelEfficiencyResult) -> str:
    """One paragraph: what was trained, on what, and what the intervals mean."""
    options = ", ".join(f"{k}={v!r}" for k, v in sorted(result.options.items()))
    head = f"`{result.head}` head" + (f" ({options})" if options else " (its defaults)")
    seeds = ", ".join(str(s) for s in result.seeds)
    pct = round(100 * result.ci)
    if result.task == MULTILABEL:
        drawn = (
            "prefixes of a seeded shuffle of the training split, nested across fractions "
            f"(at least {result.min_per_class} positives and negatives of each label)"
        )
    else:
        drawn = (
            "stratified subsamples of the training split, nested across fractions "
            f"(at least {result.min_per_class} rows of each class)"
        )
    accuracy = _ACCURACY_NOTES[result.task]
    return (
        f"The {head} trained on {drawn}, seeds {seeds}; "
        f"validation and test splits unchanged ({result.n_test} test images). Values are the "
        f"mean over seeds; {accuracy}. "
        f"[brackets]: {pct} % paired bootstrap CI of that mean over the test set "
        f"({result.n_bootstrap} resamples); seeds: the seeds' min–max."
    )


def rows(result: LabelEfficiencyResult) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the table (one row per backbone and fraction)."""
    names = result.class_names or tuple(str(i) for i in range(2))
    counted = "positives: " if result.task == MULTILABEL else ""
    headers = ["Backbone", "Train share", f"Train rows ({counted}" + " / ".join(names) + ")"]
    for m in result.metrics:
        headers += [METRIC_TITLES[m], f"{METRIC_TITLES[m].split()[-1]} seeds"]
    headers.append("Train s")
    out = []
    for p in result.points:
        row = [
            p.backbone,
            _percent(p.fraction),
            f"{p.n_train} (" + " / ".join(map(str, p.n_per_class)) + ")",
        ]
        for m in result.metrics:
            seeds = p.by_seed[m]
            row += [format_estimate(p.metrics[m]), f"{min(seeds):.3f}–{max(seeds):.3f}"]
        row.append(f"{p.train_seconds:.1f}")
        out.append(row)
    return headers, out


def to_markdown(result: LabelEfficiencyResult, figure: str | None = None) -> str:
    """A Markdown section: description, table and (optionally) the figure."""
    headers, body = rows(result)
    lines = ["## Label efficiency", "", describe(result), "", table(headers, body, markdown=True)]
    if figure:
        lines += ["", f"![Label-efficiency curves]({figure})"]
    return "\n".join(lines) + "\n"


def write_csv(result: LabelEfficiencyResult, path: Path) -> Path:
    """One row per backbone and fraction: sizes, each metric with interval and seed range."""
    names = result.class_names or tuple(str(i) for i in range(2))
    header = ["backbone", "fraction", "n_train", *[f"n_train_{n}" for n in names]]
    for m in result.metrics:
        header += [m, f"{m}_low", f"{m}_high", f"{m}_seed_min", f"{m}_seed_max"]
    header += ["train_seconds", "seeds", "n_bootstrap"]
    body = []
    for p in result.points:
        row: list = [p.backbone, p.fraction, p.n_train, *p.n_per_class]
        for m in result.metrics:
            e, seeds = p.metrics[m], p.by_seed[m]
            row += [e.value, e.low, e.high, min(seeds), max(seeds)]
        row += [p.train_seconds, " ".join(map(str, result.seeds)), result.n_bootstrap]
        body.append(row)
    _write_csv(path, header, body)
    return path


def curve_figure(result: LabelEfficiencyResult) -> Figure:
    """Test AUC and accuracy against the training share (log axis), one line per
    backbone, with its bootstrap interval as a band."""
    fig = Figure(figsize=(5.2 * len(result.metrics), 4.0), layout="constrained")
    axes = fig.subplots(1, len(result.metrics), squeeze=False)[0]
    palette = colors(len(result.backbones))
    for ax, m in zip(axes, result.metrics, strict=True):
        for color, name in zip(palette, result.backbones, strict=True):
            pts = result.curve(name)
            x = np.array([100 * p.fraction for p in pts])
            y = np.array([p.metrics[m].value for p in pts])
            lo = np.array([p.metrics[m].low for p in pts])
            hi = np.array([p.metrics[m].high for p in pts])
            ax.plot(x, y, marker="o", color=color, label=name)
            if np.isfinite(lo).all() and np.isfinite(hi).all():
                ax.fill_between(x, lo, hi, color=color, alpha=0.2, linewidth=0)
        ax.set_xscale("log")
        ax.set_xticks([100 * f for f in result.fractions])
        ax.set_xticklabels([_percent(f) for f in result.fractions])
        ax.set_xlabel("share of the training split")
        ax.set_ylabel(METRIC_TITLES[m])
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right", fontsize="small")
    fig.suptitle(
        f"Label efficiency ({result.head} head, mean of {len(result.seeds)} seeds, "
        f"{round(100 * result.ci)} % CI)"
    )
    return fig


def write_label_efficiency(result: LabelEfficiencyResult, out: str | Path) -> dict[str, Path]:
    """Write ``label_efficiency.md``, ``.csv`` and ``.png`` into ``out``.

    Returns:
        ``{"markdown": path, "csv": path, "figure": path}``.
    """
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    figure = save_figure(curve_figure(result), folder / f"{STEM}.png")
    markdown = folder / f"{STEM}.md"
    markdown.write_text(to_markdown(result, figure.name), encoding="utf-8")
    return {
        "markdown": markdown,
        "csv": write_csv(result, folder / f"{STEM}.csv"),
        "figure": figure,
    }


def add_to_reports(
    result: LabelEfficiencyResult, out: str | Path, reports: list[Path]
) -> dict[str, Path]:
    """Write the curves' files into ``out`` and append their section to each report.

    Args:
        result: The curves.
        out: Folder for ``label_efficiency.md``, ``.csv`` and ``.png``.
        reports: ``report.md`` files to append the section to (the figure linked
            relative to each).

    Returns:
        The files written (see :func:`write_label_efficiency`).
    """
    paths = write_label_efficiency(result, out)
    for report in reports:
        figure = os.path.relpath(paths["figure"], report.parent)
        with report.open("a", encoding="utf-8") as fh:
            fh.write("\n" + to_markdown(result, Path(figure).as_posix()))
    return paths


def _percent(fraction: float) -> str:
    """``0.01 -> '1 %'``, ``0.025 -> '2.5 %'``."""
    return f"{100 * fraction:g} %"
