"""Option groups shared by several commands."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

import click

DATA_OPTIONS = [
    click.option(
        "--data",
        "data",
        required=True,
        type=click.Path(file_okay=False, path_type=str),
        help="Image folder (Kaggle layout with --labels, class folders, or unlabelled).",
    ),
    click.option("--labels", type=click.Path(dir_okay=False, path_type=str), help="Label CSV."),
    click.option(
        "--layout",
        type=click.Choice(["auto", "kaggle", "folders", "unlabelled"]),
        default="auto",
        show_default=True,
    ),
    click.option("--id-column", default="id", show_default=True, help="CSV column of image ids."),
    click.option(
        "--label-column", default="has_cactus", show_default=True, help="CSV column of labels."
    ),
    click.option(
        "--label-columns",
        help="Multi-label: several CSV columns of 0/1, comma-separated (e.g. cloud,road,water); "
        "replaces --label-column.",
    ),
    click.option(
        "--label-separator",
        help="Multi-label: read --label-column as label sets split at this separator "
        "(e.g. '|'; ' ' splits at any whitespace).",
    ),
    click.option("--classes", help="Expected class names, comma-separated (e.g. 0,1)."),
    click.option("--limit", type=int, help="Use only the first N images (quick tries)."),
]


def apply(options: list[Callable]) -> Callable:
    """Decorate a command with a list of click options, in order."""

    def decorator(func: Callable) -> Callable:
        for option in reversed(options):
            func = option(func)
        return func

    return decorator


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (tests and runners replace it)."""

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup_logging(quiet: bool) -> None:
    """Send the library's log lines to stderr: info normally, warnings only when quiet."""
    logger = logging.getLogger("cactus_features")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False
