"""The generic engine: any head (linear or MLP), any task, full batch or mini-batches,
any device.

Its loss is the task's (:class:`~cactus_features.heads.nn.losses.TaskLoss`): sigmoid
cross-entropy for one output, softmax cross-entropy (K classes) or per-label sigmoid
cross-entropy (multi-label) for ``C > 1`` outputs. It scores the live weights on the
validation rows as each epoch ends (:class:`LiveValidation`, a window of one epoch),
with :func:`~cactus_features.heads.fastpath.val_scoring.make_scorer` for one output
(compiled on the CPU, batched torch ops elsewhere) and
:func:`~cactus_features.heads.fastpath.val_scoring.multi_output_scorer` (batched
torch ops) for ``C > 1``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cactus_features.data.classes import BINARY
from cactus_features.heads.fastpath.val_scoring import Scorer, make_scorer, multi_output_scorer
from cactus_features.heads.nn.adam import StackedAdam
from cactus_features.heads.nn.losses import TaskLoss, normalise_weights
from cactus_features.heads.nn.stacked import StackedNet
from cactus_features.heads.prepare.data import SplitTensors


class GenericEngine:
    """Any head and task, full batch or mini-batches, any device.

    Args:
        data: Training and validation rows (targets and weights shaped for the task:
            :class:`~cactus_features.heads.prepare.data.SplitTensors`).
        net: The stacked heads.
        optimizer: Adam over the heads' parameters.
        batch_size: Rows per step, or ``None`` for full batch.
        generators: One generator per head (mini-batch order).
        loss: The task's loss (default: binary).
    """

    name = "generic"
    """The engine's name in a run's info."""
    kernel = ""
    """No kernel choice (the fused engine's ``native`` or ``torch``)."""

    def __init__(
        self,
        data: SplitTensors,
        net: StackedNet,
        optimizer: StackedAdam,
        batch_size: int | None,
        generators: Sequence[torch.Generator],
        loss: TaskLoss | None = None,
    ) -> None:
        self.data, self.net, self.opt = data, net, optimizer
        self.batch_size = batch_size
        self.generators = list(generators)
        self.loss = loss or TaskLoss(BINARY)
        self.y_train = self.loss.targets(data.y_train)
        self.sw = normalise_weights(data.w_train, self.loss.task)

    def step(self) -> torch.Tensor:
        """One epoch of Adam steps; returns its weighted training loss ``[K]`` (full
        batch: at the weights before the step)."""
        d, y, loss_of = self.data, self.y_train, self.loss
        if self.batch_size is None:
            logits = self.net.forward(d.x_train, train=True)
            loss, dlogits = loss_of(logits, y, self.sw)
            self.opt.step(self.net.backward(dlogits))
            return loss
        n = d.x_train.shape[0]
        perms = torch.stack(
            [torch.randperm(n, generator=g, device=d.device) for g in self.generators]
        )
        total = torch.zeros(self.net.k, *loss_of.mass(d.w_train).shape, device=d.device)
        for a in range(0, n, self.batch_size):
            idx = perms[:, a : a + self.batch_size]
            logits = self.net.forward(d.x_train[idx], train=True)
            column, dlogits = loss_of.batch_loss(logits, y[idx], d.w_train[idx])
            self.opt.step(self.net.backward(dlogits))
            total += column
        return loss_of.reduce(total / loss_of.mass(d.w_train))

    def val_logits(self) -> torch.Tensor:
        """Validation logits ``[K, Nv]`` (``[K, Nv, C]``) of the current weights (no dropout)."""
        return self.net.forward(self.data.x_val, train=False)

    def scorer(self, y_val: torch.Tensor, w_val: torch.Tensor) -> Scorer:
        """Validation loss and AUC of ``[m, K, Nv]`` (``[m, K, Nv, C]``) logits, on the
        calling thread."""
        if self.loss.task == BINARY:
            return make_scorer(y_val, w_val, self.net.k)
        return multi_output_scorer(y_val, w_val, self.loss.task)

    def validation(self, params: Sequence[torch.Tensor]) -> LiveValidation:
        """Validation of every epoch's weights as the epoch ends."""
        return LiveValidation(self, params)

    def close(self) -> None:
        """Nothing to release."""


class LiveValidation:
    """The live weights of a :class:`GenericEngine`, scored after every epoch (no copy).

    Args:
        engine: The engine whose validation logits are scored.
        params: The live parameters.
    """

    def __init__(self, engine: GenericEngine, params: Sequence[torch.Tensor]) -> None:
        self.engine = engine
        self._params = params
        self.epochs: list[int] = []

    def __len__(self) -> int:
        return len(self.epochs)

    @property
    def full(self) -> bool:
        """Whether an epoch waits to be scored (always, once it is pushed)."""
        return len(self.epochs) == 1

    def push(self, params: Sequence[torch.Tensor], epoch: int) -> None:
        """Note that the live weights are those after ``epoch``."""
        self.epochs.append(epoch)

    def logits(self) -> torch.Tensor:
        """Validation logits ``[1, K, Nv]`` (``[1, K, Nv, C]``) of the live weights."""
        return self.engine.val_logits().unsqueeze(0)

    def params(self, j: int) -> Sequence[torch.Tensor]:
        """The live parameters (the weights after the pushed epoch)."""
        return self._params

    def clear(self) -> None:
        """Forget the pushed epoch."""
        self.epochs.clear()
