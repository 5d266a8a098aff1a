"""Two real processes on one cache entry, and Ctrl-C.

* Two processes asked for the same key at once: exactly one computes (one writer of
  chunks and of the final file), the other waits and is served the same file.
* ``--lock-timeout 0`` while another process holds the lock: a clear one-line error.
* Readers polling the cache meanwhile never see a half-written file.
* SIGINT mid-extraction: exit code 130, one line saying how to resume, and a re-run
  resumes from the finished chunks.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import numpy as np

from cactus_features.errors import CacheError
from cactus_features.extract.verify import verify_file
from cactus_features.features import load_features
from cactus_features.store.rows import embeddings_checksum
from tests.reliability.conftest import (
    assert_user_error,
    extract_args,
    rglob_now,
    start_python,
    wait_for,
)

# A writer process: extraction slowed to DELAY seconds per chunk so that the two
# processes overlap for sure; every chunk save and final write is appended to AUDIT.
WRITER = r"""
import json, logging, os, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
from cactus_features import extract_features
from cactus_features.extract import cache, finish, pipeline

img_dir, csv_path, cache_dir, go, ready, audit, delay = sys.argv[1:8]

def note(text):
    with open(audit, "a") as fh:
        fh.write(f"{os.getpid()} {text}\n")

real_embed, real_save, real_write = pipeline.embed_chunk, cache.PartStore.save, finish.write_entry

def slow_embed(*args, **kwargs):
    time.sleep(float(delay))
    return real_embed(*args, **kwargs)

def audited_save(self, index, *args, **kwargs):
    note(f"chunk {index}")
    return real_save(self, index, *args, **kwargs)

def audited_write(path, **kw):
    note(f"final {path}")
    return real_write(path, **kw)

pipeline.embed_chunk = slow_embed
cache.PartStore.save = audited_save
finish.write_entry = audited_write
logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
Path(ready).touch()
while not Path(go).exists():
    time.sleep(0.002)
(fs,) = extract_features(img_dir, "resnet18@32", labels=csv_path, weights="none",
                         cache_dir=cache_dir, chunk_size=4, batch_size=4, workers=1, quiet=True)
print(json.dumps({"path": str(fs.path), "sha": fs.attrs["embeddings_sha256"]}))
"""

# The CLI, with each chunk slowed down so a SIGINT lands mid-extraction.
SLOW_CLI = r"""
import signal, sys, time
# a pytest-xdist worker may start children with SIGINT ignored; Ctrl-C must reach this one
signal.signal(signal.SIGINT, signal.default_int_handler)
import torch
torch.set_num_threads(1)
from cactus_features.extract import pipeline
real = pipeline.embed_chunk
def slow(*args, **kwargs):
    time.sleep(0.15)
    return real(*args, **kwargs)
pipeline.embed_chunk = slow
from cactus_features.cli import main
main(sys.argv[1:])
"""


def _start_writer(data, cache: Path, go: Path, tag: str, audit: Path, delay: float):
    img_dir, csv_path = data
    ready = cache.parent / f"ready-{tag}"
    proc = start_python(
        WRITER,
        img_dir,
        csv_path,
        cache,
        go,
        ready,
        audit,
        delay,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, ready


def _read_while_writing(cache: Path, procs: list[subprocess.Popen]) -> int:
    """Poll the cache like a reader until the writers end; every file read must be whole."""
    reads = 0
    deadline = time.monotonic() + 120
    while any(p.poll() is None for p in procs):
        assert time.monotonic() < deadline, "writers did not finish"
        for path in rglob_now(cache, "*.h5"):
            if path.name.startswith("."):
                continue  # temporary names are never read
            try:
                fs = load_features(path)
            except CacheError as exc:  # the file vanished between listing and opening
                assert "no such cache file" in str(exc)
                continue
            assert embeddings_checksum(fs.embeddings) == fs.attrs["embeddings_sha256"]
            reads += 1
        time.sleep(0.005)
    return reads


def _entry_folder_listing(cache: Path) -> list[str]:
    (folder,) = [p for p in cache.iterdir() if p.is_dir()]
    return sorted(p.name for p in folder.iterdir())


def test_two_processes_same_key_exactly_one_computes(small_data, tmp_path):
    cache, go, audit = tmp_path / "c", tmp_path / "go", tmp_path / "audit.log"
    writers = [_start_writer(small_data, cache, go, t, audit, 0.25) for t in "ab"]
    procs = [p for p, _ in writers]
    try:
        for proc, ready in writers:
            wait_for(ready.exists, 120, "writer start-up", proc)
        go.touch()  # both start extracting at the same moment
        _read_while_writing(cache, procs)
        outputs = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait()
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    results = [json.loads(out) for out, _ in outputs]
    assert results[0] == results[1]  # same file, same checksum
    logs = [err for _, err in outputs]
    computed = [log for log in logs if "wrote " in log]
    served = [log for log in logs if "finished by another process" in log]
    assert len(computed) == 1 and len(served) == 1, logs
    # never two writers: one pid saved every chunk and wrote the final file
    lines = [line.split(" ", 1) for line in audit.read_text().splitlines()]
    assert len({pid for pid, _ in lines}) == 1, lines
    assert sorted(what for _, what in lines if what.startswith("chunk")) == sorted(
        f"chunk {i}" for i in range(6)
    )
    assert sum(what.startswith("final") for _, what in lines) == 1
    # no stray partial files: the entry and its (empty) lock file only
    final = Path(results[0]["path"])
    assert _entry_folder_listing(cache) == sorted([final.name, final.with_suffix(".lock").name])
    assert verify_file(final).ok


def test_lock_timeout_zero_fails_clearly_while_another_process_holds_the_lock(
    small_data, tmp_path, run_cli
):
    img_dir, csv_path = small_data
    cache, go, audit = tmp_path / "c", tmp_path / "go", tmp_path / "audit.log"
    go.touch()
    proc, _ = _start_writer(small_data, cache, go, "a", audit, 0.4)
    try:
        # the writer holds the lock once its first chunk exists
        wait_for(lambda: rglob_now(cache, "chunk-000000.npy"), 120, "the first chunk", proc)
        args = extract_args(img_dir, csv_path, cache, "--backbone", "resnet18@32")
        r = run_cli(*args, "--chunk-size", "4", "--lock-timeout", "0")
        assert_user_error(r, "another process is extracting this entry", "--lock-timeout")
        assert proc.poll() is None, "the writer should still be running"
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err
    final = Path(json.loads(out)["path"])
    assert len({line.split()[0] for line in audit.read_text().splitlines()}) == 1
    assert verify_file(final).ok
    # once the lock is free, the same command is a cache hit
    r = run_cli(*args, "--chunk-size", "4", "--lock-timeout", "0")
    assert r.exit_code == 0, r.output
    assert str(final) in r.output


def test_ctrl_c_stops_cleanly_with_one_line_and_the_rerun_resumes(small_data, tmp_path, run_cli):
    img_dir, csv_path = small_data
    cache = tmp_path / "c"
    args = extract_args(img_dir, csv_path, cache, "--backbone", "resnet18@32", "--chunk-size", "4")
    proc = start_python(SLOW_CLI, *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: len(rglob_now(cache, "chunk-00000[0-9].npy")) >= 2, 120, "2 chunks", proc)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "interrupted" in lines[0] and "run the same command again to resume" in lines[0]
    assert not [p for p in cache.rglob("*.h5")], "an interrupted run left a cache file"
    kept = len(list(cache.rglob("chunk-[0-9][0-9][0-9][0-9][0-9][0-9].npy")))
    assert kept >= 2
    r = run_cli(*args)
    assert r.exit_code == 0, r.output
    (path,) = cache.rglob("*.h5")
    fs = load_features(path)
    assert fs.attrs["model_info"]["resumed_chunks"] == kept
    assert np.isfinite(fs.embeddings).all() and len(fs) == 24
    assert verify_file(path).ok
