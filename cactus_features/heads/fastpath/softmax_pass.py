"""The K-class softmax objective's data term in one read of the rows (CPU).

Each L-BFGS evaluation of the multinomial head needs, for the training rows
``X [N, D]`` with labels ``y``, weights ``s`` and parameters ``W [K, D]``, ``b [K]``::

    Z = X W^T + b        logp = log_softmax(Z)      loss = -sum_i s_i logp[i, y_i]
    R = s (exp(logp) - onehot(y))                   grad_W = R^T X      grad_b = sum_i R_i

Written as two matrix products over all rows (as
:class:`~cactus_features.heads.solvers.multinomial.TwoPassSoftmax` does), ``X`` is
read twice. :class:`ChunkedSoftmax` splits the rows into one contiguous shard per
worker thread (each running single-threaded PyTorch ops, as the fused binary engine
does, see :mod:`~cactus_features.heads.fastpath.fused_linear`) and each shard into
chunks of about :data:`~cactus_features.heads.fastpath.fused_linear.CHUNK_BYTES`;
for each chunk it computes ``Z_c``, the softmax, ``R_c`` and adds ``R_c^T X_c`` to the
shard's gradient while ``X_c`` is still in cache, so ``X`` streams from memory once
per evaluation. The shards' sums are added in a fixed order (deterministic), and
shards are walked forwards and backwards on alternate evaluations (the rows read
last are still in the last-level cache). Products are in ``X``'s dtype, the
softmax, loss and sums in float64, as in the two-pass version: results agree with
it to float32 rounding (the gradient's float32 sums run per chunk instead of over
all rows).

Whether one read is the bottleneck depends on ``K`` and the machine: the two
products cost ``4 N D K`` flops per evaluation, so for large ``K`` (or a last-level
cache that holds ``X``) the evaluation is bound by arithmetic instead;
``benchmarks/bench_multiclass.py`` prints both limits beside the measured times.
"""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType

import torch
import torch.nn.functional as F

from cactus_features.heads.fastpath.fused_linear import CHUNK_BYTES, single_threaded_ops

DataTerm = tuple[float, torch.Tensor, torch.Tensor]
"""``(loss, grad_W, grad_b)``: the weighted log-loss sum, ``R^T X [K, D]`` and
``sum_i R_i [K]`` (float64)."""

MIN_SHARD_ROWS = 64
"""Fewest rows a worker thread gets (below that one thread does all rows)."""


class ChunkedSoftmax:
    """``(W, b) -> (sum_i s_i CE_i, R^T X, sum_i R_i)`` in one pass over ``X``'s rows.

    Args:
        x: Training inputs ``[N, D]`` on the CPU (float32, or float64 for float64
            products).
        y: Class indices ``[N]``.
        sample_weight: Per-row weights ``[N]``.
        n_classes: ``K``.
        threads: Worker threads (default: PyTorch's intra-op thread count).
        chunk_rows: Rows per chunk (default: about ``CHUNK_BYTES`` of ``x``).

    Call :meth:`close` (or use it as a context manager) to stop its worker threads.
    """

    name = "chunked"
    """The kind of pass, as benchmarks print it."""

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        sample_weight: torch.Tensor,
        n_classes: int,
        *,
        threads: int | None = None,
        chunk_rows: int | None = None,
    ) -> None:
        n, d = x.shape
        dt = torch.float64
        self.x = x.contiguous()
        self.k = n_classes
        labels = y.to(torch.int64)
        self.label = labels[:, None]
        self.onehot = F.one_hot(labels, n_classes).to(dt)
        self.s = sample_weight.to(dt)
        self.threads = max(1, min(threads or torch.get_num_threads(), n // MIN_SHARD_ROWS))
        rows = chunk_rows or max(16, CHUNK_BYTES // (self.x.element_size() * d))
        bounds = [round(i * n / self.threads) for i in range(self.threads + 1)]
        self.shards = [
            [(a, min(a + rows, hi)) for a in range(lo, hi, rows)]
            for lo, hi in itertools.pairwise(bounds)
        ]
        self.z = torch.empty(n, n_classes, dtype=self.x.dtype)
        self.z64 = torch.empty(n, n_classes, dtype=dt)
        self.g_parts = torch.empty(self.threads, n_classes, d, dtype=dt)
        self.g_chunk = torch.empty(self.threads, n_classes, d, dtype=self.x.dtype)
        self.gb_parts = torch.empty(self.threads, n_classes, dtype=dt)
        self.loss_parts = torch.empty(self.threads, dtype=dt)
        # the calling thread works shard 0; the pool the others
        self._pool = ThreadPoolExecutor(self.threads - 1) if self.threads > 1 else None
        self._passes = 0

    def __call__(self, w: torch.Tensor, b: torch.Tensor) -> DataTerm:
        """The data term at ``w [K, D]``, ``b [K]``.

        Returns:
            ``(loss, grad_w, grad_b)``: the weighted log-loss sum, ``R^T X [K, D]`` and
            ``sum_i R_i [K]`` (float64).
        """
        w_t = w.to(self.x.dtype).contiguous().T  # [D, K]
        b = b.to(torch.float64)
        reverse = self._passes % 2 == 1
        self._passes += 1
        with single_threaded_ops():
            if self._pool is None:
                self._shard(0, w_t, b, reverse)
            else:
                futures = [
                    self._pool.submit(self._shard, t, w_t, b, reverse)
                    for t in range(1, self.threads)
                ]
                try:
                    self._shard(0, w_t, b, reverse)
                finally:
                    for fut in futures:
                        fut.result()
        return float(self.loss_parts.sum()), self.g_parts.sum(0), self.gb_parts.sum(0)

    def _shard(self, t: int, w_t: torch.Tensor, b: torch.Tensor, reverse: bool) -> None:
        """Shard ``t``'s loss and gradients, chunk by chunk."""
        g, gb, g_chunk = self.g_parts[t], self.gb_parts[t], self.g_chunk[t]
        g.zero_()
        gb.zero_()
        loss = torch.zeros((), dtype=torch.float64)
        chunks = self.shards[t]
        for a, e in reversed(chunks) if reverse else chunks:
            xc = self.x[a:e]
            z = torch.add(torch.mm(xc, w_t, out=self.z[a:e]), b, out=self.z64[a:e])
            logp = torch.log_softmax(z, dim=1)
            loss.sub_(torch.dot(logp.gather(1, self.label[a:e]).view(-1), self.s[a:e]))
            r = logp.exp_().sub_(self.onehot[a:e]).mul_(self.s[a:e, None])
            gb.add_(r.sum(0))
            g.add_(torch.mm(r.to(xc.dtype).T, xc, out=g_chunk))
        self.loss_parts[t] = loss

    def close(self) -> None:
        """Stop the worker threads."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __enter__(self) -> ChunkedSoftmax:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
