"""A real SIGKILL of an extracting subprocess, then a resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np

from cactus_features import extract_features

SCRIPT = """
import sys
from cactus_features import extract_features
extract_features(sys.argv[1], "resnet18@48", labels=sys.argv[2], weights="none",
                 cache_dir=sys.argv[3], chunk_size=4, batch_size=4, quiet=True)
"""


def _run_and_kill(img_dir, csv_path, cache, after_chunks: int) -> bool:
    """Start an extraction and SIGKILL it once ``after_chunks`` chunks exist. True if killed."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(img_dir), str(csv_path), str(cache)], env=env
    )
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if len(list(cache.rglob("chunk-*.npy"))) >= after_chunks:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.01)
    proc.wait()
    return False


def test_sigkill_then_resume_equals_uninterrupted(kaggle_data, tmp_path):
    img_dir, csv_path = kaggle_data
    cache = tmp_path / "killed"
    killed = [_run_and_kill(img_dir, csv_path, cache, n) for n in (2, 6)]
    assert any(killed), "the extraction finished before it could be killed"
    assert not list(cache.rglob("*.h5")), "a killed run left a file that reads as complete"
    assert list(cache.rglob("chunk-*.npy"))
    (resumed,) = extract_features(
        img_dir,
        "resnet18@48",
        labels=csv_path,
        weights="none",
        cache_dir=cache,
        chunk_size=4,
        batch_size=4,
        quiet=True,
    )
    assert resumed.attrs["model_info"]["resumed_chunks"] > 0
    (clean,) = extract_features(
        img_dir,
        "resnet18@48",
        labels=csv_path,
        weights="none",
        cache_dir=tmp_path / "clean",
        chunk_size=4,
        batch_size=4,
        quiet=True,
    )
    assert np.array_equal(resumed.embeddings, clean.embeddings)
    assert resumed.attrs["embeddings_sha256"] == clean.attrs["embeddings_sha256"]
    assert not list(cache.rglob("*.parts"))
