"""How the command line shows warnings: one ``warning: ...`` line on stderr each."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from cactus_features.notices import CactusFeaturesWarning


@contextmanager
def one_line_warnings() -> Iterator[None]:
    """Show every warning raised inside as one line on stderr, while the command runs.

    The library's own warnings (:class:`CactusFeaturesWarning`) are shown on every
    event, as ``warning: <message>``; other libraries' warnings once per place,
    with their category and place in brackets. Nothing is shown twice and no
    source line is printed. The previous warning settings come back afterwards.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("always", CactusFeaturesWarning)
        warnings.showwarning = show_warning
        yield


def show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: object = None,
    line: str | None = None,
) -> None:
    """A :func:`warnings.showwarning` that writes one ``warning: ...`` line to stderr."""
    text = " ".join(str(message).split())
    if not issubclass(category, CactusFeaturesWarning):
        text += f" [{category.__name__}, {Path(filename).name}:{lineno}]"
    click.secho(f"warning: {text}", fg="yellow", file=sys.stderr)
