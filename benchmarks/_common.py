"""Helpers shared by the benchmark scripts: data location, timing, machine facts."""

from __future__ import annotations

import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "aerial-cactus"
"""The Kaggle aerial-cactus data (``train/`` and ``train.csv``), beside the checkout."""


def data_paths(root: str | Path | None) -> tuple[Path, Path]:
    """``(image folder, label CSV)`` of the aerial-cactus data; exits with a hint when absent."""
    root = Path(root or os.environ.get("CACTUS_DATA", DEFAULT_DATA))
    img_dir, csv_path = root / "train", root / "train.csv"
    if not img_dir.is_dir() or not csv_path.is_file():
        sys.exit(
            f"no aerial-cactus data at {root} (need train/ and train.csv); "
            "pass --data DIR or set CACTUS_DATA"
        )
    return img_dir, csv_path


def command_line() -> str:
    """The command that is running, ready to paste."""
    return " ".join(["python", *map(shlex.quote, sys.argv)])


def cpu_busy_share(seconds: float = 1.0) -> float | None:
    """Share of all CPU time spent busy over ``seconds`` (Linux ``/proc/stat``), else ``None``."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as fh:
            values = [int(v) for v in fh.readline().split()[1:]]
        return values[3] + values[4], sum(values)

    try:
        idle0, total0 = sample()
        time.sleep(seconds)
        idle1, total1 = sample()
    except OSError:
        return None
    return 1.0 - (idle1 - idle0) / max(1, total1 - total0)


def machine_summary() -> str:
    """One line: CPU model, cores, torch threads and versions."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{model}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} intra-op threads), python {platform.python_version()}"
    )


def best_of(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Fastest wall time of ``repeats`` calls (seconds) and the last call's result.

    The best of several runs, not the mean: on a shared machine other processes
    only ever make a run slower.
    """
    best, result = float("inf"), None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def matmul_flops(dtype: torch.dtype, *, n: int = 2048, repeats: int = 5) -> float:
    """Best FLOP/s of ``torch.mm`` of two ``n x n`` matrices on the CPU (2 n^3 FLOPs each)."""
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    torch.mm(a, b)  # warm-up: thread pool, kernels
    seconds, _ = best_of(lambda: torch.mm(a, b), repeats)
    return 2 * n**3 / seconds


def print_table(rows: list[list[str]], header: list[str]) -> None:
    """A plain fixed-width table."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))


def print_header() -> None:
    """Print the exact command, the machine and how busy the CPU was before the start."""
    print(f"command: {command_line()}")
    print(f"machine: {machine_summary()}")
    busy = cpu_busy_share()
    if busy is not None:
        print(f"CPU busy before start (other processes): {busy:.0%}")
