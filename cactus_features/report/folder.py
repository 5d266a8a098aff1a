"""Write a report folder: ``report.md``, the CSV tables and the PNG figures."""

from __future__ import annotations

from pathlib import Path

from cactus_features.metrics.results import Comparison
from cactus_features.report.csv_files import CSV_FILES
from cactus_features.report.figures import write_figures
from cactus_features.report.markdown import render_markdown

REPORT_FILE = "report.md"
"""Name of the Markdown report in the folder."""


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
    for name, write in CSV_FILES.items():
        write(comparison, out / name)
    figures = write_figures(comparison, out)
    path = out / REPORT_FILE
    path.write_text(render_markdown(comparison, figures), encoding="utf-8")
    return path
