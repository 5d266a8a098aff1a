"""Stage 2: train identical small heads on cached embeddings, in seconds.

* :func:`train_head` -- one head (linear or MLP; Adam or L-BFGS) on one feature
  cache (or a concatenation), saved as a run file next to the cache.
* :func:`sweep_heads` -- a grid of learning rates x weight decays x seeds trained
  together in one batched computation; the best on validation is saved.
* :func:`predict_scores` -- P(positive class) of new embeddings from a saved run.

A head's options are the fields of :class:`HeadConfig` (same names and defaults
in :func:`train_head`, :func:`sweep_heads` and the ``train`` / ``sweep`` commands).

Layout: ``api`` and ``sweep`` (the public calls) on top of ``config``
(:class:`HeadConfig`); ``prepare`` (split rows, class weights, standardisation);
``solvers`` (the :class:`~cactus_features.heads.solvers.base.Solver` interface,
Adam and L-BFGS, the Adam training loop); ``nn`` (head modules, stacked
forward/backward, stacked Adam); ``fastpath`` (the CPU engine of full-batch
linear heads, its kernels and validation scoring); ``run`` and ``run_info`` (a
trained head as a run file).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "HeadConfig": "cactus_features.heads.config",
    "Standardizer": "cactus_features.heads.prepare.standardize",
    "SweepResult": "cactus_features.heads.sweep",
    "TrainResult": "cactus_features.heads.run",
    "compute_class_weights": "cactus_features.heads.prepare.class_weights",
    "parse_class_weight": "cactus_features.heads.prepare.class_weights",
    "predict_scores": "cactus_features.heads.api",
    "sweep_heads": "cactus_features.heads.sweep",
    "train_head": "cactus_features.heads.api",
    "train_with_config": "cactus_features.heads.api",
}
"""Public names and their modules, imported on first use: the CLI reads
:class:`HeadConfig` (no torch) without importing the training code."""

__all__ = [
    "HeadConfig",
    "Standardizer",
    "SweepResult",
    "TrainResult",
    "compute_class_weights",
    "parse_class_weight",
    "predict_scores",
    "sweep_heads",
    "train_head",
    "train_with_config",
]

if TYPE_CHECKING:  # pragma: no cover
    from cactus_features.heads.api import predict_scores, train_head, train_with_config
    from cactus_features.heads.config import HeadConfig
    from cactus_features.heads.prepare.class_weights import (
        compute_class_weights,
        parse_class_weight,
    )
    from cactus_features.heads.prepare.standardize import Standardizer
    from cactus_features.heads.run import TrainResult
    from cactus_features.heads.sweep import SweepResult, sweep_heads


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first access (PEP 562)."""
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'cactus_features.heads' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
