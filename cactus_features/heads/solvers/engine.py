"""Adam training of a stack of ``K`` heads, with per-epoch curves and checkpoint selection.

:func:`fit_stacked` is the one training loop behind :func:`~cactus_features.heads.train_head`
(``K = 1``) and :func:`~cactus_features.heads.sweep_heads` (``K`` grid points at once).
Each head has its own learning rate, weight decay and seed (initial weights,
dropout masks, mini-batch order), so head ``k`` of a stack trains like a
single head with those settings (up to float rounding: a batched matmul may sum
in another order).

Tasks (``task``): a binary head has one output (sigmoid cross-entropy); a K-class head
``K`` outputs (softmax cross-entropy against the class index), a multi-label head one
output per label (a sigmoid cross-entropy each); the losses, their class weighting and
the validation scores per task are in :mod:`~cactus_features.heads.nn.losses` and
:mod:`~cactus_features.heads.fastpath.val_scoring`. Everything else (Adam, seeds,
stacking, selection) is the same for every task.

Engines (:class:`Engine`): full-batch binary linear heads on the CPU use
:class:`~cactus_features.heads.fastpath.fused_linear.FusedLinearEngine`; everything else
(MLPs, mini-batches, GPU, more than one output) uses
:class:`~cactus_features.heads.solvers.generic.GenericEngine`.
An engine takes the epoch's steps and says how its weights are validated: its
:meth:`Engine.validation` collects the epochs scored together (the generic engine:
each epoch as it ends; the fused engine: a window of epochs,
:class:`~cactus_features.heads.fastpath.snapshots.SnapshotWindow`, in one pass over
the validation rows, same curves and selection) and its :meth:`Engine.scorer` turns
their logits into loss and AUC (:mod:`~cactus_features.heads.fastpath.val_scoring`,
compiled on the CPU). The loop itself knows no engine. On a GPU everything stays on
the device: curves and the best-so-far weights are updated with tensor ops, so the
loop never waits for the host (except for ``progress`` reports).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from cactus_features.data.classes import BINARY, MULTICLASS, MULTILABEL
from cactus_features.heads.fastpath.fused_linear import FusedLinearEngine, single_threaded_ops
from cactus_features.heads.fastpath.val_scoring import Scorer
from cactus_features.heads.nn.adam import StackedAdam
from cactus_features.heads.nn.losses import TaskLoss
from cactus_features.heads.nn.models import init_stacked
from cactus_features.heads.nn.stacked import StackedNet
from cactus_features.heads.prepare.data import SplitTensors
from cactus_features.heads.solvers.base import Progress
from cactus_features.heads.solvers.generic import GenericEngine
from cactus_features.heads.timing import one_off_time


class PendingValidation(Protocol):
    """Epochs whose weights wait to be scored on the validation rows (an engine's choice:
    every epoch as it ends, or a window of epochs in one pass)."""

    epochs: list[int]
    """The waiting epochs, consecutive (1-based)."""

    def __len__(self) -> int: ...

    @property
    def full(self) -> bool:
        """Whether the waiting epochs should be scored now."""
        ...

    def push(self, params: Sequence[torch.Tensor], epoch: int) -> None:
        """Add the weights as they are after ``epoch``."""

    def logits(self) -> torch.Tensor:
        """Validation logits ``[m, K, Nv]`` (``[m, K, Nv, C]``) of the ``m`` waiting epochs."""
        ...

    def params(self, j: int) -> Sequence[torch.Tensor]:
        """The parameters after the ``j``-th waiting epoch."""
        ...

    def clear(self) -> None:
        """Forget the waiting epochs."""


class Engine(Protocol):
    """What :func:`fit_stacked` needs from a training engine."""

    name: str
    """``fused`` or ``generic`` (saved in the run's info)."""
    kernel: str
    """The engine's kernel (``native`` or ``torch`` for the fused engine), or empty."""

    def step(self) -> torch.Tensor:
        """One epoch; returns the weighted training loss ``[K]``."""
        ...

    def scorer(self, y_val: torch.Tensor, w_val: torch.Tensor) -> Scorer:
        """How validation logits ``[m, K, Nv]`` (``[m, K, Nv, C]``) become loss and AUC
        ``[m, K]``."""
        ...

    def validation(self, params: list[torch.Tensor]) -> PendingValidation:
        """Which epochs' weights are scored together, and how their logits are computed."""
        ...

    def close(self) -> None:
        """Release the engine's resources (worker threads)."""


@dataclass
class StackedFit:
    """Result of training ``K`` heads together.

    Attributes:
        best: Stacked parameters at each head's selected epoch.
        last: Stacked parameters after the last epoch.
        history: ``train_loss``, ``val_loss``, ``val_auc``, each ``[epochs, K]``.
        best_epoch: Selected epoch of each head (1-based) ``[K]``.
        best_val_auc: Validation AUC at the selected epoch ``[K]``.
        best_val_loss: Validation loss at the selected epoch ``[K]``.
        seconds: Wall time of the training loop, without ``one_off_seconds``.
        engine: Name of the engine used.
        kernel: The fused engine's kernel (``native`` or ``torch``); empty otherwise.
        one_off_seconds: Time the loop spent compiling or loading native kernels
            (the first head of a process; :mod:`~cactus_features.heads.timing`).
    """

    best: list[torch.Tensor]
    last: list[torch.Tensor]
    history: dict[str, np.ndarray]
    best_epoch: np.ndarray
    best_val_auc: np.ndarray
    best_val_loss: np.ndarray
    seconds: float
    engine: str
    kernel: str = ""
    one_off_seconds: float = 0.0


class _BestTracker:
    """Keeps each head's weights at its best epoch so far."""

    def __init__(self, params: Sequence[torch.Tensor], select: str) -> None:
        k, dev = params[0].shape[0], params[0].device
        self.select = select
        self.best = [p.clone() for p in params] if select != "last" else list(params)
        self.auc = torch.full((k,), -torch.inf, dtype=torch.float64, device=dev)
        self.loss = torch.full((k,), torch.inf, dtype=torch.float64, device=dev)
        self.epoch = torch.zeros(k, dtype=torch.int64, device=dev)

    def update(
        self, params: Sequence[torch.Tensor], auc: torch.Tensor, loss: torch.Tensor, epoch: int
    ) -> None:
        if self.select == "last":
            better = torch.ones_like(self.epoch, dtype=torch.bool)
        elif self.select == "val_loss":
            better = loss < self.loss
        else:
            better = (auc > self.auc) | ((auc == self.auc) & (loss < self.loss))
        self.auc = torch.where(better, auc, self.auc)
        self.loss = torch.where(better, loss, self.loss)
        self.epoch = torch.where(better, epoch, self.epoch)
        if self.select != "last":
            for b, p in zip(self.best, params, strict=True):
                b.copy_(torch.where(better.view(-1, *[1] * (p.dim() - 1)), p, b))


def train_generators(seeds: Sequence[int], device: torch.device) -> list[torch.Generator]:
    """Per-head generators for dropout and mini-batch order (independent of the init stream)."""
    gens = []
    for seed in seeds:
        state = np.random.SeedSequence([int(seed), 1]).generate_state(1, dtype=np.uint64)[0]
        gens.append(torch.Generator(device=device).manual_seed(int(state) >> 1))
    return gens


def _use_fused(
    engine: str, device: torch.device, batch_size: int | None, sizes: Sequence[tuple[int, int]]
) -> bool:
    """Whether ``engine`` (``auto``, ``fused`` or ``generic``) means the fused engine.

    Raises:
        ValueError: ``fused`` asked for where it does not apply.
    """
    one_output = sizes[-1][1] == 1
    fused_ok = device.type == "cpu" and batch_size is None and len(sizes) == 1 and one_output
    use_fused = engine == "fused" or (engine == "auto" and fused_ok)
    if use_fused and not fused_ok:
        raise ValueError(
            "the fused engine trains full-batch linear heads with one output on the CPU only"
        )
    return use_fused


def _check_task(task: str, n_out: int, data: SplitTensors) -> None:
    """Refuse an output size or target shape that does not fit ``task``.

    Raises:
        ValueError: Naming the mismatch.
    """
    TaskLoss(task)  # a known task
    if task == BINARY and n_out != 1:
        raise ValueError(f"a binary head has one output, not {n_out}")
    if task != BINARY and n_out < 2 + (task == MULTICLASS):
        raise ValueError(f"a {task} head has one output per class or label, not {n_out}")
    want = 2 if task == MULTILABEL else 1
    if data.y_train.dim() != want or data.w_train.shape != data.y_train.shape:
        raise ValueError(
            f"{task} targets and weights are {want}-D and of the same shape; got y "
            f"{tuple(data.y_train.shape)} and w {tuple(data.w_train.shape)}"
        )
    if task == MULTILABEL and data.y_train.shape[1] != n_out:
        raise ValueError(f"{data.y_train.shape[1]} labels for a head of {n_out} outputs")


@contextlib.contextmanager
def _open_engine(
    fused: bool,
    data: SplitTensors,
    params: list[torch.Tensor],
    opt: StackedAdam,
    gens: Sequence[torch.Generator],
    batch_size: int | None,
    dropout: float,
    threads: int,
    kernel: str,
    task: str,
) -> Iterator[Engine]:
    """The engine, closed on exit; the fused one runs with single-threaded PyTorch ops
    (it has its own worker threads)."""
    ctx = single_threaded_ops() if fused else contextlib.nullcontext()
    with ctx:
        eng: Engine
        if fused:
            eng = FusedLinearEngine(
                data.x_train, data.y_train, data.w_train, data.x_val, params, opt, threads,
                kernel=kernel,
            )  # fmt: skip
        else:
            net = StackedNet(params, dropout, gens if dropout > 0 else None)
            eng = GenericEngine(data, net, opt, batch_size, gens, TaskLoss(task))
        try:
            yield eng
        finally:
            eng.close()


class _Curves:
    """Per-epoch curves ``[3, epochs, K]`` of a stack, and head 0's progress reports."""

    def __init__(
        self, epochs: int, k: int, device: torch.device, progress: Progress | None
    ) -> None:
        self.hist = torch.full((3, epochs, k), torch.nan, dtype=torch.float64, device=device)
        self.epochs, self.k, self.progress = epochs, k, progress
        self.every = max(1, epochs // 10)
        self.nan = torch.full((1, k), torch.nan, dtype=torch.float64, device=device)

    def record(
        self,
        score: Scorer,
        z: torch.Tensor | None,
        pending: PendingValidation,
        tracker: _BestTracker,
    ) -> None:
        """Record validation metrics of the waiting epochs' weights.

        Args:
            score: The engine's scorer.
            z: Validation logits ``[m, K, Nv]`` or ``[m, K, Nv, C]`` (``None``: no
                validation rows).
            pending: The ``m`` waiting epochs.
            tracker: Updated with each epoch's weights and metrics, in epoch order.
        """
        m, first, hist = len(pending), pending.epochs[0], self.hist
        if z is None:
            vloss = vauc = self.nan.expand(m, self.k)
        else:
            vloss, vauc = score(z)
            hist[1, first - 1 : first - 1 + m] = vloss
            hist[2, first - 1 : first - 1 + m] = vauc
        for j in range(m):
            epoch = first + j
            tracker.update(pending.params(j), vauc[j], vloss[j], epoch)
            if self.progress is not None and (epoch % self.every == 0 or epoch == self.epochs):
                row = {n: float(hist[i, epoch - 1, 0]) for i, n in enumerate(_NAMES)}
                self.progress(epoch, row)


def fit_stacked(
    data: SplitTensors,
    sizes: Sequence[tuple[int, int]],
    lrs: Sequence[float],
    weight_decays: Sequence[float],
    seeds: Sequence[int],
    *,
    epochs: int,
    batch_size: int | None = None,
    dropout: float = 0.0,
    select: str = "val_auc",
    progress: Progress | None = None,
    engine: str = "auto",
    threads: int | None = None,
    kernel: str = "auto",
    task: str = BINARY,
) -> StackedFit:
    """Train ``K = len(seeds)`` heads of the same shape together with Adam.

    Args:
        data: Training and validation rows (on the training device), shaped for
            ``task`` (:class:`~cactus_features.heads.prepare.data.SplitTensors`).
        sizes: ``(in, out)`` of each layer (one layer: a linear head); the last ``out``
            is 1 for a binary task, the number of classes or labels otherwise.
        lrs: Learning rate of each head.
        weight_decays: Weight decay of each head.
        seeds: Seed of each head.
        epochs: Number of epochs.
        batch_size: Rows per step, or ``None`` for full batch.
        dropout: Dropout after hidden layers.
        select: ``"val_auc"``, ``"val_loss"`` or ``"last"``.
        progress: Optional report callback, called about ten times.
        engine: ``"auto"``, ``"fused"`` (CPU, full-batch linear only) or ``"generic"``.
        threads: Worker threads of the fused engine (default: PyTorch's thread count).
        kernel: The fused engine's kernel: ``"auto"``, ``"native"`` or ``"torch"``
            (see :func:`~cactus_features.heads.fastpath.fused_linear.pick_kernel`).
        task: ``"binary"``, ``"multiclass"`` or ``"multilabel"``: which loss and
            validation scores (see the module docstring).

    Returns:
        Selected and last weights, curves and the selected epochs.

    Raises:
        ValueError: If the output size or the targets' shape does not fit ``task``, or
            ``engine="fused"`` where it does not apply.
    """
    _check_task(task, sizes[-1][1], data)
    dev = data.device
    params = init_stacked(sizes, seeds, dev)
    opt = StackedAdam(params, lrs, weight_decays)
    gens = train_generators(seeds, dev)
    use_fused = _use_fused(engine, dev, batch_size, sizes)
    threads = threads or torch.get_num_threads()
    curves = _Curves(epochs, len(seeds), dev, progress)
    has_val = data.x_val.shape[0] > 0
    start = time.perf_counter()
    opened = _open_engine(
        use_fused, data, params, opt, gens, batch_size, dropout, threads, kernel, task
    )
    with one_off_time() as one_off, opened as eng:
        score = eng.scorer(data.y_val, data.w_val)
        tracker = _BestTracker(params, select)
        pending = eng.validation(params)
        for epoch in range(1, epochs + 1):
            curves.hist[0, epoch - 1] = eng.step()
            pending.push(params, epoch)
            if pending.full or epoch == epochs:
                z = pending.logits() if has_val else None
                curves.record(score, z, pending, tracker)
                pending.clear()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - start - one_off.seconds
    h = curves.hist.cpu().numpy()
    return StackedFit(
        best=[b.clone() for b in tracker.best] if select == "last" else tracker.best,
        last=params,
        history={n: h[i] for i, n in enumerate(_NAMES)},
        best_epoch=tracker.epoch.cpu().numpy(),
        best_val_auc=tracker.auc.cpu().numpy(),
        best_val_loss=tracker.loss.cpu().numpy(),
        seconds=seconds,
        engine=eng.name,
        kernel=eng.kernel,
        one_off_seconds=one_off.seconds,
    )


_NAMES = ("train_loss", "val_loss", "val_auc")
