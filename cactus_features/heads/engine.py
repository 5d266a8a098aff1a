"""Adam training of a stack of ``K`` heads, with per-epoch curves and checkpoint selection.

:func:`fit_stacked` is the one training loop behind :func:`~cactus_features.heads.train_head`
(``K = 1``) and :func:`~cactus_features.heads.sweep_heads` (``K`` grid points at once).
Each head has its own learning rate, weight decay and seed (initial weights,
dropout masks, mini-batch order), so head ``k`` of a stack trains like a
single head with those settings (up to float rounding: a batched matmul may sum
in another order).

Engines: full-batch linear heads on the CPU use
:class:`~cactus_features.heads.fused_linear.FusedLinearEngine`; everything else
(MLPs, mini-batches, GPU) uses :class:`GenericEngine`. Every epoch's weights are
scored on the validation rows: by the generic engine as each epoch ends; by the
fused engine a window of epochs at a time
(:class:`~cactus_features.heads.snapshots.SnapshotWindow`: one pass over the
validation rows per window instead of per epoch, same curves and selection).
Loss and AUC come from :mod:`~cactus_features.heads.val_scoring` (compiled on the
CPU). On a GPU everything stays on the device: curves and the best-so-far weights
are updated with tensor ops, so the loop never waits for the host (except for
``progress`` reports).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cactus_features.heads.adam import StackedAdam
from cactus_features.heads.fused_linear import FusedLinearEngine, single_threaded_ops
from cactus_features.heads.models import init_stacked
from cactus_features.heads.snapshots import SnapshotWindow, window_epochs
from cactus_features.heads.stacked import StackedNet, weighted_bce
from cactus_features.heads.val_scoring import make_scorer

Progress = Callable[[int, dict[str, float]], None]
"""Called as ``progress(epoch, {"train_loss", "val_loss", "val_auc"})`` for head 0."""


@dataclass
class SplitTensors:
    """Training and validation rows on the training device.

    Attributes:
        x_train: ``[N, D]`` float32 (standardised) inputs.
        y_train: ``[N]`` float32 targets in ``{0, 1}``.
        w_train: ``[N]`` float32 class weight of each row.
        x_val: ``[Nv, D]``.
        y_val: ``[Nv]``.
        w_val: ``[Nv]``.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    w_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    w_val: torch.Tensor

    @property
    def device(self) -> torch.device:
        """Where the tensors live."""
        return self.x_train.device


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
        seconds: Wall time of the training loop.
        engine: Name of the engine used.
        kernel: The fused engine's kernel (``native`` or ``torch``); empty otherwise.
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


class GenericEngine:
    """Any head, full batch or mini-batches, any device.

    Args:
        data: Training and validation rows.
        net: The stacked heads.
        optimizer: Adam over the heads' parameters.
        batch_size: Rows per step, or ``None`` for full batch.
        generators: One generator per head (mini-batch order).
    """

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

    def close(self) -> None:
        """Nothing to release."""


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
) -> StackedFit:
    """Train ``K = len(seeds)`` heads of the same shape together with Adam.

    Args:
        data: Training and validation rows (on the training device).
        sizes: ``(in, out)`` of each layer (one layer: a linear head).
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
            (see :func:`~cactus_features.heads.fused_linear.pick_kernel`).

    Returns:
        Selected and last weights, curves and the selected epochs.
    """
    dev = data.device
    k = len(seeds)
    params = init_stacked(sizes, seeds, dev)
    opt = StackedAdam(params, lrs, weight_decays)
    gens = train_generators(seeds, dev)
    fused_ok = dev.type == "cpu" and batch_size is None and len(sizes) == 1
    use_fused = engine == "fused" or (engine == "auto" and fused_ok)
    if use_fused and not fused_ok:
        raise ValueError("the fused engine trains full-batch linear heads on the CPU only")
    threads = threads or torch.get_num_threads()
    ctx = single_threaded_ops() if use_fused else contextlib.nullcontext()
    hist = torch.full((3, epochs, k), torch.nan, dtype=torch.float64, device=dev)
    has_val = data.x_val.shape[0] > 0
    every = max(1, epochs // 10)
    start = time.perf_counter()
    with ctx:
        eng: FusedLinearEngine | GenericEngine
        if use_fused:
            eng = FusedLinearEngine(
                data.x_train,
                data.y_train,
                data.w_train,
                data.x_val,
                params,
                opt,
                threads,
                kernel=kernel,
            )
        else:
            net = StackedNet(params, dropout, gens if dropout > 0 else None)
            eng = GenericEngine(data, net, opt, batch_size, gens)
        if isinstance(eng, FusedLinearEngine):  # compiled scoring over its worker threads
            score = make_scorer(data.y_val, data.w_val, k, eng.parallel, eng.threads)
        else:
            score = make_scorer(data.y_val, data.w_val, k)
        tracker = _BestTracker(params, select)
        nan = torch.full((1, k), torch.nan, dtype=torch.float64, device=dev)

        def evaluate(
            z: torch.Tensor | None,
            first: int,
            m: int,
            snapshot: Callable[[int], list[torch.Tensor]],
        ) -> None:
            """Record validation metrics of the weights after ``m`` consecutive epochs.

            Args:
                z: Validation logits ``[m, K, Nv]`` (``None``: no validation rows).
                first: The first of the epochs (1-based).
                m: How many epochs.
                snapshot: ``snapshot(j)``: the parameters after epoch ``first + j``.
            """
            if z is None:
                vloss = vauc = nan.expand(m, k)
            else:
                vloss, vauc = score(z)
                hist[1, first - 1 : first - 1 + m] = vloss
                hist[2, first - 1 : first - 1 + m] = vauc
            for j in range(m):
                epoch = first + j
                tracker.update(snapshot(j), vauc[j], vloss[j], epoch)
                if progress is not None and (epoch % every == 0 or epoch == epochs):
                    row = {n: float(hist[i, epoch - 1, 0]) for i, n in enumerate(_NAMES)}
                    progress(epoch, row)

        try:
            if isinstance(eng, FusedLinearEngine):
                # validation: a window of epochs' weights at a time, in one pass over the rows
                window = SnapshotWindow(params, window_epochs(k, sizes[0][0]))
                for epoch in range(1, epochs + 1):
                    hist[0, epoch - 1] = eng.step()
                    window.push(params, epoch)
                    if window.full or epoch == epochs:
                        m = len(window)
                        z = eng.val_logits(*window.flat()).view(m, k, -1) if has_val else None
                        evaluate(z, window.epochs[0], m, window.params)
                        window.clear()
            else:
                for epoch in range(1, epochs + 1):
                    hist[0, epoch - 1] = eng.step()
                    z = eng.val_logits().unsqueeze(0) if has_val else None
                    evaluate(z, epoch, 1, lambda _: params)
        finally:
            eng.close()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - start
    h = hist.cpu().numpy()
    return StackedFit(
        best=[b.clone() for b in tracker.best] if select == "last" else tracker.best,
        last=params,
        history={n: h[i] for i, n in enumerate(_NAMES)},
        best_epoch=tracker.epoch.cpu().numpy(),
        best_val_auc=tracker.auc.cpu().numpy(),
        best_val_loss=tracker.loss.cpu().numpy(),
        seconds=seconds,
        engine="fused" if use_fused else "generic",
        kernel=eng.kernel,
    )


_NAMES = ("train_loss", "val_loss", "val_auc")
