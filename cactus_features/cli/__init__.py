"""The ``cactus-features`` command line.

Each sub-command lives in its own module and is registered here. Errors the
user can fix (:class:`~cactus_features.errors.UserError`) are printed on one line
and exit with code 2, without a traceback; Ctrl-C exits with 130.
"""

from __future__ import annotations

import atexit
import os
import sys
from typing import NoReturn

import click

from cactus_features._version import __version__
from cactus_features.cli.display import one_line_warnings
from cactus_features.errors import UserError


class _Group(click.Group):
    """A click group: user errors as one line and exit code 2, warnings as one line each."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            with one_line_warnings():
                return super().invoke(ctx)
        except UserError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo(
                "\ninterrupted: finished chunks are kept; run the same command again to resume",
                err=True,
            )
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cactus-features")
def cli() -> None:
    """Compare frozen image backbones fast: extract once, train heads in seconds, compare."""


def _register() -> None:
    from cactus_features.cli import compare, extract, label_efficiency, study, tools, train

    for module in (extract, train, compare, study, label_efficiency, tools):
        for command in module.COMMANDS:
            cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``cactus-features`` console script.

    Called without ``argv`` (the console script, ``python -m cactus_features``), the
    process ends as soon as the command is done: ``atexit`` handlers run and the
    output is flushed, but the interpreter's teardown of every loaded module (about
    0.4 s once torch is loaded) is skipped. Called with ``argv`` (tests, embedding),
    it raises ``SystemExit`` as click does.
    """
    _register()
    if argv is not None:
        cli.main(args=argv, prog_name="cactus-features")
        return
    try:
        cli.main(prog_name="cactus-features")
    except SystemExit as exc:
        _exit_now(exc.code)


def _exit_now(code: object) -> NoReturn:
    """End the process with ``code`` as ``sys.exit`` would, without the module teardown."""
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        print(code, file=sys.stderr)
        status = 1
    atexit._run_exitfuncs()  # logging's flush, coverage, ... (what a normal exit runs)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (``| head``): nothing left to say
            pass
    os._exit(status)
