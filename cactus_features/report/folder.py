"""Write a report folder: ``report.md``, the CSV tables and the PNG figures."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cactus_features.metrics.class_results import ClassComparison
from cactus_features.metrics.results import Comparison
from cactus_features.report.class_csv import MULTICLASS_CSV_FILES, MULTILABEL_CSV_FILES
from cactus_features.report.class_figures import MULTICLASS_FIGURE_SPECS, MULTILABEL_FIGURE_SPECS
from cactus_features.report.class_markdown import render_class_markdown
from cactus_features.report.csv_files import CSV_FILES
from cactus_features.report.figures import FIGURE_SPECS, FigureSpec, write_figures
from cactus_features.report.markdown import render_markdown

REPORT_FILE = "report.md"
"""Name of the Markdown report in the folder."""


@dataclass(frozen=True)
class ReportParts:
    """What a report folder of one task kind holds.

    Attributes:
        csv_files: File name -> writer of each CSV table.
        figure_specs: The figures, by key.
        render_markdown: ``(comparison, {figure: file}) -> report.md`` text.
    """

    csv_files: Mapping[str, Callable[[Any, Path], None]]
    figure_specs: Mapping[str, FigureSpec]
    render_markdown: Callable[[Any, Mapping[str, str]], str]


TASK_PARTS: dict[str, ReportParts] = {
    "binary": ReportParts(CSV_FILES, FIGURE_SPECS, render_markdown),
    "multiclass": ReportParts(MULTICLASS_CSV_FILES, MULTICLASS_FIGURE_SPECS, render_class_markdown),
    "multilabel": ReportParts(MULTILABEL_CSV_FILES, MULTILABEL_FIGURE_SPECS, render_class_markdown),
}
"""The parts of a report folder by task kind (``comparison.task``)."""


def write_report(comparison: Comparison | ClassComparison, out: str | Path) -> Path:
    """Write the report folder (Markdown, CSV tables, PNG figures).

    Args:
        comparison: The comparison to report (binary, multiclass or multilabel).
        out: Destination folder (created if needed; existing report files are replaced).

    Returns:
        The path of ``report.md``.
    """
    parts = TASK_PARTS[comparison.task]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, write in parts.csv_files.items():
        write(comparison, out / name)
    figures = write_figures(comparison, out, parts.figure_specs)
    path = out / REPORT_FILE
    path.write_text(parts.render_markdown(comparison, figures), encoding="utf-8")
    return path
