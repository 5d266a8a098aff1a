"""Render and write the results of stage three (:mod:`cactus_features.metrics`).

Imports the result types and never the other way round. Modules:

* :mod:`~cactus_features.report.api` — :func:`compare` and :func:`evaluate_run`,
  the public entry points (compute, then render / write);
* :mod:`~cactus_features.report.formatting` — numbers, intervals, p-values, tables;
* :mod:`~cactus_features.report.text` — the terminal summaries;
* :mod:`~cactus_features.report.markdown` — ``report.md``, one function per section;
* :mod:`~cactus_features.report.csv_files` — ``metrics.csv``, ``pairwise.csv``,
  ``efficiency.csv``;
* :mod:`~cactus_features.report.figures` — which figures a report has;
  :mod:`~cactus_features.report.plots` draws them (matplotlib OO API);
* :mod:`~cactus_features.report.class_text`, ``class_markdown``, ``class_csv``,
  ``class_figures`` + ``class_plots`` — the same for K-class and multi-label
  comparisons (per-class tables, K x K confusion figure, per-label AP);
* :mod:`~cactus_features.report.folder` — writes the report folder, with the parts
  of the comparison's task (:data:`~cactus_features.report.folder.TASK_PARTS`).
"""

from cactus_features.report.api import (
    ClassComparisonReport,
    ComparisonReport,
    RunReport,
    compare,
    evaluate_run,
)
from cactus_features.report.figures import FIGURES
from cactus_features.report.folder import write_report
from cactus_features.report.markdown import render_markdown
from cactus_features.report.text import render_run_metrics, render_text

__all__ = [
    "FIGURES",
    "ClassComparisonReport",
    "ComparisonReport",
    "RunReport",
    "compare",
    "evaluate_run",
    "render_markdown",
    "render_run_metrics",
    "render_text",
    "write_report",
]
