"""The generic engine: any head (linear or MLP), full batch or mini-batches, any device.

It scores the live weights on the validation rows as each epoch ends
(:class:`LiveValidation`, a window of one epoch), with
:func:`~cactus_features.heads.fastpath.val_scoring.make_scorer` (compiled on the CPU,
batched torch ops elsewhere).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cactus_features.heads.fastpath.val_scoring import Scorer, make_scorer
from cactus_features.heads.nn.adam import StackedAdam
from cactus_features.heads.nn.stacked import StackedNet, weighted_bce
from cactus_features.heads.prepare.data import SplitTensors


class GenericEngine:
    """Any head, full batch or mini-batches, any device.

    Args:
        data: Training and validation rows.
        net: The stacked heads.
        optimizer: Adam over the heads' parameters.
        batch_size: Rows per step, or ``None`` for full batch.
        generators: One generator per head (mini-batch order).
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
    ) -> None:
        self.data, self.net, self.opt = data, net, optimizer
        self.batch_size = batch_size
        self.generators = list(generators)
        self.sw = data.w_train / data.w_train.sum()

    def step(self) -> torch.Tensor:
        """One epoch of Adam steps; returns its weighted training loss ``[K]`` (full
        batch: at the weights before the step)."""
        d = self.data
        if self.batch_size is None:
            logits = self.net.forward(d.x_train, train=True)
            loss, dlogits = weighted_bce(logits, d.y_train, self.sw)
            self.opt.step(self.net.backward(dlogits))
            return loss
        n = d.x_train.shape[0]
        perms = torch.stack(
            [torch.randperm(n, generator=g, device=d.device) for g in self.generators]
        )
        total = torch.zeros(self.net.k, device=d.device)
        for a in range(0, n, self.batch_size):
            idx = perms[:, a : a + self.batch_size]
            wb = d.w_train[idx]
            wsum = wb.sum(1, keepdim=True)
            logits = self.net.forward(d.x_train[idx], train=True)
            loss, dlogits = weighted_bce(logits, d.y_train[idx], wb / wsum)
            self.opt.step(self.net.backward(dlogits))
            total += loss * wsum.squeeze(1)
        return total / d.w_train.sum()

    def val_logits(self) -> torch.Tensor:
        """Validation logits ``[K, Nv]`` of the current weights (no dropout)."""
        return self.net.forward(self.data.x_val, train=False)

    def scorer(self, y_val: torch.Tensor, w_val: torch.Tensor) -> Scorer:
        """Validation loss and AUC of ``[m, K, Nv]`` logits, on the calling thread."""
        return make_scorer(y_val, w_val, self.net.k)

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
        """Validation logits ``[1, K, Nv]`` of the live weights."""
        return self.engine.val_logits().unsqueeze(0)

    def params(self, j: int) -> Sequence[torch.Tensor]:
        """The live parameters (the weights after the pushed epoch)."""
        return self._params

    def clear(self) -> None:
        """Forget the pushed epoch."""
        self.epochs.clear()
