"""The solver interface: what trains heads on prepared data, and what it returns.

A solver gets the prepared data, one :class:`~cactus_features.heads.config.HeadConfig`
per head to train (a sweep passes many, differing in hyper-parameters) and the
device; it returns a :class:`Fit`: per-head curves, the selected epoch and its
validation scores, and the weights to save. :func:`~cactus_features.heads.train_head`,
:func:`~cactus_features.heads.sweep_heads` and the run file only see this interface.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from cactus_features.heads.config import HeadConfig
from cactus_features.heads.prepare.data import PreparedData

Progress = Callable[[int, dict[str, float]], None]
"""Called as ``progress(epoch, {"train_loss", "val_loss", "val_auc"})`` for head 0."""


@dataclass
class Fit:
    """``K`` heads trained by a solver.

    Attributes:
        history: ``train_loss``, ``val_loss``, ``val_auc``, each ``[epochs, K]``.
        best_epoch: Selected epoch of each head (1-based) ``[K]``.
        best_val_auc: Validation AUC at the selected epoch ``[K]``.
        best_val_loss: Validation loss at the selected epoch ``[K]``.
        epochs_run: Epochs (or iterations) run.
        seconds: Wall time of the training loop(s).
        info: Entries for the run's ``info`` (``solver`` and solver details).
        group_size: Most heads trained together in one batch.
        weights: ``weights(k)``: head ``k``'s state dict (float32 numpy), the selected
            weights and, under :data:`~cactus_features.heads.nn.models.LAST_PREFIX`,
            the last ones.
        note: A line for the console log (empty for none).
        scores: ``scores(k)``: head ``k``'s P(positive class) of the prepared rows
            (``PreparedData.rows`` order), for probes without weights to rebuild
            (kNN); ``None``: the rows are scored with ``weights(k)``.
        one_off_seconds: One-off cost (kernel compilation or cache loading) inside the
            training loop, not counted in ``seconds``.
    """

    history: dict[str, np.ndarray]
    best_epoch: np.ndarray
    best_val_auc: np.ndarray
    best_val_loss: np.ndarray
    epochs_run: int
    seconds: float
    info: dict[str, Any]
    group_size: int
    weights: Callable[[int], dict[str, np.ndarray]]
    note: str = ""
    scores: Callable[[int], np.ndarray] | None = None
    one_off_seconds: float = 0.0

    def head_history(self, k: int) -> dict[str, np.ndarray]:
        """Head ``k``'s curves (copies), each ``[epochs]``."""
        return {name: v[:, k].copy() for name, v in self.history.items()}


class Solver(Protocol):
    """Trains heads; implemented by :class:`~cactus_features.heads.solvers.adam.AdamSolver`
    and :class:`~cactus_features.heads.solvers.lbfgs.LbfgsSolver`."""

    def fit(
        self,
        data: PreparedData,
        configs: Sequence[HeadConfig],
        device: torch.device,
        progress: Progress | None = None,
    ) -> Fit:
        """Train one head per configuration.

        Args:
            data: The prepared features (splits, standardiser, class weights).
            configs: One configuration per head, all of this solver.
            device: The training device.
            progress: Optional per-epoch report of head 0.

        Returns:
            The heads' curves, selections and weights.
        """
        ...
