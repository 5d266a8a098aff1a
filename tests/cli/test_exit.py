"""The console entry ends the process at once, with the command's exit code and all output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "cactus_features", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_output_is_flushed_and_the_exit_code_kept():
    ok = _cli("--help")
    assert ok.returncode == 0 and ok.stdout.startswith("Usage: cactus-features")
    assert "warmup" in ok.stdout and ok.stderr == ""
    bad = _cli("info", str(ROOT / "no-such-file.h5"))
    assert bad.returncode == 2 and bad.stdout == ""
    missing = ROOT / "no-such-file.h5"
    assert bad.stderr.splitlines() == [
        f"error: {missing}: no such cache file; run `cactus-features extract` first"
    ]
