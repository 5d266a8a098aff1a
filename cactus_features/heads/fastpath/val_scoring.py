"""Validation loss and ROC AUC of many score vectors at once (epochs x heads).

:func:`make_scorer` returns ``score(z [m, K, Nv]) -> (loss [m, K], auc [m, K])``
(float64) for ``m`` consecutive epochs of ``K`` heads:

* on the CPU with Numba: the compiled
  :func:`~cactus_features.heads.fastpath.kernels.val_metrics_seq`, each worker thread
  taking its share of the heads (or, with fewer heads than threads, a run of
  consecutive epochs), every head's scores sorted starting from its previous
  epoch's order (nearly sorted already: logits move little per epoch);
* otherwise batched torch ops on the scores' device.

Both count tied scores as one half in the AUC, weight the loss by the class
weights normalised to sum to 1, and give a NaN AUC when one class is missing.

Heads with ``C > 1`` outputs (logits ``[m, K, Nv, C]``) are scored by
:func:`multi_output_scorer`, batched torch ops in float64 on the scores' device:

* multiclass -- ``val_loss`` the class-weighted mean softmax cross-entropy,
  ``val_auc`` the macro one-vs-rest AUC of the softmax probabilities over the classes
  present in the validation rows (NaN when fewer than two are);
* multilabel -- ``val_loss`` the mean over labels of each label's weighted-mean BCE,
  ``val_auc`` the mean AUC over the labels with both values in the validation rows
  (NaN when none has).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from cactus_features.data.classes import MULTICLASS, MULTILABEL
from cactus_features.heads.fastpath import kernels
from cactus_features.heads.fastpath.auc import roc_auc
from cactus_features.heads.nn.losses import (
    normalise_weights,
    weighted_bce,
    weighted_multilabel_bce,
    weighted_softmax_ce,
)

Scorer = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
Parallel = Callable[[Callable[[int], None]], None]
"""``parallel(fn)`` runs ``fn(0), ..., fn(threads - 1)`` on the worker threads."""


class NativeScorer:
    """Compiled scoring on the CPU, spread over worker threads.

    Args:
        y_val: ``[Nv]`` targets in ``{0, 1}``.
        w_val: ``[Nv]`` class weight of each row.
        heads: ``K``.
        parallel: Runs one function per worker thread.
        threads: Number of worker threads ``parallel`` uses.
    """

    def __init__(
        self, y_val: torch.Tensor, w_val: torch.Tensor, heads: int, parallel: Parallel, threads: int
    ) -> None:
        self.pos = (y_val > 0.5).numpy()
        self.sw = (w_val / w_val.sum()).to(torch.float64).numpy()
        self.parallel, self.threads = parallel, threads
        nv = len(self.pos)
        # each (thread, head)'s last sorted order, the start of its next sort
        self.order = np.tile(np.arange(nv, dtype=np.int64), (threads, heads, 1))

    def __call__(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m, k, _ = z.shape
        zs = z.numpy()
        # [K, M] so each head's outputs are contiguous, and contiguous logits: the kernel
        # then always gets the one type it was compiled for at import
        loss, auc = np.empty((k, m)), np.empty((k, m))
        if k >= self.threads:  # each thread scores its heads over all the epochs
            heads = [round(t * k / self.threads) for t in range(self.threads + 1)]

            def work(t: int) -> None:
                for h in range(heads[t], heads[t + 1]):
                    kernels.val_metrics_seq(
                        np.ascontiguousarray(zs[:, h]),
                        self.pos,
                        self.sw,
                        self.order[0, h],
                        loss[h],
                        auc[h],
                    )

        else:  # each thread scores a run of consecutive epochs of every head
            bounds = [round(t * m / self.threads) for t in range(self.threads + 1)]

            def work(t: int) -> None:
                a, e = bounds[t], bounds[t + 1]
                for h in range(k if e > a else 0):
                    kernels.val_metrics_seq(
                        np.ascontiguousarray(zs[a:e, h]),
                        self.pos,
                        self.sw,
                        self.order[t, h],
                        loss[h, a:e],
                        auc[h, a:e],
                    )

        self.parallel(work)
        return torch.from_numpy(loss.T), torch.from_numpy(auc.T)


def torch_scorer(y_val: torch.Tensor, w_val: torch.Tensor) -> Scorer:
    """Batched torch scoring on the device of ``y_val``."""
    pos = y_val > 0.5
    sw = w_val / w_val.sum()

    def score(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m, k, nv = z.shape
        flat = z.reshape(m * k, nv)
        loss = weighted_bce(flat, y_val, sw)[0].to(torch.float64)
        return loss.view(m, k), roc_auc(flat, pos).view(m, k)

    return score


def multi_output_scorer(y_val: torch.Tensor, w_val: torch.Tensor, task: str) -> Scorer:
    """Batched torch scoring of ``C > 1`` outputs (see the module docstring).

    Args:
        y_val: ``[Nv]`` class indices (multiclass) or ``[Nv, L]`` 0/1 targets (multilabel).
        w_val: ``[Nv]`` class weight of each row, or ``[Nv, L]`` weight of each entry.
        task: ``"multiclass"`` or ``"multilabel"``.

    Returns:
        ``score(z [m, K, Nv, C]) -> (loss [m, K], auc [m, K])``, float64.
    """
    if task not in (MULTICLASS, MULTILABEL):
        raise ValueError(f"task {task!r} has one output; use make_scorer")
    multilabel = task == MULTILABEL
    y = y_val.to(torch.float64) if multilabel else y_val.to(torch.int64)
    sw = normalise_weights(w_val.to(torch.float64), task)

    def score(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m, k, nv, c = z.shape
        flat = z.reshape(m * k, nv, c).to(torch.float64)
        if multilabel:
            loss = weighted_multilabel_bce(flat, y, sw)[0]
            scores, truth = flat, y > 0.5
        else:
            loss = weighted_softmax_ce(flat, y, sw)[0]
            scores, truth = torch.softmax(flat, dim=-1), F.one_hot(y, c).bool()
        aucs = torch.stack([roc_auc(scores[:, :, j], truth[:, j]) for j in range(c)], dim=1)
        return loss.view(m, k), torch.nanmean(aucs, dim=1).view(m, k)

    return score


def make_scorer(
    y_val: torch.Tensor,
    w_val: torch.Tensor,
    heads: int,
    parallel: Parallel | None = None,
    threads: int = 1,
) -> Scorer:
    """The scorer for validation rows ``y_val``, ``w_val`` (see the module docstring).

    Args:
        y_val: ``[Nv]`` targets in ``{0, 1}``.
        w_val: ``[Nv]`` class weight of each row.
        heads: ``K``.
        parallel: Worker threads to spread the compiled scoring over (the fused
            engine's); ``None`` runs it on the calling thread.
        threads: Number of worker threads of ``parallel``.
    """
    if y_val.device.type != "cpu" or not kernels.available() or len(y_val) == 0:
        return torch_scorer(y_val, w_val)
    if parallel is None:
        parallel, threads = (lambda fn: fn(0)), 1
    return NativeScorer(y_val, w_val, heads, parallel, threads)
