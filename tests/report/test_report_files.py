"""Report files, figures and the command line."""

from __future__ import annotations

import csv
import math

import pytest
from click.testing import CliRunner
from PIL import Image

from cactus_features.cli import _register, cli
from cactus_features.metrics.core import METRIC_NAMES
from cactus_features.report import FIGURES, compare


@pytest.fixture
def three_runs(make_run):
    return [
        make_run("resnet50@224", noise_seed=1, separation=1.5),
        make_run("efficientnet_lite0@128", noise_seed=2, separation=1.1),
        make_run("resnet50@224", noise_seed=3, separation=0.2, weights_label="random init"),
    ]


def _read_csv(path):
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_report_files(three_runs, tmp_path) -> None:
    out = tmp_path / "report"
    c = compare(three_runs, out=out, n_bootstrap=200, seed=0)
    assert c.report_path == out / "report.md"

    metrics = _read_csv(out / "metrics.csv")
    assert len(metrics) == 3 * len(c.rules)
    assert {r["rule"] for r in metrics} == {"0.5", "val"}
    for r in metrics:
        for m in METRIC_NAMES:
            low, value, high = float(r[f"{m}_ci_low"]), float(r[m]), float(r[f"{m}_ci_high"])
            assert low <= high and math.isfinite(value)
        n = int(r["tp"]) + int(r["fp"]) + int(r["tn"]) + int(r["fn"])
        assert n == int(r["n_test"]) == 200
        tp, fp = int(r["tp"]), int(r["fp"])
        assert float(r["precision"]) == pytest.approx(tp / (tp + fp))
        assert float(r["recall"]) == pytest.approx(tp / (tp + int(r["fn"])))
        assert r["positive_class"] == "cactus"

    pairwise = _read_csv(out / "pairwise.csv")
    assert len(pairwise) == 3 * len(c.rules)  # 3 pairs
    for r in pairwise:
        assert 0.0 <= float(r["delong_p"]) <= 1.0
        assert 0.0 <= float(r["mcnemar_p"]) <= 1.0
        assert float(r["diff_roc_auc"]) == pytest.approx(float(r["auc_a"]) - float(r["auc_b"]))
        assert r["positive_class"] == "cactus"

    eff = _read_csv(out / "efficiency.csv")
    assert [r["backbone"] for r in eff] == [b.label for b in c.backbones]

    assert not (out / FIGURES["validation_grid"]).exists()  # these runs have no grid
    for key, name in FIGURES.items():
        if key == "validation_grid":
            continue  # drawn for tuned runs: tests/report/test_protocol_report.py
        with Image.open(out / name) as im:
            im.load()
            assert im.format == "PNG"
            assert im.size[0] > 300 and im.size[1] > 300

    md = c.report_path.read_text()
    for needed in [
        "Positive class:** `cactus`",
        "Test set:** 200 images",
        "percentile bootstrap, 200 resamples",
        "DeLong",
        "McNemar",
        "| Backbone | Weights | Head | Run file | Train | Val | Test |",
        "| resnet50@224 (random init) |",
        "## Efficiency",
        "![ROC curves",
        "(roc.png)",
    ]:
        assert needed in md, needed


def test_report_without_history_skips_training_figure(make_run, tmp_path) -> None:
    c = compare([make_run(history=False)], out=tmp_path / "r", n_bootstrap=0)
    assert not (tmp_path / "r" / FIGURES["training_curves"]).exists()
    assert (tmp_path / "r" / FIGURES["roc"]).exists()
    assert "confidence intervals:** none" in c.report_path.read_text().lower()


def test_to_markdown_and_text(three_runs) -> None:
    c = compare(three_runs, n_bootstrap=100)
    assert c.report_path is None
    md = c.to_markdown()
    assert md.startswith("# Backbone comparison")
    text = c.to_text()
    assert "AUC" in text and "DeLong p" in text and "McNemar p" in text


def _invoke(args):
    _register()
    return CliRunner().invoke(cli, args)


def test_cli_compare(three_runs, tmp_path) -> None:
    out = tmp_path / "cli-report"
    result = _invoke(
        ["compare", *map(str, three_runs), "--out", str(out), "--bootstrap", "100", "--seed", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "resnet50@224 (random init)" in result.output
    assert (out / "report.md").is_file() and (out / "metrics.csv").is_file()


def test_cli_compare_fixed_threshold(three_runs, tmp_path) -> None:
    out = tmp_path / "r03"
    result = _invoke(
        [
            "compare",
            *map(str, three_runs),
            "--out",
            str(out),
            "--bootstrap",
            "0",
            "--threshold",
            "0.3",
        ]
    )
    assert result.exit_code == 0, result.output
    assert {r["rule"] for r in _read_csv(out / "metrics.csv")} == {"0.3", "0.5", "val"}


def test_cli_refuses_mismatched_runs_with_exit_code_2(make_run, tmp_path) -> None:
    a = make_run("a@224")
    b = make_run("b@224", n_test=190, n_train=70)
    result = _invoke(["compare", str(a), str(b), "--out", str(tmp_path / "x"), "--bootstrap", "0"])
    assert result.exit_code == 2
    assert "test sets differ" in result.stderr
    assert "Traceback" not in result.output


def test_cli_bad_threshold(make_run, tmp_path) -> None:
    result = _invoke(["compare", str(make_run()), "--threshold", "best"])
    assert result.exit_code == 2
    assert "threshold" in result.stderr


def test_cli_metrics(make_run) -> None:
    result = _invoke(["metrics", str(make_run("a@224"))])
    assert result.exit_code == 0, result.output
    assert "fixed threshold 0.5" in result.output
    assert "the validation split (max Youden's J)" in result.output
    assert "Log loss" in result.output


def test_without_matplotlib_reports_have_no_figures_said_once(three_runs, tmp_path, monkeypatch):
    import warnings

    from cactus_features.notices import CactusFeaturesWarning
    from cactus_features.report import figures

    def no_matplotlib():
        raise ImportError("No module named 'matplotlib'")

    monkeypatch.setattr(figures, "load_plots", no_matplotlib)
    figures._say_no_figures.cache_clear()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for n in range(2):
            compare(three_runs, out=tmp_path / f"r{n}", n_bootstrap=20, seed=0)
    said = [w for w in record if issubclass(w.category, CactusFeaturesWarning)]
    assert len(said) == 1 and "without figures" in str(said[0].message)
    assert (tmp_path / "r1" / "report.md").is_file()
    assert not list((tmp_path / "r1").glob("*.png"))
    assert "## Figures" not in (tmp_path / "r1" / "report.md").read_text()
