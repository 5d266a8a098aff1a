"""Feature cache: HDF5 write/read throughput against NumPy, and peak memory of an extraction.

1. Throughput on one ``[rows, dim]`` float32 array (default 17,500 x 2,048, the
   ResNet-50 embeddings of the Kaggle training set, 143 MB): our ``write_entry``
   (which also hashes the embeddings and fsyncs) and ``load_features(...).embeddings``
   against ``numpy.save`` / ``numpy.load`` of the same array, best of ``--repeats``,
   page cache warm.
2. Peak resident memory (``VmHWM``, the kernel's high-water mark of the
   resident set) of a 224 px extraction in a fresh subprocess, at two dataset
   sizes (default 4,375 and all 17,500 images), with a small fast backbone
   (default ``mobilenet_v3_small``, random init): the memory is what is
   measured, not the model. The import baseline (torch and the
   library loaded, nothing run) is printed beside it.

Run ``python benchmarks/bench_cache.py`` (a few minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import best_of, data_paths, print_header

from cactus_features.features import load_features
from cactus_features.store.entries import write_entry
from cactus_features.store.rows import embeddings_checksum

CHILD = r"""
import json, logging, resource, sys, time, warnings


def peak_kib():
    # VmHWM: the peak RSS of this process image. ru_maxrss would not do: Linux
    # carries the forking parent's peak over into it across exec.
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


warnings.simplefilter("ignore")
from cactus_features import extract_features

logging.getLogger("cactus_features").setLevel(logging.ERROR)
baseline = peak_kib()
data, labels, backbone, limit, cache = sys.argv[1:6]
t0 = time.perf_counter()
(fs,) = extract_features(data, backbone, labels=labels, weights="none", limit=int(limit),
                         cache_dir=cache, quiet=True)
seconds = time.perf_counter() - t0
print(json.dumps({"baseline_kib": baseline, "peak_kib": peak_kib(), "seconds": seconds,
                  "images": len(fs), "dim": fs.dim}))
"""


def throughput(rows: int, dim: int, repeats: int, folder: Path) -> list[tuple[str, float, float]]:
    """``(what, seconds, MB/s)`` for our cache and NumPy, writing and reading."""
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((rows, dim), dtype=np.float32)
    mb = emb.nbytes / 1e6
    ids = np.array([f"{i:032x}.jpg" for i in range(rows)], dtype=object)
    labels = (rng.random(rows) < 0.75).astype(np.int64)
    split = rng.integers(0, 3, rows).astype(np.uint8)
    key = {"backbone": "bench", "resolution": 224, "rows": rows, "dim": dim}
    h5 = folder / "bench.h5"
    npy = folder / "bench.npy"

    def ours_write() -> None:
        write_entry(
            h5,
            embeddings=emb,
            ids=ids,
            labels=labels,
            split=split,
            key=key,
            class_names=["0", "1"],
            json_attrs={"timings": {}},
            plain_attrs={"n_images": rows},
        )

    def np_write(sync: bool) -> None:
        with open(npy, "wb") as fh:
            np.save(fh, emb, allow_pickle=False)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())

    out = []
    for what, fn in [
        ("write_entry (hash + fsync)", ours_write),
        ("numpy.save", lambda: np_write(False)),
        ("numpy.save + fsync", lambda: np_write(True)),
        ("  of which sha256 of the array", lambda: embeddings_checksum(emb)),
    ]:
        s, _ = best_of(fn, repeats)
        out.append((what, s, mb / s))
    got_ours = load_features(h5).embeddings
    got_np = np.load(npy)
    assert np.array_equal(got_ours, emb) and np.array_equal(got_np, emb)
    for what, fn in [
        ("load_features(...).embeddings", lambda: load_features(h5).embeddings),
        ("numpy.load", lambda: np.load(npy)),
        ("numpy.load mmap + copy", lambda: np.array(np.load(npy, mmap_mode="r"))),
    ]:
        s, _ = best_of(fn, repeats)
        out.append((what, s, mb / s))
    return out


def peak_memory(img_dir: Path, csv_path: Path, backbone: str, limit: int, folder: Path) -> dict:
    """Run one extraction in a fresh interpreter; its baseline and peak ``ru_maxrss``."""
    cache = tempfile.mkdtemp(dir=folder)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(img_dir), str(csv_path), backbone, str(limit), cache],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        sys.exit(f"extraction subprocess failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def build_parser() -> argparse.ArgumentParser:
    """The command-line options (also read by ``tests/test_docs.py``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="aerial-cactus folder (train/, train.csv)")
    ap.add_argument("--rows", type=int, default=17500)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=3, help="timing = best of this many runs")
    ap.add_argument("--backbone", default="mobilenet_v3_small", help="for the memory runs")
    ap.add_argument("--resolution", type=int, default=224, help="for the memory runs")
    ap.add_argument(
        "--limits", default="4375,17500", help="dataset sizes of the memory runs (comma list)"
    )
    ap.add_argument("--skip-memory", action="store_true")
    return ap


def main() -> None:
    args = build_parser().parse_args()
    print_header()
    folder = Path(tempfile.mkdtemp(prefix="bench_cache_"))
    try:
        _run(args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run(args: argparse.Namespace, folder: Path) -> None:
    print(
        f"\n1. throughput, [{args.rows}, {args.dim}] float32 "
        f"({args.rows * args.dim * 4 / 1e6:.0f} MB), best of {args.repeats}, "
        f"page cache warm, files in {folder}"
    )
    for what, s, rate in throughput(args.rows, args.dim, args.repeats, folder):
        print(f"  {what:34s} {s * 1e3:8.1f} ms  {rate:8.0f} MB/s")

    if args.skip_memory:
        return
    img_dir, csv_path = data_paths(args.data)
    name = f"{args.backbone}@{args.resolution}"
    print(f"\n2. peak resident memory of extract_features({name}, weights=none), fresh process")
    for limit in [int(x) for x in args.limits.split(",")]:
        t0 = time.perf_counter()
        r = peak_memory(img_dir, csv_path, name, limit, folder)
        print(
            f"  {r['images']:6d} images: peak {r['peak_kib'] / 2**20:.2f} GiB "
            f"(import baseline {r['baseline_kib'] / 2**20:.2f} GiB, "
            f"extraction adds {(r['peak_kib'] - r['baseline_kib']) / 2**10:.0f} MiB), "
            f"{r['seconds']:.0f}s, {r['images'] / r['seconds']:.0f} img/s "
            f"(wall {time.perf_counter() - t0:.0f}s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
