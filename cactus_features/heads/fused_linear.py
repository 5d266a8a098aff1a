"""The fast path: full-batch linear heads on the CPU.

Training a linear head is memory-bound: each epoch needs ``z = X w + b`` and the
gradient ``X.T r`` with ``r = sample_weight * (sigmoid(z) - y)``: naively two
reads of ``X`` (100 MB for 12,250 x 2,048 floats). :class:`FusedLinearEngine`
splits the rows into one contiguous shard per worker thread, each with its own
gradient accumulator; the partial gradients are summed in a fixed order, so
results are deterministic. Shards are walked forwards and backwards on alternate
epochs, so the rows read last (still in the L3 cache) are read first. No
autograd, preallocated buffers, Adam in place. A shard's pass is one of:

* :class:`NativeRows` (up to :data:`NATIVE_MAX_HEADS` heads: ``train_head``,
  small sweeps): the one-pass kernel of :mod:`~cactus_features.heads.kernels`;
  ``X`` streams from memory once per epoch, and a head of a stack trains bit for
  bit like a lone head.
* :class:`TorchChunks` (larger stacks, which are compute-bound enough for BLAS):
  three PyTorch calls per chunk of rows, the second product re-reading the chunk
  from cache. Rows are grouped in runs of equal label and weight, so within a
  chunk ``sw`` and ``y`` are constants. For label 1 the chunk computes ``-z``
  (``addmm`` with ``alpha = beta = -1``), because ``sigmoid(z) - 1 = -sigmoid(-z)``;
  so for every chunk ``q = sigmoid(s * z)`` (``s = +1`` for label 0, ``-1`` for
  label 1) and ``g += (s * sw) X_c.T q``::

    for each chunk c:  z~_c = s (X_c w + b);  q_c = sigmoid(z~_c);  g += s sw X_c.T q_c

  The loss is ``sum sw * softplus(z~)`` and the bias gradient ``sum s sw q``.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

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
"""More runs of equal (label, weight) than this: the torch loop trains on a sorted copy
(the native kernel takes each row's label and weight as they come)."""

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


@dataclass
class Rows:
    """The training rows as the engine holds them (ordered by label and weight).

    Attributes:
        x: ``[N, D]`` float32 inputs.
        sign: ``[N, 1]``: ``+1`` for label 0, ``-1`` for label 1.
        sw: ``[N, 1]`` sample weights summing to 1.
        signed_sw: ``sign * sw``.
        runs: ``[start, stop)`` of each run of equal label and weight.
        bounds: Row boundaries of the worker threads' shards.
        x_val: ``[Nv, D]`` validation inputs.
        val_bounds: Row boundaries of the threads' validation shards.
    """

    x: torch.Tensor
    sign: torch.Tensor
    sw: torch.Tensor
    signed_sw: torch.Tensor
    runs: list[tuple[int, int]]
    bounds: list[int]
    x_val: torch.Tensor
    val_bounds: list[int]


@dataclass
class Buffers:
    """What a pass writes (preallocated, shared by the threads, each in its rows).

    Attributes:
        z: ``[N, K]`` signed training logits ``sign * (x w + b)``.
        z_val: ``[Nv, K]`` validation logits.
        g_parts: ``[threads, K, D]`` each shard's weight gradient.
    """

    z: torch.Tensor
    z_val: torch.Tensor
    g_parts: torch.Tensor


class TorchChunks:
    """A shard's pass as PyTorch calls on chunks of rows (see the module docstring)."""

    def __init__(self, rows: Rows, out: Buffers, params: list[torch.Tensor], chunk_rows: int):
        k, d = params[0].shape[0], rows.x.shape[1]
        self.rows, self.out = rows, out
        self.w_t = params[0].view(k, d).T  # [D, K] view of the weights
        self.b = params[1].view(k)
        self.q = torch.empty_like(out.z)  # sigmoid(s * logits)
        sign, ssw = rows.sign, rows.signed_sw
        # per shard: (x chunk, z chunk, q chunk, sign, signed weight) views, sliced once
        self.train_chunks = [
            [
                (rows.x[a:e], out.z[a:e], self.q[a:e], float(sign[a]), float(ssw[a]))
                for a, e in shard
            ]
            for shard in _chunks(rows.runs, rows.bounds, chunk_rows)
        ]
        nv = rows.x_val.shape[0]
        self.val_chunks = [
            [(rows.x_val[a:e], out.z_val[a:e]) for a, e in shard]
            for shard in _chunks([(0, nv)], rows.val_bounds, chunk_rows)
        ]

    def train(self, t: int, reverse: bool) -> None:
        """Shard ``t``'s logits and gradient (into ``out``)."""
        g = self.out.g_parts[t]
        g.zero_()
        chunks = self.train_chunks[t]
        for xc, zc, qc, s, alpha in reversed(chunks) if reverse else chunks:
            torch.addmm(self.b, xc, self.w_t, beta=s, alpha=s, out=zc)
            torch.sigmoid(zc, out=qc)
            g.addmm_(qc.T, xc, alpha=alpha)

    def val(self, t: int) -> None:
        """Shard ``t``'s validation logits."""
        for xc, zc in self.val_chunks[t]:
            torch.addmm(self.b, xc, self.w_t, out=zc)

    def bias_grad_and_loss(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Bias gradient ``[K]`` and weighted training loss ``[K]`` of the pass."""
        grad_b = self.q.mul(self.rows.signed_sw).sum(0)
        return grad_b, F.softplus(self.out.z).mul_(self.rows.sw).sum(0)


class NativeRows:
    """A shard's pass as one call of the compiled one-pass kernel."""

    def __init__(self, rows: Rows, out: Buffers, params: list[torch.Tensor]):
        k = params[0].shape[0]
        threads = out.g_parts.shape[0]
        xs = rows.x.to(torch.float32).contiguous().numpy()
        sign, cw = rows.sign.reshape(-1).numpy(), rows.signed_sw.reshape(-1).numpy()
        sw, z = rows.sw.reshape(-1).numpy(), out.z.numpy()
        # the live parameters (Adam updates them in place), as NumPy views
        self.w = params[0].view(k, -1).numpy()
        self.b = params[1].view(k).numpy()
        self.g = out.g_parts.numpy()
        self.shards = [
            (xs[a:e], sign[a:e], cw[a:e], sw[a:e], z[a:e])
            for a, e in itertools.pairwise(rows.bounds)
        ]
        xv, zv = rows.x_val.to(torch.float32).contiguous().numpy(), out.z_val.numpy()
        self.val_shards = [(xv[a:e], zv[a:e]) for a, e in itertools.pairwise(rows.val_bounds)]
        # per shard: weighted loss and bias gradient of each head
        self.loss_parts = np.zeros((threads, k))
        self.grad_b_parts = np.zeros((threads, k))

    def train(self, t: int, reverse: bool) -> None:
        """Shard ``t``'s logits, gradient, loss and bias gradient."""
        xs, sign, cw, sw, z = self.shards[t]
        loss, grad_b = self.loss_parts[t], self.grad_b_parts[t]
        kernels.linear_epoch(xs, self.w, self.b, sign, cw, sw, z, self.g[t], loss, grad_b, reverse)

    def val(self, t: int) -> None:
        """Shard ``t``'s validation logits."""
        xv, zv = self.val_shards[t]
        kernels.linear_logits(xv, self.w, self.b, zv)

    def bias_grad_and_loss(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Bias gradient ``[K]`` and weighted training loss ``[K]`` (shards summed in order)."""
        grad_b = torch.from_numpy(self.grad_b_parts.sum(0)).to(torch.float32)
        return grad_b, torch.from_numpy(self.loss_parts.sum(0))


class FusedLinearEngine:
    """Full-batch training of ``K`` linear heads on the CPU.

    Args:
        x: Training inputs ``[N, D]`` (float32, contiguous); for the torch loop best
            ordered by label (as :meth:`PreparedData.tensors` does), otherwise it
            makes a sorted copy.
        y: Training targets ``[N]`` in ``{0, 1}``.
        weight: Per-sample (class) weights ``[N]``; normalised here to sum to 1.
        x_val: Validation inputs ``[Nv, D]``.
        params: ``[W [K, 1, D], b [K, 1]]`` (updated in place).
        optimizer: Adam over ``params``.
        threads: Worker threads (default: PyTorch's intra-op thread count; read it
            before entering :func:`single_threaded_ops`).
        chunk_rows: Rows per chunk of :class:`TorchChunks` (default: about
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
        runs = _runs(key)
        if self.kernel == "torch" and len(runs) > MAX_RUNS:
            order = torch.argsort(key, stable=True)
            x, y, sw = x[order], y[order], sw[order]
            runs = _runs(key[order])
        self.k, self.params, self.opt = k, params, optimizer
        self.threads = max(1, min(threads or torch.get_num_threads(), max(1, n // 64)))
        nv = x_val.shape[0]
        sign = (1.0 - 2.0 * y).reshape(n, 1)
        rows = Rows(
            x=x,
            sign=sign,
            sw=sw.reshape(n, 1),
            signed_sw=sign * sw.reshape(n, 1),
            runs=runs,
            bounds=[round(i * n / self.threads) for i in range(self.threads + 1)],
            x_val=x_val,
            val_bounds=[round(i * nv / self.threads) for i in range(self.threads + 1)],
        )
        self.out = Buffers(torch.empty(n, k), torch.empty(nv, k), torch.empty(self.threads, k, d))
        self.g_w = torch.empty(k, 1, d)
        self.g_b = torch.empty(k, 1)
        self.shard_pass: NativeRows | TorchChunks = (
            NativeRows(rows, self.out, params)
            if self.kernel == "native"
            else TorchChunks(rows, self.out, params, chunk_rows or max(16, CHUNK_BYTES // (4 * d)))
        )
        # the calling thread works shard 0; the pool the others
        self._pool = ThreadPoolExecutor(self.threads - 1) if self.threads > 1 else None
        self._epoch = 0
        self._loss = torch.zeros(k)

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
        odd = self._epoch % 2 == 1
        if not odd:
            self.shard_pass.val(t)
        self.shard_pass.train(t, reverse=odd)
        if odd:
            self.shard_pass.val(t)

    def begin_epoch(self) -> torch.Tensor:
        """Gradient and training loss (kept) and validation logits ``[K, Nv]``, at the
        current weights, in one pass over the data."""
        self._run(self._pass_shard)
        self._epoch += 1
        torch.sum(self.out.g_parts, dim=0, out=self.g_w.view(self.k, -1))
        grad_b, self._loss = self.shard_pass.bias_grad_and_loss()
        self.g_b.view(self.k).copy_(grad_b)
        return self.out.z_val.T

    def finish_epoch(self) -> torch.Tensor:
        """Apply the Adam step; returns the training loss ``[K]`` it was computed at."""
        self.opt.step([self.g_w, self.g_b])
        return self._loss

    def val_logits(self) -> torch.Tensor:
        """Validation logits ``[K, Nv]`` of the current weights."""
        self._run(self.shard_pass.val)
        return self.out.z_val.T
