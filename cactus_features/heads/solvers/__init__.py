"""Solvers: what trains heads on prepared data, behind one small interface.

``base`` (the :class:`~cactus_features.heads.solvers.base.Solver` protocol and
its :class:`~cactus_features.heads.solvers.base.Fit`), ``adam`` (stacked Adam,
any head), ``lbfgs`` (full-batch L-BFGS, linear heads), ``engine`` (the Adam
training loop and the engine interface), ``grid`` (the tuned protocol: a grid of
L2 strengths chosen on validation), ``precondition`` (its L-BFGS preconditioner),
``generic`` (the engine for any head and device; the CPU fast path is
:mod:`cactus_features.heads.fastpath`).
"""

from __future__ import annotations

from collections.abc import Callable

from cactus_features.heads.solvers.adam import AdamSolver
from cactus_features.heads.solvers.base import Fit, Progress, Solver
from cactus_features.heads.solvers.grid import GridSolver
from cactus_features.heads.solvers.knn import KnnSolver
from cactus_features.heads.solvers.lbfgs import LbfgsSolver

SOLVER_TYPES: dict[str, Callable[[], Solver]] = {
    "adam": AdamSolver,
    "lbfgs": LbfgsSolver,
    "knn": KnnSolver,
    "grid": GridSolver,
}
"""The solver of each ``HeadConfig.solver`` name (:data:`~cactus_features.heads.config.SOLVERS`)."""


def solver_for(name: str) -> Solver:
    """A solver for a (validated) ``HeadConfig.solver`` name, with its default options."""
    return SOLVER_TYPES[name]()


__all__ = [
    "SOLVER_TYPES",
    "AdamSolver",
    "Fit",
    "GridSolver",
    "KnnSolver",
    "LbfgsSolver",
    "Progress",
    "Solver",
    "solver_for",
]
