"""Whether a head's fit converged, and the one-line warning when it may not have.

Every run's ``info`` holds ``convergence`` (``converged``, the ``measure`` and its
``value``) and ``warnings`` (a list of lines, empty when all is well). The
solvers that know their own measure record it (L-BFGS and the linear grid: the
largest gradient entry at the end); for Adam it is the relative change of the
training loss over the last 1 % of epochs (:func:`adam_convergence`).
:func:`convergence_warnings` says when the chosen strength is at the edge of its
grid, when the kept fit did not converge, or when the selected epoch is the last
one; :func:`report_warnings` gives them once per run, as one
:class:`~cactus_features.notices.ConvergenceWarning` (one line on stderr in the CLI).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from cactus_features.notices import ConvergenceWarning, warn

ADAM_REL_CHANGE = 1e-3
"""Adam counts as converged when the training loss moved by less than this (relative)
over the last 1 % of its epochs."""


def adam_convergence(train_loss: np.ndarray) -> dict[str, Any]:
    """``info["convergence"]`` of an Adam head from its training-loss curve.

    Args:
        train_loss: Per-epoch training loss ``[epochs]``.

    Returns:
        ``converged`` (relative change over the last ``max(1, epochs // 100)`` epochs
        below :data:`ADAM_REL_CHANGE`), ``measure``, ``value`` and ``epochs``.
    """
    loss = np.asarray(train_loss, dtype=np.float64)
    loss = loss[np.isfinite(loss)]
    if loss.size < 2:
        return {"converged": False, "measure": "too few epochs", "value": float("nan")}
    m = max(1, loss.size // 100)
    change = abs(loss[-1 - m] - loss[-1]) / max(abs(loss[-1]), 1e-12)
    return {
        "converged": bool(change < ADAM_REL_CHANGE),
        "measure": f"relative train-loss change over the last {m} epoch(s)",
        "value": float(change),
        "epochs": int(loss.size),
    }


def convergence_warnings(
    info: Mapping[str, Any], *, best_epoch: int, epochs_run: int, solver: str
) -> list[str]:
    """The run's warnings (each one short phrase; empty when all is well).

    Args:
        info: The run's ``info`` so far (``convergence`` and, for ``grid``, ``grid``).
        best_epoch: The selected epoch (Adam) or iteration count.
        epochs_run: Epochs run.
        solver: ``"adam"``, ``"lbfgs"`` or ``"grid"``.
    """
    out = []
    grid = info.get("grid")
    if isinstance(grid, Mapping) and grid.get("at_edge"):
        # a multi-label grid chooses per label and names the labels at the edge
        chosen = (
            f"of label{'s' * (len(grid['edge_labels']) > 1)} {', '.join(grid['edge_labels'])}"
            if "edge_labels" in grid
            else f"{grid['chosen_value']:g}"
        )
        out.append(
            f"chosen {grid['param']} {chosen} is at the edge of the grid "
            f"[{min(grid['values']):g}, {max(grid['values']):g}]; widen l2_grid"
        )
    conv = info.get("convergence") or {}
    adam_like = solver == "adam" or (isinstance(grid, Mapping) and grid["param"] != "l2")
    if adam_like:
        if epochs_run > 1 and best_epoch >= epochs_run:
            out.append(
                f"the selected epoch is the last one ({best_epoch}/{epochs_run}): "
                "still improving; train longer"
            )
    elif conv and not conv.get("converged", True):
        out.append(
            f"the fit did not converge ({conv.get('measure')} "
            f"{conv.get('value', float('nan')):.2g} "
            f"after {conv.get('iterations', epochs_run)} iterations); raise epochs or tol"
        )
    return out


def report_warnings(name: str, warnings: Sequence[str]) -> None:
    """Give a run's warnings once, as one :class:`~cactus_features.notices.ConvergenceWarning`
    (one ``warning:`` line on the command line)."""
    if warnings:
        warn(f"{name}: {'; '.join(warnings)}", ConvergenceWarning)
