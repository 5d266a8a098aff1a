"""CLI commands: ``train`` (one head per cache) and ``sweep`` (a grid of heads at once)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import click

from cactus_features.cli.options import apply
from cactus_features.errors import ConfigError
from cactus_features.heads.config import CLI, CliOption, HeadConfig
from cactus_features.heads.prepare.class_weights import format_class_weights

_CACHES = click.argument(
    "caches", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False)
)
_FIELDS = {f.name: f for f in fields(HeadConfig)}
COMMON_FIELDS = (
    "head",
    "epochs",
    "batch_size",
    "class_weight",
    "hidden",
    "dropout",
    "standardize",
    "scale",
    "select",
)
"""The :class:`HeadConfig` fields both ``train`` and ``sweep`` take as options, in help order."""
TRAIN_FIELDS = ("preset", "lr", "weight_decay", "seed", "solver", "l2_grid", "C", "positive_class")
"""The fields only ``train`` takes (``sweep`` takes lists of the first three)."""


def config_option(name: str) -> Callable[[Any], Any]:
    """The click option of a :class:`HeadConfig` field, from its :class:`CliOption`.

    The option is ``--`` + the field name (``_`` as ``-``) and stores the field's name;
    its choices are the field's. It has no default of its own: an option left out
    takes the preset's value (:data:`~cactus_features.heads.config.PRESETS`; the
    ``tuned`` preset unless ``--solver`` or an Adam-only option is given), else the
    :class:`HeadConfig` default.
    """
    f = _FIELDS[name]
    spec: CliOption = f.metadata[CLI]
    if spec.negate is not None:
        return click.option(spec.negate, name, flag_value=False, default=None, help=spec.help)
    kind = click.Choice(list(spec.choices)) if spec.choices else spec.type
    return click.option(
        "--" + name.replace("_", "-"), name, type=kind, default=None, help=spec.help
    )


def config_values(params: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """Take the fields' values out of a command's ``params``, as :class:`HeadConfig` options.

    Options left unset are left out (the preset or the field default applies); text is
    parsed where the field says.

    Raises:
        ConfigError: ``--hidden`` or ``--dropout`` given for a linear head.
    """
    values: dict[str, Any] = {}
    for name in names:
        value, spec = params.pop(name), _FIELDS[name].metadata[CLI]
        if value is None:
            continue
        values[name] = spec.parse(value) if spec.parse is not None else value
    given = [n for n in names if _FIELDS[n].metadata[CLI].head_default and n in values]
    if values.get("head", "linear") == "linear" and given:
        raise ConfigError("--hidden and --dropout apply to --head mlp only; drop them")
    return values


def _common(fn: Any) -> Any:
    """Options shared by ``train`` and ``sweep``."""
    options = [
        *(config_option(name) for name in COMMON_FIELDS),
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


def _inputs(caches: tuple[Path, ...], concat: bool) -> list[Any]:
    if concat:
        if len(caches) < 2:
            raise ConfigError("--concat needs two or more caches to concatenate")
        return [list(caches)]
    return list(caches)


def _fit_summary(info: dict[str, Any]) -> str:
    """``chose l2 0.003 of 9 (converged)`` for a grid, ``kNN k=20`` for the kNN probe, else
    ``500 epochs, best epoch 498``."""
    if "knn" in info:
        return f"kNN k={info['knn']['k']} (chosen on validation)"
    grid = info.get("grid")
    conv = "converged" if info.get("convergence", {}).get("converged") else "NOT converged"
    if grid and "labels" in grid:  # multi-label: one strength per label
        from cactus_features.heads.solvers.multilabel import chosen_strengths

        return (
            f"chose {grid['param']} per label ({chosen_strengths(grid)}) of "
            f"{len(grid['values'])} ({conv})"
        )
    if grid:
        return (
            f"chose {grid['param']} {grid['chosen_value']:g} of {len(grid['values'])} "
            f"({conv}, best epoch {info['best_epoch']})"
        )
    return f"{info['epochs_run']} epochs, best epoch {info['best_epoch']} ({conv})"


def _one_off(info: dict[str, Any]) -> str:
    """`` (+0.8s one-off kernel load)`` when the loop paid one, else empty."""
    seconds = info.get("one_off_seconds") or 0.0
    return f" (+{seconds:.2f}s one-off kernel compile/load)" if seconds >= 0.01 else ""


def _auc_name(info: dict[str, Any]) -> str:
    """``val AUC`` (binary), ``val macro AUC`` (one-vs-rest, K classes) or ``val mean AUC``
    (the mean of the labels' AUCs, multi-label)."""
    names = {"multiclass": "val macro AUC", "multilabel": "val mean AUC"}
    return names.get(str(info.get("task")), "val AUC")


@click.command("train")
@_CACHES
@_common
@apply([config_option(name) for name in TRAIN_FIELDS])
def train(
    caches: tuple[Path, ...],
    concat: bool,
    device: str | None,
    out: Path | None,
    overwrite: bool,
    quiet: bool,
    **params: Any,
) -> None:
    """Train the same head on each CACHE (or on their concatenation) and save run files.

    The protocol is the ``tuned`` preset unless ``--preset`` (``report``: the seed
    study's Adam recipe), ``--solver`` or an Adam option is given. Prints one line per
    backbone: name, protocol, chosen strength or epochs, convergence, seconds,
    validation AUC, class weights and the run file.
    """
    from cactus_features.heads import train_with_config

    config = HeadConfig.create(**config_values(params, (*COMMON_FIELDS, *TRAIN_FIELDS)))
    for features in _inputs(caches, concat):
        result = train_with_config(
            features, config, device=device, out=out, overwrite=overwrite, quiet=quiet
        )
        info = result.run.info
        click.echo(
            f"{info['backbone_name']} [{info['protocol']}]: {_fit_summary(info)} in "
            f"{result.seconds:.2f}s{_one_off(info)}, {_auc_name(info)} {result.val_auc:.4f}, class "
            f"weights {format_class_weights(result.class_weights, info['class_names'])} "
            f"({info['class_weight_mode']}) -> "
            f"{result.path}"
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
    concat: bool,
    device: str | None,
    out: Path | None,
    overwrite: bool,
    quiet: bool,
    lrs: tuple[float, ...],
    weight_decays: tuple[float, ...],
    seeds: tuple[int, ...],
    **params: Any,
) -> None:
    """Train a grid of heads (lr x weight decay x seed) at once on each CACHE; keep the best.

    All grid points train together in one batched computation; the one with the
    best validation AUC is saved as the run, the whole grid as a CSV next to it.
    """
    from cactus_features.heads import sweep_heads

    options = config_values(params, COMMON_FIELDS)
    for features in _inputs(caches, concat):
        result = sweep_heads(
            features,
            lrs=lrs or (1e-3, 5e-4, 1e-4),
            weight_decays=weight_decays or (0.0,),
            seeds=seeds or (0,),
            device=device,
            out=out,
            overwrite=overwrite,
            quiet=quiet,
            **options,
        )
        best = result.best
        cfg = best.config
        click.echo(
            f"{best.run.info['backbone_name']}: {len(result.grid)} heads in "
            f"{result.seconds:.2f}s ({result.seconds_per_head:.3f}s/head), best lr {cfg.lr:g} "
            f"wd {cfg.weight_decay:g} seed {cfg.seed}: epoch {best.best_epoch}, val AUC "
            f"{best.val_auc:.4f}, class weights {format_class_weights(best.class_weights)} -> "
            f"{best.path} "
            f"(grid: {result.grid_path})"
        )


COMMANDS = [train, sweep]
