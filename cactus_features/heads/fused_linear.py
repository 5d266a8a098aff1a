"""The fast path: full-batch linear heads on the CPU.

Up to :data:`NATIVE_MAX_HEADS` heads (:func:`~cactus_features.heads.train_head`,
small sweeps) run the native one-pass kernel of :mod:`~cactus_features.heads.kernels`
on each worker thread's shard of rows; a head of such a stack trains bit for bit
like a lone head. Larger stacks are compute-bound enough for BLAS: they run the
PyTorch chunk loop below.

PyTorch chunk loop. Training a linear head is memory-bound: each epoch needs ``z = X w + b`` and the
gradient ``X.T r`` with ``r = sample_weight * (sigmoid(z) - y)``, i.e. two reads
of ``X`` (100 MB for 12,250 x 2,048 floats). Here both happen *per chunk of rows*
while the chunk is still in cache, so ``X`` streams from memory once per epoch.

Three PyTorch calls per chunk, on views sliced once: rows are grouped in runs of
equal label and weight, so within a chunk ``sw`` and ``y`` are constants. For
label 1 the chunk computes ``-z`` (``addmm`` with ``alpha = beta = -1``), because
``sigmoid(z) - 1 = -sigmoid(-z)``; so for every chunk ``q = sigmoid(s * z)``
(``s = +1`` for label 0, ``-1`` for label 1) and ``g += (s * sw) X_c.T q``::

    for each chunk c:  z~_c = s (X_c w + b);  q_c = sigmoid(z~_c);  g += s sw X_c.T q_c

The loss is ``sum sw * softplus(z~)`` and the bias gradient ``sum s sw q``.

Rows are split into one contiguous shard per worker thread (PyTorch's CPU
matrix-vector product is single-threaded, and its kernels release the GIL), each
with its own gradient accumulator; the partial gradients are summed in a fixed
order, so results are deterministic. Shards are walked forwards and backwards on
alternate epochs so the rows read last (still in the L3 cache) are read first.
No autograd, preallocated buffers, Adam in place.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F

from cactus_features.heads import kernels
from cactus_features.heads.adam import StackedAdam

CHUNK_BYTES = 4 << 20
"""Target size of one chunk of rows (re-read from the L3 cache by the backward product;
smaller chunks do not pay: per-call overhead outweighs the faster L2 re-read)."""


@contextlib.contextmanager
def single_threaded_ops() -> Iterator[None]:
    """Make PyTorch CPU ops single-threaded inside the block (restored afterwards).

    The fused engine runs its own worker threads; letting each op also fork
    intra-op threads would oversubscribe the cores. Note: the setting is
    process-wide while the block runs.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _runs(keys: torch.Tensor) -> list[tuple[int, int]]:
    """``[start, stop)`` of each run of equal consecutive values."""
    if len(keys) == 0:
        return []
    change = torch.nonzero(keys[1:] != keys[:-1]).flatten().add(1).tolist()
    edges = [0, *change, len(keys)]
    return list(itertools.pairwise(edges))


def _chunks(
    spans: list[tuple[int, int]], bounds: list[int], rows: int
) -> list[list[tuple[int, int]]]:
    """Per shard (``bounds``), chunks of at most ``rows`` that do not cross ``spans``."""
    shards = []
    for lo, hi in itertools.pairwise(bounds):
        chunks = []
        for a, e in spans:
            a, e = max(a, lo), min(e, hi)
            chunks += [(c, min(c + rows, e)) for c in range(a, e, rows)]
        shards.append(chunks)
    return shards


MAX_RUNS = 64
"""More runs of equal (label, weight) than this: the engine trains on a sorted copy."""

KERNELS = ("auto", "native", "torch")
"""``native``: the one-pass kernel; ``torch``: the chunk loop; ``auto``: native up to
:data:`NATIVE_MAX_HEADS` heads."""

NATIVE_MAX_HEADS = 8
"""Largest stack ``auto`` trains with the native kernel. Its cost grows with ``K`` (each
head's dot products and update are separate sweeps) while the BLAS loop's grows
slowly; at 12,250 x 2,048 on 2 cores, ms/epoch native vs torch: K=8 19 vs 27,
K=16 31 vs 25 (``benchmarks/bench_head.py --sweep-ks ... --sweep-kernels native,torch``)."""


def pick_kernel(kernel: str, heads: int) -> str:
    """The kernel the fused engine runs for ``heads`` stacked heads.

    Raises:
        ValueError: Unknown ``kernel``, or ``native`` where it does not apply.
    """
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {', '.join(KERNELS)}; got {kernel!r}")
    if kernel == "native" and not kernels.available():
        raise ValueError("the native kernel needs numba (pip install numba)")
    if kernel == "auto":
        return "native" if heads <= NATIVE_MAX_HEADS and kernels.available() else "torch"
    return kernel


class FusedLinearEngine:
    """Full-batch training of ``K`` linear heads on the CPU.

    Args:
        x: Training inputs ``[N, D]`` (float32, contiguous); best ordered by label
            (as :meth:`PreparedData.tensors` does), otherwise a sorted copy is made.
        y: Training targets ``[N]`` in ``{0, 1}``.
        weight: Per-sample (class) weights ``[N]``; normalised here to sum to 1.
        x_val: Validation inputs ``[Nv, D]``.
        params: ``[W [K, 1, D], b [K, 1]]`` (updated in place).
        optimizer: Adam over ``params``.
        threads: Worker threads (default: PyTorch's intra-op thread count; read it
            before entering :func:`single_threaded_ops`).
        chunk_rows: Rows per chunk of the torch loop (default: about
            :data:`CHUNK_BYTES` of ``x``).
        kernel: One of :data:`KERNELS` (see :func:`pick_kernel`).
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        weight: torch.Tensor,
        x_val: torch.Tensor,
        params: list[torch.Tensor],
        optimizer: StackedAdam,
        threads: int | None = None,
        chunk_rows: int | None = None,
        kernel: str = "auto",
    ) -> None:
        n, d = x.shape
        k = params[0].shape[0]
        self.kernel = pick_kernel(kernel, k)
        sw = (weight / weight.sum()).to(torch.float32)
        key = y.to(torch.float64) * 4.0 + sw.to(torch.float64)  # y in {0, 1}, sw <= 1
        if len(_runs(key)) > MAX_RUNS:
            order = torch.argsort(key, stable=True)
            x, y, sw, key = x[order], y[order], sw[order], key[order]
        self.k, self.params, self.opt = k, params, optimizer
        self.threads = max(1, min(threads or torch.get_num_threads(), max(1, n // 64)))
        rows = chunk_rows or max(16, CHUNK_BYTES // (4 * d))
        bounds = [round(i * n / self.threads) for i in range(self.threads + 1)]
        self.w_t = params[0].view(k, d).T  # [D, K] view of the weights
        self.b = params[1].view(k)
        self.sign = (1.0 - 2.0 * y).reshape(n, 1)
        self.sw = sw.reshape(n, 1)
        self.signed_sw = self.sign * self.sw
        self.z = torch.empty(n, k)  # s * logits
        self.q = torch.empty(n, k)  # sigmoid(s * logits)
        self.g_parts = torch.empty(self.threads, k, d)
        self.g_w = torch.empty(k, 1, d)
        self.g_b = torch.empty(k, 1)
        # per shard: (x chunk, z chunk, q chunk, sign, signed weight) views, sliced once
        self.train_chunks = [
            [
                (x[a:e], self.z[a:e], self.q[a:e], float(self.sign[a]), float(self.signed_sw[a]))
                for a, e in shard
            ]
            for shard in _chunks(_runs(key), bounds, rows)
        ]
        nv = x_val.shape[0]
        self.z_val = torch.empty(nv, k)
        vbounds = [round(i * nv / self.threads) for i in range(self.threads + 1)]
        self.val_chunks = [
            [(x_val[a:e], self.z_val[a:e]) for a, e in shard]
            for shard in _chunks([(0, nv)], vbounds, rows)
        ]
        if self.kernel == "native":
            self._native_views(x, x_val, bounds, vbounds)
        # the calling thread works shard 0; the pool the others
        self._pool = ThreadPoolExecutor(self.threads - 1) if self.threads > 1 else None
        self._epoch = 0
        self._loss = torch.zeros(k)

    def _native_views(
        self, x: torch.Tensor, x_val: torch.Tensor, bounds: list[int], vbounds: list[int]
    ) -> None:
        """Per-thread NumPy views (shared memory) for the native kernel."""
        xs = x.to(torch.float32).contiguous().numpy()
        sign = self.sign.reshape(-1).numpy()
        cw = self.signed_sw.reshape(-1).numpy()
        sw = self.sw.reshape(-1).numpy()
        z = self.z.numpy()
        # the live parameters (Adam updates them in place)
        self._w = self.params[0].view(self.k, -1).numpy()
        self._b = self.b.numpy()
        self._g = self.g_parts.numpy()
        self._shards = [
            (xs[a:e], sign[a:e], cw[a:e], sw[a:e], z[a:e]) for a, e in itertools.pairwise(bounds)
        ]
        xv, zv = x_val.to(torch.float32).contiguous().numpy(), self.z_val.numpy()
        self._val_shards = [(xv[a:e], zv[a:e]) for a, e in itertools.pairwise(vbounds)]
        # per shard: weighted loss and bias gradient of each head
        self._loss_parts = np.zeros((self.threads, self.k))
        self._gb_parts = np.zeros((self.threads, self.k))

    def close(self) -> None:
        """Stop the worker threads."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def _run(self, fn: Callable[[int], None]) -> None:
        if self._pool is None:
            fn(0)
            return
        futures = [self._pool.submit(fn, t) for t in range(1, self.threads)]
        try:
            fn(0)
        finally:
            for fut in futures:
                fut.result()

    def _pass_shard(self, t: int) -> None:
        """Validation logits and the shard's gradient, at the current weights.

        Even passes read ``[val, train ->]``, odd passes ``[train <-, val]``: the
        training rows read last in one pass are read first in the next, with no
        validation rows streamed in between to evict them from the cache.
        """
        w_t, b, g = self.w_t, self.b, self.g_parts[t]
        odd = self._epoch % 2 == 1
        if not odd:
            self._val_shard(t)
        if self.kernel == "native":
            xs, sign, cw, sw, z = self._shards[t]
            loss, grad_b = self._loss_parts[t], self._gb_parts[t]
            kernels.linear_epoch(
                xs, self._w, self._b, sign, cw, sw, z, self._g[t], loss, grad_b, odd
            )
            if odd:
                self._val_shard(t)
            return
        g.zero_()
        chunks = self.train_chunks[t]
        for xc, zc, qc, s, alpha in reversed(chunks) if odd else chunks:
            torch.addmm(b, xc, w_t, beta=s, alpha=s, out=zc)
            torch.sigmoid(zc, out=qc)
            g.addmm_(qc.T, xc, alpha=alpha)
        if odd:
            self._val_shard(t)

    def _val_shard(self, t: int) -> None:
        if self.kernel == "native":
            xv, zv = self._val_shards[t]
            kernels.linear_logits(xv, self._w, self._b, zv)
            return
        for xc, zc in self.val_chunks[t]:
            torch.addmm(self.b, xc, self.w_t, out=zc)

    def begin_epoch(self) -> torch.Tensor:
        """Gradient and training loss (kept) and validation logits ``[K, Nv]``, at the
        current weights, in one pass over the data."""
        self._run(self._pass_shard)
        self._epoch += 1
        torch.sum(self.g_parts, dim=0, out=self.g_w.view(self.k, -1))
        if self.kernel == "native":
            # fixed order: shard 0, 1, ...
            self.g_b.view(self.k).copy_(torch.from_numpy(self._gb_parts.sum(0)))
            self._loss = torch.from_numpy(self._loss_parts.sum(0))
            return self.z_val.T
        torch.sum(self.q.mul(self.signed_sw), dim=0, out=self.g_b.view(self.k))
        self._loss = F.softplus(self.z).mul_(self.sw).sum(0)
        return self.z_val.T

    def finish_epoch(self) -> torch.Tensor:
        """Apply the Adam step; returns the training loss ``[K]`` it was computed at."""
        self.opt.step([self.g_w, self.g_b])
        return self._loss

    def val_logits(self) -> torch.Tensor:
        """Validation logits ``[K, Nv]`` of the current weights."""
        self._run(self._val_shard)
        return self.z_val.T
