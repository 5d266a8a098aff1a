"""Commands import only what they use (each run as its own process, ``sys.modules`` checked).

``--help``, ``info``, ``verify`` and ``metrics`` never import torch; a cache hit of a
Lite entry imports torch but not torchvision (whose detection ops load torch's
compiler stack), scipy, matplotlib, scikit-learn or Numba; ``train`` imports no
torchvision, scipy.stats or matplotlib. Timings: ``benchmarks/bench_cli.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from cactus_features import extract_features, train_head
from tests.conftest import write_kaggle

ROOT = Path(__file__).resolve().parents[2]

HEAVY = ("torch", "torchvision", "torch._dynamo", "scipy.stats", "matplotlib", "sklearn", "numba")

# Runs the CLI with argv, then prints which of HEAVY are imported, as JSON on stdout's last line.
PROBE = r"""
import json, sys
from cactus_features.cli import main
try:
    main(json.loads(sys.argv[1]))
except SystemExit as exc:
    if exc.code:
        raise
print(json.dumps([m for m in json.loads(sys.argv[2]) if m in sys.modules]))
"""


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A Lite cache entry of a small dataset, and a run file trained on it."""
    root = tmp_path_factory.mktemp("imports")
    img_dir, csv_path = write_kaggle(root / "data", n=40)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 32 px Lite features may be collapsed: not the point
        (fs,) = extract_features(
            img_dir, "efficientnet_lite0@32", labels=csv_path, cache_dir=root / "cache", quiet=True
        )
        run = train_head(fs, epochs=3, quiet=True)
    return {
        "data": img_dir,
        "labels": csv_path,
        "cache": root / "cache",
        "h5": fs.path,
        "run": run.path,
    }


def _imported(argv: list[str]) -> set[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(argv), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.splitlines()[-1]))


@pytest.mark.parametrize(
    "command",
    [["--help"], ["train", "--help"], ["info", "{h5}"], ["verify", "{h5}"], ["metrics", "{run}"]],
)
def test_light_commands_import_no_torch(made, command):
    argv = [part.format(**made) for part in command]
    assert _imported(argv) & set(HEAVY) == set()


def test_a_lite_cache_hit_imports_torch_but_nothing_it_does_not_use(made):
    argv = ["extract", "--data", str(made["data"]), "--labels", str(made["labels"])]
    argv += ["--backbone", "efficientnet_lite0@32", "--cache-dir", str(made["cache"]), "-q"]
    assert _imported(argv) & set(HEAVY) == {"torch"}


def test_train_imports_no_torchvision_stats_or_plotting(made):
    argv = ["train", str(made["h5"]), "--epochs", "3", "-q", "--overwrite"]
    assert _imported(argv) & {"torchvision", "torch._dynamo", "scipy.stats", "matplotlib"} == set()
