"""The multi-label linear head of the tuned protocol: one binary probe per label.

Each of the ``L`` labels is an independent weighted logistic regression, fitted by
exactly the binary head's protocol (:func:`~cactus_features.heads.solvers.grid.l2_path`:
the warm-started L2 path with its covariance preconditioner, the strength chosen by
:func:`~cactus_features.heads.solvers.grid.path_choice` on that label's validation loss
or AUC) on that label's column and per-label class weights, with its training rows
ordered by that label as the binary head orders them: label ``j``'s probe is the
binary head a run on label ``j`` alone would train, bit for bit. The probes are
saved as one linear layer ``linear.weight [L, D]``, ``linear.bias [L]`` (one
sigmoid per output).

``info["grid"]`` keeps the binary keys a reader of one grid expects, summarised
over labels, plus the labels' own grids:

* ``values``, ``param``, ``criterion``: the grid (shared by every label);
* ``labels``; ``chosen`` and ``chosen_value``: each label's chosen index and
  strength (lists in label order);
* ``chosen_val_loss`` / ``chosen_val_auc``: the mean over labels of each label's
  chosen validation loss / AUC (the head's ``val_loss`` and ``val_auc``);
* ``val_loss`` / ``val_auc`` per strength: the mean over labels at that strength;
  ``converged`` per strength: every label converged; ``steps``: iterations summed;
* ``at_edge`` (some label's choice is an end of the grid) and ``edge_labels``;
* ``per_label``: ``{label: that label's binary grid}`` (as
  :func:`~cactus_features.heads.solvers.grid.grid_info` writes it).

The run's curves are one step (the fit is ``L`` paths of different lengths): the
mean over labels of the chosen fits' final training objective, validation loss and
AUC. ``best_epoch`` / ``epochs_run`` are the most L-BFGS iterations a chosen fit took.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from cactus_features.heads.config import HeadConfig
from cactus_features.heads.nn.models import LAST_PREFIX
from cactus_features.heads.prepare.data import PreparedData, SplitTensors
from cactus_features.heads.solvers.base import Fit
from cactus_features.heads.solvers.grid import PathPoint, l2_path, path_choice
from cactus_features.heads.solvers.lbfgs import gradient_convergence


def label_tensors(tensors: SplitTensors, j: int) -> SplitTensors:
    """Label ``j``'s binary problem: its targets and weights, training rows ordered by it.

    The order is the binary head's (stable, absent before present), so the path sums
    its gradients in the same order as a binary run on this label.
    """
    y = tensors.y_train[:, j]
    order = torch.argsort(y, stable=True)
    return SplitTensors(
        tensors.x_train[order],
        y[order].contiguous(),
        tensors.w_train[order, j].contiguous(),
        tensors.x_val,
        tensors.y_val[:, j].contiguous(),
        tensors.w_val[:, j].contiguous(),
    )


def fit_multilabel_linear(
    data: PreparedData,
    config: HeadConfig,
    device: torch.device,
    *,
    backend: str = "torch",
    precondition: bool = True,
) -> Fit:
    """Train the tuned linear multi-label head: one L2 path and choice per label.

    Args:
        data: Prepared multi-label data (``y [N, L]``, ``w [N, L]``).
        config: The head configuration (``l2_grid``, ``epochs``, ``tol``, ``select``).
        device: The training device.
        backend: ``"torch"`` or ``"sklearn"`` (see :func:`~.grid.l2_path`).
        precondition: The covariance preconditioner of the path.

    Returns:
        One head with ``L`` outputs; the per-label grids in ``info["grid"]``.
    """
    start = time.perf_counter()
    tensors = data.tensors(device)
    names = list(data.class_names)
    grids: dict[str, dict[str, Any]] = {}
    chosen: list[PathPoint] = []
    for j, name in enumerate(names):
        points = l2_path(
            label_tensors(tensors, j),
            config.l2_grid,
            max_iter=config.epochs,
            tol=config.tol,
            backend=backend,
            precondition=precondition,
        )
        k, grids[name] = path_choice(points, config)
        chosen.append(points[k])
    del tensors
    seconds = time.perf_counter() - start
    grid = multilabel_grid_info(config, names, grids)
    state = {
        "linear.weight": torch.stack([p.weight.float().cpu() for p in chosen]).numpy(),
        "linear.bias": np.array([float(p.bias) for p in chosen], dtype=np.float32),
    }
    state.update({LAST_PREFIX + n: v.copy() for n, v in list(state.items())})
    iterations = max(p.iterations for p in chosen)
    final = {
        "train_loss": float(np.mean([_final_train_loss(p) for p in chosen])),
        "val_loss": grid["chosen_val_loss"],
        "val_auc": grid["chosen_val_auc"],
    }
    return Fit(
        history={n: np.array([[v]], dtype=np.float64) for n, v in final.items()},
        best_epoch=np.array([iterations]),
        best_val_auc=np.array([grid["chosen_val_auc"]]),
        best_val_loss=np.array([grid["chosen_val_loss"]]),
        epochs_run=iterations,
        seconds=seconds,
        info={
            "solver": "grid",
            "backend": backend,
            "grid": grid,
            "convergence": gradient_convergence(
                all(p.converged for p in chosen),
                float(np.max([p.grad_max for p in chosen])),  # NaN for scikit-learn
                iterations,
            ),
        },
        group_size=1,
        weights=lambda _k: state,
        note=multilabel_note(grid),
    )


def multilabel_grid_info(
    config: HeadConfig, names: Sequence[str], grids: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The run's ``info["grid"]`` of a multi-label head from each label's binary grid."""
    per = [grids[n] for n in names]

    def mean(key: str) -> list[float]:
        return [float(v) for v in np.mean([g[key] for g in per], axis=0)]

    edge = [n for n in names if grids[n]["at_edge"]]
    return {
        "param": "l2",
        "values": [float(v) for v in config.l2_grid],
        "criterion": config.select,
        "labels": list(names),
        "chosen": [int(g["chosen"]) for g in per],
        "chosen_value": [float(g["chosen_value"]) for g in per],
        "chosen_val_loss": float(np.mean([g["chosen_val_loss"] for g in per])),
        "chosen_val_auc": float(np.mean([g["chosen_val_auc"] for g in per])),
        "val_loss": mean("val_loss"),
        "val_auc": mean("val_auc"),
        "converged": [bool(v) for v in np.all([g["converged"] for g in per], axis=0)],
        "steps": [int(v) for v in np.sum([g["steps"] for g in per], axis=0)],
        "at_edge": bool(edge),
        "edge_labels": edge,
        "per_label": {n: grids[n] for n in names},
    }


def chosen_strengths(grid: dict[str, Any]) -> str:
    """``cloud 0.01, field 0.1``: each label's chosen strength (a multi-label grid)."""
    return ", ".join(
        f"{n} {v:g}" for n, v in zip(grid["labels"], grid["chosen_value"], strict=True)
    )


def multilabel_note(grid: dict[str, Any]) -> str:
    """One console line: each label's chosen strength and the mean validation scores."""
    return (
        f"grid over {grid['param']} ({len(grid['values'])} values, by {grid['criterion']}, "
        f"per label): chose {chosen_strengths(grid)} (mean val loss "
        f"{grid['chosen_val_loss']:.4f}, mean val AUC {grid['chosen_val_auc']:.4f})"
    )


def _final_train_loss(point: PathPoint) -> float:
    """The training objective at a fitted strength (NaN when no iteration recorded it)."""
    curve = point.history.get("train_loss")
    return float(curve[-1]) if curve is not None and len(curve) else float("nan")
