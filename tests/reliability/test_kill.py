"""SIGKILL at random points of an extraction, many times: no file is ever read as
complete before it is, finished chunks are never torn, and the resumed result is
bit-identical to an uninterrupted run.

The killed processes are real: a fork server (``_zygote.py``) pays the imports once
and forks one extraction per attempt; this test sends each SIGKILL itself.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cactus_features.errors import CacheError
from cactus_features.extract.verify import verify_file
from cactus_features.features import load_features
from cactus_features.store.entries import is_complete
from tests.reliability.conftest import SUBPROCESS_ENV, LineReader, wait_for

ZYGOTE = Path(__file__).with_name("_zygote.py")
BACKBONE = "resnet18@32"
CHUNK = 4
N_RANDOM_KILLS = 8
CHUNK_GLOB = "chunk-[0-9][0-9][0-9][0-9][0-9][0-9].npy"  # not the chunk-N.tmpPID.npy in flight
SEED = int(os.environ.get("CACTUS_KILL_SEED", "20240607"))


class Zygote:
    """The fork server, spoken to over its stdin/stdout."""

    def __init__(self, img_dir: Path, csv_path: Path, log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, str(ZYGOTE), str(img_dir), str(csv_path), BACKBONE, str(CHUNK)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(log, "wb"),
            env=SUBPROCESS_ENV,
        )
        self.out = LineReader(self.proc.stdout)
        self.running: int | None = None  # the child whose end is not reported yet
        self._read(90)  # {"ready": pid}: the imports are done

    def _read(self, timeout: float) -> dict:
        try:
            return json.loads(self.out.readline(timeout))
        except (TimeoutError, EOFError) as exc:
            raise AssertionError(f"fork server: {exc}\n{self.log.read_text()}") from None

    def start(self, cache: Path, pause: str | None = None) -> int:
        """Fork one extraction into ``cache``; return its pid."""
        self.proc.stdin.write(json.dumps({"cache": str(cache), "pause": pause}).encode() + b"\n")
        self.proc.stdin.flush()
        self.running = self._read(30)["pid"]
        return self.running

    def result(self, timeout: float = 90) -> dict:
        """How the last child ended: ``{"signal": 9}`` or ``{"exit": 0}``."""
        ended = self._read(timeout)
        self.running = None
        return ended

    def close(self) -> None:
        if self.running is not None:  # a failed test left a child running (or paused)
            _kill(self.running)
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:  # it had already finished
        pass


def _chunk_count(parts: Path) -> int:
    try:  # the folder vanishes when a run finishes
        return sum(1 for _ in parts.glob(CHUNK_GLOB))
    except FileNotFoundError:
        return 0


def _check_invariants(cache: Path, final: Path, reference: np.ndarray) -> None:
    """What must hold after any kill, wherever it landed."""
    visible = [p for p in cache.rglob("*.h5") if not p.name.startswith(".")]
    assert set(visible) <= {final}, f"unexpected cache files {visible}"
    if final.exists():  # only a finished run may leave the final name behind
        assert is_complete(final)
        assert np.array_equal(load_features(final).embeddings, reference)
    else:
        assert not is_complete(final)
        with pytest.raises(CacheError, match="no such cache file"):
            load_features(final)
    parts = final.with_suffix(".parts")
    for chunk in parts.glob(CHUNK_GLOB) if parts.is_dir() else []:
        index = int(chunk.stem.split("-")[1])
        rows = slice(index * CHUNK, (index + 1) * CHUNK)
        saved = np.load(chunk, allow_pickle=False)
        assert np.array_equal(saved, reference[rows]), f"{chunk.name} is torn or wrong"


def _wait_for_random_point(parts: Path, n_chunks: int, rng: random.Random) -> str:
    """Wait until a random point of a running extraction; return what it was."""
    done = _chunk_count(parts)
    if done < n_chunks - 1 and rng.random() < 0.6:
        # right after a random number of new chunks: mid-model stage
        target = min(n_chunks - 1, done + rng.randint(1, 4))
        wait_for(lambda: _chunk_count(parts) >= target, 60, f"{target} chunks")
        return f"after {target} chunks"
    # a random moment of the start-up (fingerprint, scan, lock, model build), or
    # just after the first new chunk, whichever comes first
    delay = rng.uniform(0.0, 0.6)
    t0 = time.monotonic()
    wait_for(lambda: time.monotonic() - t0 > delay or _chunk_count(parts) > done, 60, "delay")
    return f"after {delay:.2f}s"


def test_repeated_sigkill_then_resume_equals_uninterrupted(kaggle_data, tmp_path):
    img_dir, csv_path = kaggle_data  # 60 images: 15 chunks of 4
    n_chunks = 15
    rng = random.Random(SEED)
    zygote = Zygote(img_dir, csv_path, tmp_path / "zygote.log")
    try:
        ref_cache = tmp_path / "reference"
        zygote.start(ref_cache)
        assert zygote.result().get("exit") == 0, (tmp_path / "zygote.log").read_text()
        (ref_path,) = ref_cache.rglob("*.h5")
        reference = load_features(ref_path)
        ref_emb = reference.embeddings
        cache = tmp_path / "killed"
        final = cache / ref_path.relative_to(ref_cache)
        parts = final.with_suffix(".parts")

        history = []
        for _ in range(N_RANDOM_KILLS):
            pid = zygote.start(cache)
            trigger = _wait_for_random_point(parts, n_chunks, rng)
            _kill(pid)
            history.append((trigger, zygote.result()))
            _check_invariants(cache, final, ref_emb)
            if final.exists():  # the run won the race and finished: start over
                final.unlink()
        print("kills:", history)  # shown when the test fails
        killed = [h for h in history if h[1].get("signal") == signal.SIGKILL]
        assert len(killed) >= N_RANDOM_KILLS - 2, history

        # two deterministic windows of the final write: half-written, and complete
        # under the temporary name but not yet renamed
        for pause in ("mid_write", "before_rename"):
            pid = zygote.start(cache, pause)
            marker = cache / f"paused-{pid}"
            wait_for(marker.exists, 90, f"the {pause} window")
            _kill(pid)
            assert zygote.result().get("signal") == signal.SIGKILL
            marker.unlink()
            assert list(final.parent.glob(f".{final.stem}.tmp*.h5")), "no torn tmp file?"
            _check_invariants(cache, final, ref_emb)

        zygote.start(cache)
        assert zygote.result().get("exit") == 0, (tmp_path / "zygote.log").read_text()
    finally:
        zygote.close()

    resumed = load_features(final)
    assert resumed.attrs["model_info"]["resumed_chunks"] == n_chunks
    assert np.array_equal(resumed.embeddings, ref_emb)
    assert resumed.attrs["embeddings_sha256"] == reference.attrs["embeddings_sha256"]
    for name in ("ids", "labels", "split"):
        assert np.array_equal(getattr(resumed, name), getattr(reference, name))
    assert not parts.exists()
    assert verify_file(final).ok
