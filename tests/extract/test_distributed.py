"""Multi-process extraction with torchrun and the gloo backend on the CPU."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from cactus_features import extract_features
from cactus_features.extract.verify import verify_file

ARGS = ["--backbone", "resnet18@32", "--weights", "none", "--chunk-size", "8", "--batch-size", "4"]


def _cli(img_dir, csv_path, cache, *extra) -> list[str]:
    return [
        "extract",
        "--data",
        str(img_dir),
        "--labels",
        str(csv_path),
        "--cache-dir",
        str(cache),
        "--quiet",
        *ARGS,
        *extra,
    ]


def _torchrun(img_dir, csv_path, cache, nproc=2) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "cactus_features",
        *_cli(img_dir, csv_path, cache),
    ]
    return subprocess.Popen(cmd, env=env, start_new_session=True)


def _kill_tree(pid: int) -> None:
    """SIGKILL a process and every descendant (torchrun puts workers in new sessions)."""

    def children(p: int) -> list[int]:
        try:
            with open(f"/proc/{p}/task/{p}/children") as fh:
                kids = [int(c) for c in fh.read().split()]
        except OSError:
            return []
        return kids + [g for k in kids for g in children(k)]

    for p in [pid, *children(pid)]:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _chunks(cache) -> list:
    return [p for p in cache.rglob("chunk-*.npy") if ".tmp" not in p.name]


def _single(img_dir, csv_path, cache):
    (fs,) = extract_features(
        img_dir,
        "resnet18@32",
        labels=csv_path,
        weights="none",
        cache_dir=cache,
        chunk_size=8,
        batch_size=4,
        quiet=True,
        distributed=False,
    )
    return fs


@pytest.mark.slow
def test_two_gloo_ranks_equal_single_process(kaggle_data, tmp_path):
    img_dir, csv_path = kaggle_data
    proc = _torchrun(img_dir, csv_path, tmp_path / "dist")
    assert proc.wait(timeout=180) == 0
    (path,) = list((tmp_path / "dist").rglob("*.h5"))
    single = _single(img_dir, csv_path, tmp_path / "one")
    assert path.name == single.path.name
    from cactus_features import load_features

    merged = load_features(path)
    assert merged.key["dataset_fingerprint"] == single.key["dataset_fingerprint"]  # sharded hash
    assert merged.attrs["model_info"]["ranks"] == 2
    assert np.array_equal(merged.embeddings, single.embeddings)
    assert np.array_equal(merged.split, single.split) and list(merged.ids) == list(single.ids)
    report = verify_file(path)
    assert report.ok, report.problems
    assert not list((tmp_path / "dist").rglob("*.parts"))


@pytest.mark.slow
def test_killed_rank_resumes_only_missing_chunks(kaggle_data, tmp_path):
    img_dir, csv_path = kaggle_data
    cache = tmp_path / "dist"
    proc = _torchrun(img_dir, csv_path, cache)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if len(_chunks(cache)) >= 2:
            break
        time.sleep(0.01)
    _kill_tree(proc.pid)
    proc.wait()
    time.sleep(0.5)
    if list(cache.rglob("*.h5")):
        pytest.skip("the run finished before it could be killed")
    kept = len(_chunks(cache))
    assert kept >= 2
    from click.testing import CliRunner

    from cactus_features.cli import _register, cli

    _register()
    result = CliRunner().invoke(cli, _cli(img_dir, csv_path, cache))
    assert result.exit_code == 0, result.output
    (path,) = list(cache.rglob("*.h5"))
    from cactus_features import load_features

    resumed = load_features(path)
    assert resumed.attrs["model_info"]["resumed_chunks"] == kept
    single = _single(img_dir, csv_path, tmp_path / "one")
    assert np.array_equal(resumed.embeddings, single.embeddings)
