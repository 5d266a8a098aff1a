"""Files written by the pre-refactor code (commit 51acb33): read and verified; old entries stale.

The fixture in ``tests/fixtures/format1`` was made by ``make_fixture.py`` at that commit: a
120-image dataset, its ``resnet18@32`` (random init) cache entry and two linear-head run files,
plus what that code's ``compare`` printed and wrote for the two runs
(``expected_compare.txt`` since gained two things only, both "—" for these old runs: the
efficiency table's One-off s column and the probe-protocol table, issue 13). Its cache entry
was written before cache keys recorded the applied pre-processing, so it is never served
again: a new request writes a new entry beside it, and ``verify`` calls it stale.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from cactus_features import compare, extract_features, load_features, load_run
from cactus_features.extract.verify import verify_file

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "format1"


@pytest.fixture
def legacy(tmp_path: Path) -> Path:
    """A writable copy of the fixture (the tests must not touch the checked-in files)."""
    root = tmp_path / "format1"
    shutil.copytree(FIXTURE, root, ignore=shutil.ignore_patterns("*.py", "expected_*"))
    return root


def _entry(root: Path) -> Path:
    (path,) = sorted(root.glob("cache/*/*.h5"))
    return path


def _runs(root: Path) -> list[Path]:
    return sorted(root.glob("cache/*/runs/*.h5"))


def test_old_cache_file_loads(legacy: Path) -> None:
    fs = load_features(_entry(legacy))
    assert fs.embeddings.shape == (120, 512)
    assert fs.embeddings.dtype == np.float32
    assert np.isfinite(fs.embeddings).all()
    assert fs.key["backbone"] == "resnet18"
    assert len(fs.ids) == 120


STALE = (
    "stale: written without recorded preprocessing (before preprocessing version 2); "
    "it is never served again, extract again"
)


def test_old_cache_file_verifies_intact_but_stale(legacy: Path) -> None:
    report = verify_file(_entry(legacy))
    assert "checksum ok" in report.notes
    assert "dataset unchanged" in report.notes
    assert not report.ok
    assert report.problems == [STALE]


def test_old_cache_file_is_not_served_for_the_same_request(legacy: Path) -> None:
    entry = _entry(legacy)
    before = {p: p.read_bytes() for p in legacy.rglob("*") if p.is_file()}
    (fs,) = extract_features(
        legacy / "data" / "train",
        "resnet18@32",
        labels=legacy / "data" / "train.csv",
        weights="none",
        cache_dir=legacy / "cache",
        device="cpu",
        quiet=True,
    )
    new = Path(fs.path)
    assert new != entry and new.parent == entry.parent  # a new entry beside the old one
    assert fs.key["preprocessing"]["version"] == 2
    assert verify_file(new).ok
    after = {p: p.read_bytes() for p in legacy.rglob("*") if p.is_file()}
    assert {p: after[p] for p in before} == before  # the old files are untouched
    assert verify_file(entry).problems == [STALE]


def test_old_run_files_load_and_compare_as_before(legacy: Path, tmp_path: Path) -> None:
    runs = _runs(legacy)
    assert len(runs) == 2
    for path in runs:
        run = load_run(path)
        assert len(run.predictions.ids) == 120
    out = tmp_path / "report"
    result = compare(runs, out=out)
    expected = (FIXTURE / "expected_compare.txt").read_text().replace("{out}", str(out))
    assert result.to_text() == expected
    expected_csv = (FIXTURE / "expected_metrics.csv").read_text()
    assert (out / "metrics.csv").read_text() == expected_csv.replace("{root}", str(legacy))
