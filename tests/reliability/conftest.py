"""Helpers of the reliability suite: the CLI in-process, subprocess plumbing, small data."""

from __future__ import annotations

import logging
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import click.testing
import pytest
import torch

from cactus_features.cli import _register, cli
from tests.conftest import write_kaggle

_registered = False

# Every subprocess of this suite: one torch thread, so two pytest workers and their
# children share 2 cores without oversubscription, and results are reproducible.
SUBPROCESS_ENV = {
    **os.environ,
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "PYTHONUNBUFFERED": "1",
    "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]
    ),
}


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One torch thread per test: with ``-n 2`` on two cores, more threads only spin."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _drop_cli_log_handlers() -> None:
    """Remove the handler ``setup_logging`` adds: it holds the stderr of the run that made it."""
    logger = logging.getLogger("cactus_features")
    for handler in list(logger.handlers):
        if getattr(handler, "_cactus_cli", False):
            logger.removeHandler(handler)


class CLI:
    """``cactus-features`` run in-process through click's test runner."""

    def __init__(self) -> None:
        global _registered
        if not _registered:
            _register()
            _registered = True
        self.runner = click.testing.CliRunner()

    def __call__(self, *args: object) -> click.testing.Result:
        _drop_cli_log_handlers()
        try:
            return self.runner.invoke(cli, [str(a) for a in args])
        finally:
            _drop_cli_log_handlers()


@pytest.fixture
def run_cli() -> CLI:
    """Call as ``run_cli("extract", "--data", ...)``; returns the click ``Result``."""
    return CLI()


def assert_user_error(result: click.testing.Result, *needles: str) -> str:
    """Exit code 2, one ``error:`` line naming every needle, and no traceback.

    Returns:
        The error line.
    """
    output = result.output
    assert result.exit_code == 2, f"exit {result.exit_code}: {output}\n{result.exception!r}"
    assert "Traceback" not in output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


@pytest.fixture
def small_data(tmp_path: Path) -> tuple[Path, Path]:
    """24 RGB 32x32 JPEGs (Kaggle layout): 14 of class 0, 10 of class 1; each split gets both."""
    return write_kaggle(tmp_path / "small", n=24, pos_share=0.5)


def extract_args(img_dir: Path, csv_path: Path, cache: Path, *extra: object) -> list[object]:
    """The arguments of a fast CLI extraction (random init, fp32, quiet)."""
    return [
        "extract",
        "--data",
        img_dir,
        "--labels",
        csv_path,
        "--weights",
        "none",
        "--cache-dir",
        cache,
        "--workers",
        "2",
        "-q",
        *extra,
    ]


class LineReader:
    """Read whole lines from a pipe with a deadline (never blocks a test forever)."""

    def __init__(self, stream) -> None:
        self.fd = stream.fileno()
        self.buffer = b""

    def readline(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no line within {timeout}s (have {self.buffer!r})")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    raise EOFError(f"pipe closed (have {self.buffer!r})")
                self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode()


def start_python(code: str, *args: object, **kw) -> subprocess.Popen:
    """Start ``python -c code args...`` with the suite's environment."""
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)],
        env=SUBPROCESS_ENV,
        **kw,
    )


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    """Poll ``predicate`` every 2 ms; fail the test (not hang) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process ended (exit {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.002)


def rglob_now(root: Path, pattern: str) -> list[Path]:
    """``root.rglob(pattern)`` while another process adds and removes files there."""
    for _ in range(100):
        try:
            return list(root.rglob(pattern))
        except FileNotFoundError:  # a folder vanished during the walk: look again
            time.sleep(0.001)
    return list(root.rglob(pattern))
