"""CLI commands: ``train`` (one head per cache) and ``sweep`` (a grid of heads at once)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cactus_features.errors import ConfigError

_CACHES = click.argument(
    "caches", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False)
)


def _common(fn: Any) -> Any:
    """Options shared by ``train`` and ``sweep``."""
    options = [
        click.option(
            "--head", type=click.Choice(["linear", "mlp"]), default="linear", show_default=True
        ),
        click.option("--epochs", type=int, default=500, show_default=True, help="Adam epochs."),
        click.option(
            "--batch-size", type=int, default=None, help="Mini-batch size (default: full batch)."
        ),
        click.option(
            "--class-weight",
            default="inverse",
            show_default=True,
            help="inverse | balanced | none | values in class order, e.g. 0.75,0.25.",
        ),
        click.option("--hidden", default=None, help="MLP hidden sizes (default 512,128)."),
        click.option("--dropout", type=float, default=None, help="MLP dropout (default 0.2)."),
        click.option("--no-standardize", is_flag=True, help="Train on raw embeddings."),
        click.option(
            "--select",
            type=click.Choice(["val_auc", "val_loss", "last"]),
            default="val_auc",
            show_default=True,
            help="Which epoch's weights to keep.",
        ),
        click.option(
            "--concat",
            is_flag=True,
            help="Train on the concatenation of the given caches instead of one per cache.",
        ),
        click.option("--device", default=None, help="cpu, cuda, cuda:N (default: cuda if any)."),
        click.option(
            "--out",
            type=click.Path(path_type=Path),
            default=None,
            help="Run directory (default: runs/ next to each cache).",
        ),
        click.option("--overwrite", is_flag=True, help="Replace a run file of the same name."),
        click.option("--quiet", "-q", is_flag=True, help="Only print the result lines."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _head_kwargs(head: str, hidden: str | None, dropout: float | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if hidden is not None:
        kwargs["hidden"] = hidden
    if dropout is not None:
        kwargs["dropout"] = dropout
    if head == "linear" and kwargs:
        raise ConfigError("--hidden and --dropout apply to --head mlp only; drop them")
    return kwargs


def _inputs(caches: tuple[Path, ...], concat: bool) -> list[Any]:
    if concat:
        if len(caches) < 2:
            raise ConfigError("--concat needs two or more caches to concatenate")
        return [list(caches)]
    return list(caches)


def _weights(values: Any) -> str:
    return "[" + ", ".join(f"{w:.4f}" for w in values) + "]"


@click.command("train")
@_CACHES
@_common
@click.option("--lr", type=float, default=5e-4, show_default=True, help="Adam learning rate.")
@click.option("--weight-decay", type=float, default=0.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--solver", type=click.Choice(["adam", "lbfgs"]), default="adam", show_default=True)
@click.option(
    "--C", "C", type=float, default=1.0, show_default=True, help="L-BFGS inverse L2 strength."
)
def train(
    caches: tuple[Path, ...],
    head: str,
    epochs: int,
    batch_size: int | None,
    class_weight: str,
    hidden: str | None,
    dropout: float | None,
    no_standardize: bool,
    select: str,
    concat: bool,
    device: str | None,
    out: Path | None,
    overwrite: bool,
    quiet: bool,
    lr: float,
    weight_decay: float,
    seed: int,
    solver: str,
    C: float,
) -> None:
    """Train the same head on each CACHE (or on their concatenation) and save run files.

    Prints one line per backbone: name, epochs, seconds, best epoch, validation
    AUC, class weights and the run file.
    """
    from cactus_features.heads import HeadConfig, parse_class_weight, train_with_config

    config = HeadConfig.create(
        head,
        epochs=epochs,
        lr=lr,
        weight_decay=weight_decay,
        batch_size=batch_size,
        seed=seed,
        class_weight=parse_class_weight(class_weight),
        standardize=not no_standardize,
        solver=solver,
        C=C,
        select=select,
        **_head_kwargs(head, hidden, dropout),
    )
    for features in _inputs(caches, concat):
        result = train_with_config(
            features, config, device=device, out=out, overwrite=overwrite, quiet=quiet
        )
        info = result.run.info
        click.echo(
            f"{info['backbone_name']}: {info['epochs_run']} epochs in {result.seconds:.2f}s, "
            f"best epoch {result.best_epoch}, val AUC {result.val_auc:.4f}, class weights "
            f"{_weights(result.class_weights)} ({info['class_weight_mode']}) -> {result.path}"
        )


@click.command("sweep")
@_CACHES
@_common
@click.option(
    "--lr",
    "lrs",
    type=float,
    multiple=True,
    help="Learning rate (repeat for a grid; default 1e-3, 5e-4, 1e-4).",
)
@click.option(
    "--weight-decay", "weight_decays", type=float, multiple=True, help="Weight decay (repeat)."
)
@click.option("--seed", "seeds", type=int, multiple=True, help="Seed (repeat; default 0).")
def sweep(
    caches: tuple[Path, ...],
    head: str,
    epochs: int,
    batch_size: int | None,
    class_weight: str,
    hidden: str | None,
    dropout: float | None,
    no_standardize: bool,
    select: str,
    concat: bool,
    device: str | None,
    out: Path | None,
    overwrite: bool,
    quiet: bool,
    lrs: tuple[float, ...],
    weight_decays: tuple[float, ...],
    seeds: tuple[int, ...],
) -> None:
    """Train a grid of heads (lr x weight decay x seed) at once on each CACHE; keep the best.

    All grid points train together in one batched computation; the one with the
    best validation AUC is saved as the run, the whole grid as a CSV next to it.
    """
    from cactus_features.heads import parse_class_weight, sweep_heads

    kwargs = _head_kwargs(head, hidden, dropout)
    for features in _inputs(caches, concat):
        result = sweep_heads(
            features,
            lrs=lrs or (1e-3, 5e-4, 1e-4),
            weight_decays=weight_decays or (0.0,),
            seeds=seeds or (0,),
            head=head,
            epochs=epochs,
            batch_size=batch_size,
            class_weight=parse_class_weight(class_weight),
            standardize=not no_standardize,
            select=select,
            device=device,
            out=out,
            overwrite=overwrite,
            quiet=quiet,
            **kwargs,
        )
        best = result.best
        cfg = best.config
        click.echo(
            f"{best.run.info['backbone_name']}: {len(result.grid)} heads in "
            f"{result.seconds:.2f}s ({result.seconds_per_head:.3f}s/head), best lr {cfg.lr:g} "
            f"wd {cfg.weight_decay:g} seed {cfg.seed}: epoch {best.best_epoch}, val AUC "
            f"{best.val_auc:.4f}, class weights {_weights(best.class_weights)} -> {best.path} "
            f"(grid: {result.grid_path})"
        )


COMMANDS = [train, sweep]
