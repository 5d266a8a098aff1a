"""Command-line latency: whole ``cactus-features`` processes beside ``python -c "import torch"``.

Each command runs as its own process (``python -m cactus_features ...``, what the
console script runs), ``--repeats`` interleaved rounds, best wall time of each
(other processes only ever make a run slower):

* ``python -c "import torch"``: the floor of anything that touches a tensor (and the
  same ending with ``os._exit``, as the ``cactus-features`` entry point ends a process:
  without the interpreter's module teardown, about 0.4 s once torch is loaded);
* ``--help`` and ``info ENTRY``: should be well under 1 s (no torch);
* a cache hit: ``extract`` of the aerial-cactus training set (17,500 images) whose
  entry is in the cache: target at most 0.5 s beyond the torch import (it
  fingerprints the whole dataset, hashing every file, and opens the entry);
* ``train ENTRY``: the process minus the head's own training time (the seconds the
  command prints): target at most 0.5 s beyond the torch import.

The cache entry is copied from ``--cache-dir`` (e.g. a cache made by
``cactus-features extract ... --backbone efficientnet_lite0@64``) to a temporary
folder first, so nothing next to the original is written. The native kernels are
warmed up once before timing (``cactus-features warmup``): the one-off compile is
what that command prints.

Run ``python benchmarks/bench_cli.py --cache-dir CACHE`` (about a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_NO_TEARDOWN = "import os, torch; os._exit(0)"
"""The torch import as the CLI ends: without the module teardown (about 0.4 s with torch)."""

HIT_TIMEOUT = 120.0
"""Seconds the first (checking) cache-hit run may take: longer means it is extracting."""


def build_parser() -> argparse.ArgumentParser:
    """The command-line options (also read by ``tests/test_docs.py``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="aerial-cactus folder (train/, train.csv); default ../shared")
    ap.add_argument(
        "--cache-dir", default="cache", help="cache holding the entry (copied, never written)"
    )
    ap.add_argument("--backbone", default="efficientnet_lite0@64", help="NAME@RES of the entry")
    ap.add_argument("--epochs", type=int, default=500, help="epochs of the timed train")
    ap.add_argument("--repeats", type=int, default=3, help="timing = best of this many rounds")
    return ap


def _data(root: str | None) -> tuple[Path, Path]:
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "aerial-cactus"
    folder = Path(root or os.environ.get("CACTUS_DATA", default))
    img_dir, csv_path = folder / "train", folder / "train.csv"
    if not img_dir.is_dir() or not csv_path.is_file():
        sys.exit(f"no aerial-cactus data at {folder} (need train/, train.csv); pass --data DIR")
    return img_dir, csv_path


def _copy_entry(cache_dir: Path, backbone: str, into: Path) -> Path:
    """Copy the entries of ``backbone`` (``NAME@RES``) under ``cache_dir`` into ``into``."""
    name, _, res = backbone.partition("@")
    found = sorted(cache_dir.glob(f"*/{name}_*_{res}px_*.h5"))
    if not found:
        sys.exit(
            f"no {backbone} entry under {cache_dir}; extract it first: cactus-features "
            f"extract --data train/ --labels train.csv --backbone {backbone} "
            f"--cache-dir {cache_dir}"
        )
    for path in found:
        target = into / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return into / found[0].parent.name / found[0].name


def _run(argv: list[str], timeout: float | None = None) -> tuple[float, float, str]:
    """Wall and CPU (user + system) seconds of one whole process, and its stdout + stderr."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    cpu0 = _children_cpu()
    with tempfile.TemporaryFile("w+") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, text=True, env=env)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            sys.exit(
                f"ran over {timeout}s (extracting instead of a cache hit?): {shlex.join(argv)}"
            )
        seconds = time.perf_counter() - t0
        out.seek(0)
        text = out.read()
    usage = _children_cpu() - cpu0
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {shlex.join(argv)}\n{text[-2000:]}")
    return seconds, usage, text


def _children_cpu() -> float:
    """CPU seconds (user + system) of all the children that have ended so far."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _head_seconds(output: str) -> float:
    """The training time ``train`` prints (``... 500 epochs in 1.23s, ...``)."""
    found = re.search(r"epochs in ([0-9.]+)s", output)
    if found is None:
        sys.exit(f"no training time in the train output:\n{output}")
    return float(found.group(1))


def main() -> None:
    args = build_parser().parse_args()
    img_dir, csv_path = _data(args.data)
    py = sys.executable
    cf = [py, "-m", "cactus_features"]
    print(f"command: {shlex.join(['python', *sys.argv])}")
    print(f"machine: {os.cpu_count()} cores, {py}, load average {os.getloadavg()[0]:.2f}")
    folder = Path(tempfile.mkdtemp(prefix="bench_cli_"))
    try:
        entry = _copy_entry(Path(args.cache_dir), args.backbone, folder / "cache")
        hit = [*cf, "extract", "--data", str(img_dir), "--labels", str(csv_path)]
        hit += ["--backbone", args.backbone, "--cache-dir", str(folder / "cache")]
        _, _, text = _run(hit, timeout=HIT_TIMEOUT)
        if "cache hit" not in text:
            sys.exit(f"not a cache hit (the key differs?):\n{text}")
        _, _, warm = _run([*cf, "warmup"])
        print(f"one-off cost, paid before timing: {warm.strip()}")
        train = [*cf, "train", str(entry), "--epochs", str(args.epochs), "-q"]
        train += ["--out", str(folder / "runs"), "--overwrite"]
        commands = {
            'python -c "import torch"': [py, "-c", "import torch"],
            "import torch, no interpreter teardown": [py, "-c", _NO_TEARDOWN],
            "cactus-features --help": [*cf, "--help"],
            "cactus-features info ENTRY": [*cf, "info", str(entry)],
            f"cache hit: extract {args.backbone} (17,500 images)": [*hit, "-q"],
            f"train ENTRY --epochs {args.epochs}": train,
        }
        best = dict.fromkeys(commands, float("inf"))
        cpu = dict.fromkeys(commands, float("inf"))
        head = float("inf")
        for _ in range(max(1, args.repeats)):
            for label, argv in commands.items():
                seconds, used, text = _run(argv)
                if argv is train:
                    trained = _head_seconds(text)
                    head = min(head, trained)
                    seconds -= trained
                best[label] = min(best[label], seconds)
                cpu[label] = min(cpu[label], used)
        _report(best, cpu, head, args)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _report(
    best: dict[str, float], cpu: dict[str, float], head: float, args: argparse.Namespace
) -> None:
    torch_s = best['python -c "import torch"']
    print(f"\nbest of {args.repeats} interleaved rounds, whole processes")
    print(f"{'command':<56} {'wall s':>7} {'- torch':>8} {'cpu s':>6}  target")
    for label, seconds in best.items():
        if label.startswith(("python", "import torch")):
            target = ""
        elif label.startswith(("cactus-features --help", "cactus-features info")):
            target = "well under 1 s: " + ("ok" if seconds < 1.0 else "MISSED")
        else:
            target = "<= 0.5 s beyond torch: " + ("ok" if seconds - torch_s <= 0.5 else "MISSED")
        shown = label + (" minus the head" if label.startswith("train") else "")
        print(f"{shown:<56} {seconds:7.2f} {seconds - torch_s:+8.2f} {cpu[label]:6.2f}  {target}")
    print(
        f"(the head itself trained in {head:.2f}s; cpu s of train includes it; best of "
        f"{args.repeats})"
    )


if __name__ == "__main__":
    main()
