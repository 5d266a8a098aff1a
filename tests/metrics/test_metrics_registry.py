"""The metric registry: one entry per metric, iterated by every consumer."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cactus_features.metrics as metrics_pkg
from cactus_features.metrics.core import (
    LOWER_IS_BETTER,
    METRIC_LABELS,
    METRIC_NAMES,
    METRIC_SHORT_LABELS,
    METRICS,
    THRESHOLD_METRICS,
    Metric,
    all_metrics,
    rates_from_counts,
)


def test_every_constant_derives_from_the_registry() -> None:
    assert METRIC_NAMES == tuple(m.name for m in METRICS)
    assert len(set(METRIC_NAMES)) == len(METRIC_NAMES)
    assert set(METRIC_LABELS) == set(METRIC_SHORT_LABELS) == set(METRIC_NAMES)
    assert THRESHOLD_METRICS == tuple(rates_from_counts(1, 2, 3, 4))
    assert LOWER_IS_BETTER == {"log_loss"}


def test_all_metrics_computes_every_registered_metric() -> None:
    is_pos = np.array([True, False, True, False, True])
    score = np.array([0.9, 0.2, 0.6, 0.7, 0.4])
    out = all_metrics(is_pos, score, {"0.5": 0.5})["0.5"]
    assert set(out) == {*METRIC_NAMES, "tp", "fp", "tn", "fn"}


def test_a_metric_has_exactly_one_formula() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Metric("x", "X", "X")
    with pytest.raises(ValueError, match="exactly one"):
        Metric("x", "X", "X", from_counts=lambda *c: c[0], from_cases=lambda c: c.score)


def test_metrics_package_never_imports_report() -> None:
    """Not even inside a function: the results are data, rendering is report's job."""
    for path in Path(metrics_pkg.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
                assert node.level == 0, f"{path.name}: relative import"
            else:
                continue
            for name in names:
                assert not name.startswith("cactus_features.report"), f"{path.name}: {name}"
    code = "import sys, cactus_features.metrics; print('cactus_features.report' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "False"
