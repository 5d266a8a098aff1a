"""CLI command ``warmup``: compile the native training kernels once, ahead of any run."""

from __future__ import annotations

import click


@click.command()
def warmup() -> None:
    """Compile the native kernels of the linear-head fast path now (about 10 s, once).

    They are cached on disk, so every later run loads them in milliseconds; a run
    that finds no cache compiles them when it starts, before its clock starts.
    """
    from cactus_features.heads.fastpath import kernels

    done = kernels.IMPORT_WARM_UP
    if done is None:
        click.echo(
            f"native kernels unavailable: {kernels.unavailable_reason()}; "
            "heads train through the torch path"
        )
        return
    click.echo(
        f"native kernels ready: {done.compiled} compiled, {done.loaded} loaded from the "
        f"cache, in {done.seconds:.2f}s ({done.cache_dir or 'Numba cache'})"
    )


COMMANDS = [warmup]
