"""The Adam solver: heads trained by :func:`~cactus_features.heads.solvers.engine.fit_stacked`.

All configurations (same head shape, epochs, batch size, dropout and selection;
their own learning rate, weight decay and seed) train as one stack, in groups
small enough for :data:`MEMORY_BUDGET`. The output layer and the loss follow the
feature set's task (``PreparedData.task``): one sigmoid output (binary), a softmax over
K outputs (K classes) or one sigmoid per label (multi-label).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from cactus_features.heads.config import HeadConfig
from cactus_features.heads.nn.models import LAST_PREFIX, layer_sizes, output_dim, stacked_state
from cactus_features.heads.prepare.data import PreparedData
from cactus_features.heads.solvers.base import Fit, Progress
from cactus_features.heads.solvers.engine import StackedFit, fit_stacked

MEMORY_BUDGET = 4 << 30
"""Bytes of parameters, optimiser state and activations per group of heads."""


class AdamSolver:
    """Adam over a stack of heads (linear or MLP, any task, full batch or mini-batches).

    Args:
        max_group: Most heads trained in one batch (default: what fits
            :data:`MEMORY_BUDGET`).
    """

    def __init__(self, max_group: int | None = None) -> None:
        self.max_group = max_group

    def fit(
        self,
        data: PreparedData,
        configs: Sequence[HeadConfig],
        device: torch.device,
        progress: Progress | None = None,
    ) -> Fit:
        """Train one head per configuration (see :class:`~.base.Solver`); ``progress``
        reports the first head."""
        base = configs[0]
        tensors = data.tensors(device)
        n_out = output_dim(len(data.class_names), data.task)
        sizes = layer_sizes(data.dim, base.hidden, n_out)
        group = self.max_group or group_size(
            sizes, tensors.x_train.shape[0], tensors.x_val.shape[0]
        )
        fits: list[tuple[int, StackedFit]] = []
        for a in range(0, len(configs), group):
            chunk = configs[a : a + group]
            fit = fit_stacked(
                tensors,
                sizes,
                [c.lr for c in chunk],
                [c.weight_decay for c in chunk],
                [c.seed for c in chunk],
                epochs=base.epochs,
                batch_size=base.batch_size,
                dropout=base.dropout,
                select=base.select,
                progress=progress if a == 0 else None,
                task=data.task,
            )
            fits.append((a, fit))
        del tensors
        return _as_fit(fits, base, group)


def group_size(sizes: Sequence[tuple[int, int]], n_train: int, n_val: int) -> int:
    """How many heads fit :data:`MEMORY_BUDGET` (parameters x 7 copies, activations x 4)."""
    n_params = sum(i * o + o for i, o in sizes)
    n_act = sum(o for _, o in sizes) * (n_train + n_val)
    per_head = 4 * (7 * n_params + 4 * n_act)
    return max(1, MEMORY_BUDGET // per_head)


def _as_fit(fits: Sequence[tuple[int, StackedFit]], config: HeadConfig, group: int) -> Fit:
    """The groups' results as one :class:`Fit` (heads in configuration order)."""
    n_hidden = len(config.hidden)

    def weights(k: int) -> dict[str, np.ndarray]:
        offset, fit = next((a, f) for a, f in reversed(fits) if a <= k)
        state = stacked_state(fit.best, k - offset, n_hidden)
        state.update(stacked_state(fit.last, k - offset, n_hidden, prefix=LAST_PREFIX))
        return state

    def joined(get: Callable[[StackedFit], np.ndarray]) -> np.ndarray:
        parts = [get(f) for _, f in fits]
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)

    first = fits[0][1]
    return Fit(
        history={n: joined(lambda f, n=n: f.history[n]) for n in first.history},
        best_epoch=joined(lambda f: f.best_epoch),
        best_val_auc=joined(lambda f: f.best_val_auc),
        best_val_loss=joined(lambda f: f.best_val_loss),
        epochs_run=config.epochs,
        seconds=sum(f.seconds for _, f in fits),
        info={"solver": "adam", "engine": first.engine, "kernel": first.kernel},
        group_size=group,
        weights=weights,
        one_off_seconds=sum(f.one_off_seconds for _, f in fits),
    )
