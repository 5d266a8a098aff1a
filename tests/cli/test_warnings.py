"""No warning is lost, none is doubled: one real warning in Python, one line in the CLI.

A collapsed entry (all-zero embeddings, from a patched model stage) warns when it
is extracted, when it is served from the cache and when a head is trained on it;
each event is one :class:`CollapsedFeaturesWarning` for Python callers (no log
line besides) and one ``warning: ...`` line on the command line, with or without
``-q``, with the likely cause.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from cactus_features import extract_features, train_head
from cactus_features.cli.display import one_line_warnings
from cactus_features.extract import pipeline
from cactus_features.notices import (
    RANDOM_WEIGHTS,
    CactusFeaturesWarning,
    CollapsedFeaturesWarning,
    collapse_cause,
    warn,
)
from tests.conftest import write_kaggle

ROOT = Path(__file__).resolve().parents[2]

# Runs the CLI once per argv list (one process, so torch is imported once), with the
# model stage returning zeros; each run's stderr is preceded by a marker line.
DRIVER = r"""
import json, sys
import numpy as np
from cactus_features.extract import pipeline
pipeline.embed_chunk = lambda b, imgs, *a, **k: np.zeros((len(imgs), b.num_features), np.float32)
from cactus_features.cli import main
for argv in json.loads(sys.argv[1]):
    print("=== run", file=sys.stderr, flush=True)
    try:
        main(argv)
    except SystemExit as exc:
        if exc.code:
            raise
"""


def _zeros(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        pipeline,
        "embed_chunk",
        lambda b, imgs, *args, **kw: np.zeros((len(imgs), b.num_features), np.float32),
    )


@pytest.fixture
def data(tmp_path: Path) -> tuple[Path, Path]:
    return write_kaggle(tmp_path / "data", n=40)


def _extract(data: tuple[Path, Path], cache: Path):
    img_dir, csv_path = data
    (fs,) = extract_features(
        img_dir, "resnet18@32", labels=csv_path, weights="none", cache_dir=cache, quiet=True
    )
    return fs


def _collapse_warnings(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, CollapsedFeaturesWarning)]


def test_python_callers_get_one_real_warning_per_event_and_no_log_line(
    data, tmp_path, monkeypatch, caplog, capfd
):
    _zeros(monkeypatch)
    caplog.set_level(logging.DEBUG, logger="cactus_features")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        fs = _extract(data, tmp_path / "cache")
        fresh = _collapse_warnings(record)
        _extract(data, tmp_path / "cache")
        hit = _collapse_warnings(record)[len(fresh) :]
        train_head(fs.path, epochs=3, quiet=True)
        trained = _collapse_warnings(record)[len(fresh) + len(hit) :]
    assert len(fresh) == 1 and "(cache hit)" not in fresh[0]
    assert len(hit) == 1 and "resnet18@32 (cache hit): COLLAPSED FEATURES" in hit[0]
    assert len(trained) == 1 and "head val AUC" in trained[0]
    for message in (*fresh, *hit, *trained):
        assert "random weights (--weights none)" in message
    # attributed to the caller's line, not to a frame inside the library
    assert {Path(w.filename).name for w in record if w.category is CollapsedFeaturesWarning} == {
        Path(__file__).name
    }
    assert not [r for r in caplog.records if "COLLAPSED" in r.getMessage()]
    assert "COLLAPSED" not in capfd.readouterr().err  # recorded, so not also printed


def test_the_advice_names_low_resolution_for_pretrained_weights():
    cause = collapse_cause({"weights": "IMAGENET1K", "resolution": 32})
    assert "low resolution (32 px)" in cause and "--resolution" in cause
    assert "random weights" in collapse_cause({"weights": RANDOM_WEIGHTS, "resolution": 224})


def test_the_random_weights_label_is_the_one_in_cache_keys():
    from cactus_features.backbones.weights import RANDOM_LABEL

    assert RANDOM_LABEL == RANDOM_WEIGHTS


def test_the_cli_shows_each_warning_as_one_line(capfd):
    with one_line_warnings():
        warn("first thing")
        warn("first thing")  # a second event: shown again
        warnings.warn("from elsewhere", DeprecationWarning, stacklevel=1)
    err = capfd.readouterr().err.splitlines()
    assert err[:2] == ["warning: first thing", "warning: first thing"]
    assert err[2].startswith("warning: from elsewhere [DeprecationWarning, test_warnings.py:")
    assert len(err) == 3


def test_library_warnings_share_one_base_class():
    assert issubclass(CollapsedFeaturesWarning, CactusFeaturesWarning)
    import cactus_features
    from cactus_features.extract.api import CollapsedFeaturesWarning as exported

    assert exported is cactus_features.CollapsedFeaturesWarning is CollapsedFeaturesWarning


def test_cli_extract_hit_and_train_each_print_the_collapse_once(data, tmp_path, monkeypatch):
    _zeros(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fs = _extract(data, tmp_path / "hit-cache")
    img_dir, csv_path = data
    extract = ["extract", "--data", str(img_dir), "--labels", str(csv_path)]
    extract += ["--backbone", "resnet18@32", "--weights", "none"]
    runs = [
        [*extract, "--cache-dir", str(tmp_path / "fresh")],  # fresh, not quiet
        [*extract, "--cache-dir", str(tmp_path / "fresh-q"), "-q"],  # fresh, quiet
        [*extract, "--cache-dir", str(tmp_path / "hit-cache")],  # hit
        [*extract, "--cache-dir", str(tmp_path / "hit-cache"), "-q"],  # hit, quiet
        ["train", str(fs.path), "--epochs", "3"],
        ["train", str(fs.path), "--epochs", "3", "-q", "--overwrite"],
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(runs)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    per_run = out.stderr.split("=== run\n")[1:]
    assert len(per_run) == len(runs)
    for argv, err in zip(runs, per_run, strict=True):
        lines = [line for line in err.splitlines() if "COLLAPSED" in line]
        assert len(lines) == 1, (argv, err)
        assert lines[0].startswith("warning: resnet18@32"), lines[0]
        assert "likely cause: random weights" in lines[0]
        assert "CollapsedFeaturesWarning" not in err and "warn(" not in err, err
    assert "(cache hit)" in per_run[2] and "(cache hit)" in per_run[3]
    assert "head val AUC" in per_run[4]
