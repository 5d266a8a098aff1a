"""The native kernels compile at import (or load from the disk cache), never in a timed run;
without Numba everything trains through the torch path, said once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cactus_features.heads import sweep_heads, train_head
from cactus_features.heads.fastpath import kernels

from .synthetic import make_features

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not kernels.available(), reason="numba not installed")


def _signatures() -> dict[str, int]:
    return {name: len(getattr(kernels, name).signatures) for name in kernels.SIGNATURES}


def test_import_compiled_every_declared_signature():
    assert kernels.IMPORT_WARM_UP is not None
    assert kernels.IMPORT_WARM_UP.compiled + kernels.IMPORT_WARM_UP.loaded == sum(
        len(s) for s in kernels.SIGNATURES.values()
    )
    assert _signatures() == {name: len(s) for name, s in kernels.SIGNATURES.items()}
    again = kernels.warm_up()
    assert (again.compiled, again.loaded) == (0, 0)


@pytest.mark.parametrize("seeds", [(0,), (0, 1, 2)])
def test_training_compiles_nothing_beyond_the_declared_signatures(seeds):
    """Every type the engine passes was compiled at import: no compile in the timed loop."""
    fs = make_features(n=300, d=24)
    before = _signatures()
    train_head(fs, epochs=5, save=False)
    sweep_heads(fs, lrs=(1e-3,), seeds=seeds, epochs=5, save=False)
    assert _signatures() == before


WITHOUT_NUMBA = r"""
import sys, warnings
sys.modules["numba"] = None  # import numba -> ImportError
warnings.simplefilter("always")
from tests.heads.synthetic import make_features
from cactus_features.heads import train_head
from cactus_features.heads.fastpath import kernels
with warnings.catch_warnings(record=True) as record:
    warnings.simplefilter("always")
    runs = [
        train_head(make_features(n=200, d=8), preset="report", epochs=3, save=False)
        for _ in range(2)
    ]  # the Adam recipe: the fused engine's kernels
said = [str(w.message) for w in record if "native kernels unavailable" in str(w.message)]
print(kernels.available(), runs[0].run.info.get("kernel"), len(said))
print(said[0] if said else "")
"""


def test_without_numba_heads_train_through_torch_said_once():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", WITHOUT_NUMBA],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    first, message = out.stdout.splitlines()[:2]
    assert first.split()[0] == "False" and first.split()[2] == "1", out.stdout
    assert "numba cannot be imported" in message and "torch path" in message


def test_the_warmup_command_reports_the_kernels(capsys):
    from cactus_features.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["warmup"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("native kernels ready: ") and "loaded from the cache" in out
