"""The report package: results from metrics, rendering and files from report."""

from __future__ import annotations

from dataclasses import fields

from cactus_features import report
from cactus_features.metrics import Comparison, RunMetrics, compare_runs, run_metrics
from cactus_features.report.markdown import SECTIONS, render_markdown
from cactus_features.report.text import render_run_metrics, render_text


def test_compare_wraps_the_computed_data(make_run, tmp_path) -> None:
    runs = [make_run("a@224", noise_seed=1), make_run("b@224", noise_seed=2)]
    data = compare_runs(runs, n_bootstrap=30)
    assert type(data) is Comparison
    assert not hasattr(data, "to_text") and not hasattr(data, "report_path")
    rep = report.compare(runs, n_bootstrap=30, out=tmp_path / "r")
    assert isinstance(rep, Comparison) and isinstance(rep, report.ComparisonReport)
    assert rep.report_path == tmp_path / "r" / "report.md"
    assert rep.to_text() == render_text(data, rep.report_path)
    assert rep.to_markdown() == render_markdown(data)
    wrapped = report.ComparisonReport.of(data)
    assert wrapped.report_path is None
    assert all(getattr(wrapped, f.name) is getattr(data, f.name) for f in fields(Comparison))


def test_markdown_is_its_sections_in_order(make_run) -> None:
    c = report.compare([make_run("a@224"), make_run("b@224", noise_seed=4)], n_bootstrap=0)
    figures = {"roc": "roc.png"}
    lines = [line for section in SECTIONS for line in section(c, figures)]
    md = render_markdown(c, figures)
    assert md == "\n".join(lines)
    headings = [line.split(" — ")[0] for line in md.splitlines() if line.startswith("## ")]
    assert list(dict.fromkeys(headings)) == [
        "## Setup",
        "## Runs",
        "## Test metrics",
        "## Confusion matrices",
        "## Pairwise differences (A − B)",
        "## Efficiency",
        "## Probe protocol",
        "## Figures",
        "## Files",
    ]


def test_single_run_has_no_pairwise_section(make_run) -> None:
    md = report.compare([make_run("a@224")], n_bootstrap=0).to_markdown()
    assert "## Pairwise" not in md and "## Figures" not in md


def test_evaluate_run_wraps_run_metrics(make_run) -> None:
    path = make_run("a@224")
    data = run_metrics(path)
    assert type(data) is RunMetrics and not hasattr(data, "to_text")
    rep = report.evaluate_run(path)
    assert isinstance(rep, RunMetrics)
    assert rep.to_text() == render_run_metrics(data)
