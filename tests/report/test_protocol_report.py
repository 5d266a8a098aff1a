"""The probe protocol in comparisons: data in metrics, table and figure in the report."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cactus_features import report
from cactus_features.heads import train_head
from tests.heads.synthetic import make_features


@pytest.fixture
def two_runs(tmp_path):
    fs = make_features(n=300, d=12)
    other = replace(fs, key={"backbone": "other", "resolution": 64})
    tuned = train_head(fs, out=tmp_path / "runs")
    preset = train_head(other, preset="report", epochs=30, out=tmp_path / "runs")
    return tuned, preset


def test_compare_reports_protocol_choice_and_grid(two_runs, tmp_path) -> None:
    tuned, preset = two_runs
    c = report.compare([tuned.path, preset.path], n_bootstrap=0, out=tmp_path / "rep")
    first, second = c.protocols
    grid = tuned.run.info["grid"]
    assert first.protocol == "tuned" and first.param == "l2"
    assert first.chosen == grid["chosen_value"] and first.criterion == "val_loss"
    assert first.val_loss == pytest.approx(grid["chosen_val_loss"])
    assert first.grid_values == tuple(grid["values"]) and len(first.grid_val_auc) == 9
    assert first.converged is True
    assert second.protocol == "report (epochs=30)" and second.param is None
    assert second.criterion == "val_auc" and second.val_auc == pytest.approx(preset.val_auc)
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## Probe protocol" in md and "| tuned | l2 " in md and "report (epochs=30)" in md
    assert (tmp_path / "rep" / "validation_grid.png").is_file()
    assert any("different protocols (report (epochs=30), tuned)" in n for n in c.notes)
    assert "Probe protocol:" in c.to_text() and "One-off s" in c.to_text()
    assert "selected epoch is the last one" in md or second.warnings == ()


def test_one_off_kernel_time_is_recorded_apart(two_runs) -> None:
    tuned, preset = two_runs
    for run in (tuned, preset):
        info = run.run.info
        assert info["one_off_seconds"] >= 0.0 and info["train_seconds"] == run.seconds
