"""Hyper-parameter sweeps: a grid of heads trained together, chosen on validation.

All grid points (learning rates x weight decays x seeds) are trained in one
batched computation by :func:`~cactus_features.heads.engine.fit_stacked` (heads
stacked along a leading axis, per-head Adam hyper-parameters), in groups small
enough for memory. Each head keeps its selected epoch exactly as
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
from cactus_features.heads.api import TrainResult, console_logger, finish_run
from cactus_features.heads.config import HeadConfig, resolve_device
from cactus_features.heads.data import FeaturesArg, prepare, resolve_features
from cactus_features.heads.engine import StackedFit, fit_stacked
from cactus_features.heads.models import LAST_PREFIX, layer_sizes, output_dim, stacked_state

MEMORY_BUDGET = 4 << 30
"""Bytes of parameters, optimiser state and activations per group of heads."""
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
    head: str = "linear",
    epochs: int = 500,
    batch_size: int | None = None,
    class_weight: Any = "inverse",
    standardize: bool = True,
    select: str = "val_auc",
    device: str | torch.device | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
    quiet: bool = True,
    save: bool = True,
    max_group: int | None = None,
    **head_kwargs: Any,
) -> SweepResult:
    """Train a grid of Adam heads at once and keep the best on validation.

    Args:
        features: A feature set, cache path, or list of them (concatenated).
        lrs: Learning rates.
        weight_decays: Weight decays.
        seeds: Seeds.
        head: ``"linear"`` or ``"mlp"``.
        epochs: Epochs of every head.
        batch_size: Mini-batch size, or ``None`` for full batch.
        class_weight: As for :func:`train_head`.
        standardize: As for :func:`train_head`.
        select: Epoch selection of each head, and the grid criterion (``"val_loss"``:
            lowest loss; otherwise highest validation AUC, ties by lower loss).
        device: ``None`` picks CUDA when available.
        out: Run directory or exact ``.h5`` path.
        overwrite: Replace an existing run of the same name.
        quiet: Print nothing.
        save: Write the run file and the grid CSV.
        max_group: Most heads trained in one batch (default: what fits
            :data:`MEMORY_BUDGET`).
        **head_kwargs: ``hidden``, ``dropout`` (MLP).

    Returns:
        The chosen run, the whole grid's validation scores and timings.

    Raises:
        ConfigError: On invalid options (every grid point is validated first).
    """
    if head_kwargs.get("solver", "adam") != "adam":
        raise ConfigError("sweeps train Adam heads; drop --solver (or train L-BFGS heads singly)")
    head_kwargs.pop("solver", None)
    points = grid_points(lrs, weight_decays, seeds)
    base = HeadConfig.create(
        head,
        epochs=epochs,
        lr=points[0][0],
        weight_decay=points[0][1],
        seed=points[0][2],
        batch_size=batch_size,
        class_weight=class_weight,
        standardize=standardize,
        select=select,
        **head_kwargs,
    )
    configs = [base.with_(lr=a, weight_decay=b, seed=c) for a, b, c in points]
    fs, parts = resolve_features(features)
    data = prepare(fs, base)
    dev = resolve_device(device)
    log = console_logger(quiet)
    log(
        f"{fs.name}: sweeping {len(points)} {head} heads ({len(set(lrs))} lr x "
        f"{len(set(weight_decays))} weight decay x {len(set(seeds))} seed) on {dev}"
    )
    tensors = data.tensors(dev)
    sizes = layer_sizes(data.dim, base.hidden, output_dim(len(data.class_names)))
    group = max_group or _group_size(sizes, tensors.x_train.shape[0], tensors.x_val.shape[0])
    fits: list[tuple[int, StackedFit]] = []
    for a in range(0, len(points), group):
        chunk = points[a : a + group]
        fit = fit_stacked(
            tensors,
            sizes,
            [p[0] for p in chunk],
            [p[1] for p in chunk],
            [p[2] for p in chunk],
            epochs=epochs,
            batch_size=batch_size,
            dropout=base.dropout,
            select=base.select,
        )
        fits.append((a, fit))
    del tensors
    seconds = sum(f.seconds for _, f in fits)
    grid = _grid_rows(points, fits)
    best = choose(grid, base.select)
    offset, fit = next((a, f) for a, f in reversed(fits) if a <= best)
    k = best - offset
    n_hidden = len(base.hidden)
    state = stacked_state(fit.best, k, n_hidden)
    state.update(stacked_state(fit.last, k, n_hidden, prefix=LAST_PREFIX))
    history = {name: v[:, k].copy() for name, v in fit.history.items()}
    for row in grid:
        mark = "  <- best" if row["index"] == best else ""
        log(
            f"  lr {row['lr']:g}  wd {row['weight_decay']:g}  seed {row['seed']}: val AUC "
            f"{row['val_auc']:.4f} at epoch {row['best_epoch']}{mark}"
        )
    sweep_info = {
        "lrs": [float(v) for v in lrs],
        "weight_decays": [float(v) for v in weight_decays],
        "seeds": [int(v) for v in seeds],
        "grid": grid,
        "selected": best,
        "n_heads": len(points),
        "group_size": group,
        "seconds": seconds,
        "seconds_per_head": seconds / len(points),
    }
    tag = f"sweep-{head}-{_sweep_hash(base, sweep_info)}"
    result = finish_run(
        data,
        parts,
        configs[best],
        state,
        history,
        best_epoch=int(grid[best]["best_epoch"]),
        epochs_run=epochs,
        seconds=seconds,
        val_auc=float(grid[best]["val_auc"]),
        device=dev,
        tag=tag,
        out=out,
        overwrite=overwrite,
        save=save,
        extra={
            "solver": "adam",
            "engine": fits[0][1].engine,
            "kernel": fits[0][1].kernel,
            "sweep": sweep_info,
        },
        log=log,
    )
    grid_path = None
    if result.path is not None:
        grid_path = result.path.with_suffix(".grid.csv")
        write_grid_csv(grid, grid_path)
    return SweepResult(
        best=result,
        grid=grid,
        best_index=best,
        seconds=seconds,
        seconds_per_head=seconds / len(points),
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


def _grid_rows(
    points: Sequence[tuple[float, float, int]], fits: Sequence[tuple[int, StackedFit]]
) -> list[dict[str, Any]]:
    rows = []
    for offset, fit in fits:
        for k in range(len(fit.best_epoch)):
            i = offset + k
            lr, wd, seed = points[i]
            rows.append(
                {
                    "index": i,
                    "lr": lr,
                    "weight_decay": wd,
                    "seed": seed,
                    "best_epoch": int(fit.best_epoch[k]),
                    "val_auc": float(fit.best_val_auc[k]),
                    "val_loss": float(fit.best_val_loss[k]),
                    "last_val_auc": float(fit.history["val_auc"][-1, k]),
                    "last_train_loss": float(fit.history["train_loss"][-1, k]),
                }
            )
    return rows


def _group_size(sizes: Sequence[tuple[int, int]], n_train: int, n_val: int) -> int:
    """How many heads fit :data:`MEMORY_BUDGET` (parameters x 7 copies, activations x 4)."""
    n_params = sum(i * o + o for i, o in sizes)
    n_act = sum(o for _, o in sizes) * (n_train + n_val)
    per_head = 4 * (7 * n_params + 4 * n_act)
    return max(1, MEMORY_BUDGET // per_head)


def _sweep_hash(base: HeadConfig, sweep: dict[str, Any]) -> str:
    d = base.to_dict()
    for name in ("lr", "weight_decay", "seed"):
        d.pop(name)
    d.update({k: sweep[k] for k in ("lrs", "weight_decays", "seeds")})
    return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:8]
