"""Hyper-parameter sweeps: a grid of heads trained together, chosen on validation.

All grid points (learning rates x weight decays x seeds) are trained in one
batched computation by :class:`~cactus_features.heads.solvers.adam.AdamSolver`
(heads stacked along a leading axis, per-head Adam hyper-parameters), in groups
small enough for memory. Each head keeps its selected epoch exactly as
:func:`~cactus_features.heads.train_head` would; the grid point with the best
validation AUC (ties: lower validation loss, then grid order) becomes the run.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cactus_features.errors import ConfigError
from cactus_features.heads.config import HeadConfig
from cactus_features.heads.device import resolve_device
from cactus_features.heads.prepare.data import FeaturesArg, prepare, resolve_features
from cactus_features.heads.run import Log, TrainResult, assemble_run, console_logger
from cactus_features.heads.solvers.adam import AdamSolver
from cactus_features.heads.solvers.base import Fit

SWEPT = ("lr", "weight_decay", "seed")
"""The :class:`HeadConfig` fields a sweep varies (its ``lrs``, ``weight_decays``, ``seeds``)."""
GRID_FIELDS = (
    "index",
    "lr",
    "weight_decay",
    "seed",
    "best_epoch",
    "val_auc",
    "val_loss",
    "last_val_auc",
    "last_train_loss",
)


@dataclass
class SweepResult:
    """A finished sweep.

    Attributes:
        best: The chosen grid point as a saved run (same fields as :func:`train_head`).
        grid: One row per grid point (:data:`GRID_FIELDS`), in grid order.
        best_index: Index of the chosen row.
        seconds: Training-loop wall time of the whole grid.
        seconds_per_head: ``seconds`` divided by the number of grid points.
        grid_path: The grid CSV next to the run file (``None`` when not saved).
    """

    best: TrainResult
    grid: list[dict[str, Any]]
    best_index: int
    seconds: float
    seconds_per_head: float
    grid_path: Path | None

    @property
    def path(self) -> Path | None:
        """The chosen run's file."""
        return self.best.path

    @property
    def config(self) -> HeadConfig:
        """The chosen grid point's configuration."""
        return self.best.config


def grid_points(
    lrs: Sequence[float], weight_decays: Sequence[float], seeds: Sequence[int]
) -> list[tuple[float, float, int]]:
    """All ``(lr, weight_decay, seed)`` combinations, lr varying slowest."""
    grid = itertools.product(lrs, weight_decays, seeds)
    points = [(float(a), float(b), int(c)) for a, b, c in grid]
    if not points:
        raise ConfigError("empty sweep: give at least one --lr, --weight-decay and --seed")
    return points


def sweep_heads(
    features: FeaturesArg,
    lrs: Sequence[float] = (1e-3, 5e-4, 1e-4),
    weight_decays: Sequence[float] = (0.0,),
    seeds: Sequence[int] = (0,),
    *,
    device: str | torch.device | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
    quiet: bool = True,
    save: bool = True,
    max_group: int | None = None,
    **options: Any,
) -> SweepResult:
    """Train a grid of Adam heads at once and keep the best on validation.

    Args:
        features: A feature set, cache path, or list of them (concatenated).
        lrs: Learning rates.
        weight_decays: Weight decays.
        seeds: Seeds.
        device: ``None`` picks CUDA when available.
        out: Run directory or exact ``.h5`` path.
        overwrite: Replace an existing run of the same name.
        quiet: Print nothing.
        save: Write the run file and the grid CSV.
        max_group: Most heads trained in one batch (default: what fits
            :data:`~cactus_features.heads.solvers.adam.MEMORY_BUDGET`).
        **options: Any other :class:`~cactus_features.heads.config.HeadConfig` field
            but the swept ones, as for :func:`~cactus_features.heads.train_head`:
            ``head``, ``epochs``, ``batch_size``, ``class_weight``, ``standardize``,
            ``select`` (each head's epoch selection, and the grid criterion:
            ``"val_loss"``: lowest loss; otherwise highest validation AUC, ties by
            lower loss), ``hidden``, ``dropout`` (MLP), ``scale``, ``positive_class``
            (binary tasks); ``solver`` may only be ``"adam"``
            (a sweep is its own protocol: ``preset`` and ``l2_grid`` do not apply).

    Returns:
        The chosen run, the whole grid's validation scores and timings.

    Raises:
        ConfigError: On invalid options (every grid point is validated first).
    """
    if options.get("head") == "knn":
        raise ConfigError(
            "the kNN probe has no lr, weight decay or seed to sweep; use train --head knn"
        )
    if options.get("solver", "adam") != "adam":
        raise ConfigError("sweeps train Adam heads; drop --solver (or train L-BFGS heads singly)")
    swept = sorted(set(options) & set(SWEPT))
    if swept:
        raise ConfigError(
            f"{', '.join(swept)} are swept; give them as lrs, weight_decays and seeds"
        )
    options.pop("solver", None)
    for name in ("preset", "l2_grid"):
        if options.pop(name, None):
            raise ConfigError(f"sweeps train Adam heads; drop {name} (it is for train)")
    points = grid_points(lrs, weight_decays, seeds)
    base = HeadConfig.create(**options, solver="adam", **dict(zip(SWEPT, points[0], strict=True)))
    configs = [base.with_(lr=a, weight_decay=b, seed=c) for a, b, c in points]
    fs, parts = resolve_features(features)
    data = prepare(fs, base)
    dev = resolve_device(device)
    log = console_logger(quiet)
    log(
        f"{fs.name}: sweeping {len(points)} {base.head} heads ({len(set(lrs))} lr x "
        f"{len(set(weight_decays))} weight decay x {len(set(seeds))} seed) on {dev}"
    )
    fit = AdamSolver(max_group).fit(data, configs, dev)
    grid = _grid_rows(points, fit)
    best = choose(grid, base.select)
    _log_grid(grid, best, log)
    sweep_info = _sweep_info(lrs, weight_decays, seeds, grid, best, fit)
    result = assemble_run(
        data,
        parts,
        configs[best],
        fit,
        best,
        device=dev,
        tag=f"sweep-{base.head}-{_sweep_hash(base, sweep_info)}",
        out=out,
        overwrite=overwrite,
        save=save,
        log=log,
        extra={"sweep": sweep_info},
    )
    grid_path = None
    if result.path is not None:
        grid_path = result.path.with_suffix(".grid.csv")
        write_grid_csv(grid, grid_path)
    return SweepResult(
        best=result,
        grid=grid,
        best_index=best,
        seconds=fit.seconds,
        seconds_per_head=fit.seconds / len(points),
        grid_path=grid_path,
    )


def choose(grid: Sequence[dict[str, Any]], select: str) -> int:
    """Index of the best grid row: lowest ``val_loss`` for ``select="val_loss"``,
    else highest ``val_auc`` with ties broken by lower ``val_loss``; then grid order."""

    def key(i: int) -> tuple[float, float, int]:
        row = grid[i]
        auc = -np.inf if np.isnan(row["val_auc"]) else row["val_auc"]
        loss = np.inf if np.isnan(row["val_loss"]) else row["val_loss"]
        if select == "val_loss":
            return (loss, 0.0, i)
        return (-auc, loss, i)

    return min(range(len(grid)), key=key)


def write_grid_csv(grid: Sequence[dict[str, Any]], path: Path) -> Path:
    """Write the grid rows as CSV (:data:`GRID_FIELDS` columns)."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(GRID_FIELDS))
        writer.writeheader()
        for row in grid:
            writer.writerow({k: row[k] for k in GRID_FIELDS})
    return path


def _grid_rows(points: Sequence[tuple[float, float, int]], fit: Fit) -> list[dict[str, Any]]:
    rows = []
    for i, (lr, wd, seed) in enumerate(points):
        rows.append(
            {
                "index": i,
                "lr": lr,
                "weight_decay": wd,
                "seed": seed,
                "best_epoch": int(fit.best_epoch[i]),
                "val_auc": float(fit.best_val_auc[i]),
                "val_loss": float(fit.best_val_loss[i]),
                "last_val_auc": float(fit.history["val_auc"][-1, i]),
                "last_train_loss": float(fit.history["train_loss"][-1, i]),
            }
        )
    return rows


def _log_grid(grid: Sequence[dict[str, Any]], best: int, log: Log) -> None:
    for row in grid:
        mark = "  <- best" if row["index"] == best else ""
        log(
            f"  lr {row['lr']:g}  wd {row['weight_decay']:g}  seed {row['seed']}: val AUC "
            f"{row['val_auc']:.4f} at epoch {row['best_epoch']}{mark}"
        )


def _sweep_info(
    lrs: Sequence[float],
    weight_decays: Sequence[float],
    seeds: Sequence[int],
    grid: list[dict[str, Any]],
    best: int,
    fit: Fit,
) -> dict[str, Any]:
    """The run's ``info["sweep"]``: the grid, its rows, the choice and the timings."""
    return {
        "lrs": [float(v) for v in lrs],
        "weight_decays": [float(v) for v in weight_decays],
        "seeds": [int(v) for v in seeds],
        "grid": grid,
        "selected": best,
        "n_heads": len(grid),
        "group_size": fit.group_size,
        "seconds": fit.seconds,
        "seconds_per_head": fit.seconds / len(grid),
    }


def _sweep_hash(base: HeadConfig, sweep: dict[str, Any]) -> str:
    d = base.to_dict()
    for name in ("lr", "weight_decay", "seed"):
        d.pop(name)
    d.update({k: sweep[k] for k in ("lrs", "weight_decays", "seeds")})
    return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:8]
