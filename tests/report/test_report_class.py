"""K-class and multi-label reports: text, Markdown, CSV tables and figures; binary titles."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from cactus_features import report
from cactus_features.metrics import compare_runs
from cactus_features.report import figures as binary_figures
from cactus_features.report.class_csv import MULTICLASS_CSV_FILES, MULTILABEL_CSV_FILES
from cactus_features.report.class_figures import MULTICLASS_FIGURE_SPECS, MULTILABEL_FIGURE_SPECS
from cactus_features.report.class_markdown import (
    MULTICLASS_SECTIONS,
    render_class_markdown,
)
from cactus_features.report.class_plots import MAX_TICK_LABELS, class_confusion_figure
from cactus_features.report.class_text import render_class_text


def _read_csv(path):
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def three_class_runs(new_class_run):
    return [
        new_class_run("a@224", k=7, noise_seed=1),
        new_class_run("b@224", k=7, noise_seed=2, separation=1.2),
        new_class_run("c@224", k=7, noise_seed=3, separation=0.3, weights_label="random init"),
    ]


def test_multiclass_report_folder(three_class_runs, tmp_path) -> None:
    out = tmp_path / "report"
    c = report.compare(three_class_runs, out=out, n_bootstrap=100, seed=1)
    assert isinstance(c, report.ClassComparisonReport) and c.report_path == out / "report.md"
    written = {p.name for p in out.iterdir()}
    expected = set(MULTICLASS_CSV_FILES) | {s.file for s in MULTICLASS_FIGURE_SPECS.values()}
    assert written == expected | {"report.md"}

    metrics = _read_csv(out / "metrics.csv")
    assert [r["backbone"] for r in metrics] == [b.label for b in c.backbones]
    for r, row in zip(metrics, c.metrics, strict=True):
        for m in c.metric_names:
            assert float(r[m]) == row.metrics[m].value
            assert float(r[f"{m}_ci_low"]) <= float(r[m]) <= float(r[f"{m}_ci_high"])
    per_class = _read_csv(out / "per_class.csv")
    assert len(per_class) == 3 * 7
    assert sum(int(r["support"]) for r in per_class) == 3 * c.n_test
    confusion = _read_csv(out / "confusion.csv")
    assert len(confusion) == 3 * 7 * 7
    for b in c.backbones:
        cells = [r for r in confusion if r["backbone"] == b.label]
        counts = np.array([int(r["count"]) for r in cells]).reshape(7, 7)
        np.testing.assert_array_equal(counts, c.confusion[b.label])
    pairwise = _read_csv(out / "pairwise.csv")
    assert len(pairwise) == 3
    assert {r["mcnemar_correctness"] for r in pairwise} == {"top-1"}
    for r in pairwise:
        assert 0.0 < float(r["diff_macro_roc_auc_p"]) <= 1.0

    md = c.report_path.read_text()
    for needed in [
        "**Task:** multiclass, 7 classes",
        "## Per-class metrics",
        "| Class | Support | Precision | Recall | F1 | ROC AUC (one vs rest) |",
        "| true \\ predicted | class_0 |",
        "McNemar b/c (top-1)",
        "Δ Macro one-vs-rest ROC AUC",
        "| c@224 (random init) |",
        "(confusion_matrices.png)",
        "`confusion.csv`",
    ]:
        assert needed in md, needed
    for name in ("confusion_matrices.png", "training_curves.png"):
        with Image.open(out / name) as im:
            assert im.format == "PNG" and min(im.size) > 300


def test_rendering_goes_through_the_class_renderers(three_class_runs) -> None:
    data = compare_runs(three_class_runs, n_bootstrap=0)
    rep = report.compare(three_class_runs, n_bootstrap=0)
    assert rep.to_text() == render_class_text(data)
    assert rep.to_markdown() == render_class_markdown(data)
    lines = [line for section in MULTICLASS_SECTIONS for line in section(data, {})]
    assert rep.to_markdown() == "\n".join(lines)
    headings = [line for line in rep.to_markdown().splitlines() if line.startswith("## ")]
    assert headings == [
        "## Setup",
        "## Runs",
        "## Test metrics",
        "## Per-class metrics",
        "## Confusion matrices",
        "## Pairwise differences (A − B)",
        "## Efficiency",
        "## Files",
    ]
    text = rep.to_text()
    assert "Top5" in text and "McNemar p (top-1)" in text and "ΔMacroAUC" in text


def test_large_k_confusion_figure_has_no_cell_numbers_and_thinned_ticks(new_class_run) -> None:
    c = compare_runs([new_class_run(k=50, n_test=1500)], n_bootstrap=0)
    fig = MULTICLASS_FIGURE_SPECS["class_confusion"].draw(c)
    axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(axes) == 2
    for ax in axes:
        assert len(ax.texts) == 0
        assert len(ax.get_xticklabels()) <= MAX_TICK_LABELS
    assert len(fig.axes) == 4  # a colour bar per panel
    small = class_confusion_figure(["a"], [np.eye(4, dtype=int) * 3], list("wxyz"), decision="d")
    panels = [ax for ax in small.axes if ax.get_label() != "<colorbar>"]
    assert all(len(ax.texts) == 16 for ax in panels)


def test_many_classes_skip_the_markdown_confusion_table(new_class_run) -> None:
    md = report.compare([new_class_run(k=20, n_test=400)], n_bootstrap=0).to_markdown()
    assert "too wide for a table" in md and "| true \\ predicted |" not in md


def test_multilabel_report_folder(new_class_run, tmp_path) -> None:
    runs = [
        new_class_run("a@224", k=5, task="multilabel", noise_seed=1),
        new_class_run("b@224", k=5, task="multilabel", noise_seed=2, separation=0.8),
    ]
    out = tmp_path / "ml"
    c = report.compare(runs, out=out, n_bootstrap=50)
    written = {p.name for p in out.iterdir()}
    expected = set(MULTILABEL_CSV_FILES) | {s.file for s in MULTILABEL_FIGURE_SPECS.values()}
    assert written == expected | {"report.md"} and "confusion.csv" not in written
    md = c.report_path.read_text()
    assert "**Task:** multilabel, 5 labels" in md and "## Per-label metrics" in md
    assert "McNemar b/c (exact match)" in md and "(per_label_ap.png)" in md
    fig = MULTILABEL_FIGURE_SPECS["per_label_ap"].draw(c)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == c.class_names
    assert len(ax.patches) == 2 * 5  # one bar per backbone per label
    assert "mAP" in c.to_text() and "McNemar p (exact match)" in c.to_text()


def test_every_binary_figure_title_names_the_positive_class(make_run) -> None:
    c = report.compare([make_run("a@224"), make_run("b@224", noise_seed=2)], n_bootstrap=0)
    for key, spec in binary_figures.FIGURE_SPECS.items():
        fig = spec.draw(c)
        if fig is None:  # a figure that does not apply (the grid of an Adam-trained run)
            continue
        titles = [fig.get_suptitle()] + [ax.get_title() for ax in fig.axes]
        assert any("cactus" in t and "positive" in t for t in titles), key


def test_every_binary_markdown_table_names_the_positive_class(make_run) -> None:
    md = report.compare([make_run("a@224"), make_run("b@224", noise_seed=2)]).to_markdown()
    blocks = md.split("\n## ")
    for block in blocks:
        if block.startswith(("Test metrics", "Confusion matrices", "Pairwise")):
            assert "positive class `cactus`" in block, block.splitlines()[0]


@pytest.mark.parametrize("task", ["multiclass", "multilabel"])
def test_format_2_run_files_compare_from_disk(new_class_run, tmp_path, task) -> None:
    """Runs saved as run file format 2 and read back compare exactly as in memory."""
    from cactus_features.runfile import load_run, save_run

    runs = [
        new_class_run(f"{n}@224", k=6, task=task, noise_seed=s) for n, s in (("a", 1), ("b", 2))
    ]
    paths = [save_run(r, tmp_path / f"{i}.h5") for i, r in enumerate(runs)]
    loaded = [load_run(p) for p in paths]
    assert all(r.predictions.task == task for r in loaded)
    on_disk = report.compare(paths, n_bootstrap=200)
    in_memory = report.compare(runs, n_bootstrap=200)
    assert on_disk.metrics == in_memory.metrics and on_disk.per_class == in_memory.per_class
    assert on_disk.to_text() == in_memory.to_text()
    report.compare(paths, n_bootstrap=0, out=tmp_path / "report")
    assert (tmp_path / "report" / "metrics.csv").is_file()
