"""The fast path: full-batch linear heads on the CPU.

Training a linear head is memory-bound: each epoch needs ``z = X w + b`` and the
gradient ``X.T r`` with ``r = sample_weight * (sigmoid(z) - y)``: naively two
reads of ``X`` (100 MB for 12,250 x 2,048 floats). :class:`FusedLinearEngine`
splits the rows into one contiguous shard per worker thread, each with its own
gradient accumulator; the partial gradients are summed in a fixed order, so
results are deterministic. Shards are walked forwards and backwards on alternate
epochs, so the rows read last (still in the L3 cache) are read first. No
autograd, preallocated buffers, Adam in place. Validation rows are not read in
the epoch's pass: :meth:`FusedLinearEngine.val_logits` scores a window of epochs'
weights in one pass (see :mod:`~cactus_features.heads.fastpath.snapshots`). A shard's pass
is one of:

* :class:`NativeRows` (up to :data:`NATIVE_MAX_HEADS` heads: ``train_head``,
  small sweeps): the one-pass kernel of :mod:`~cactus_features.heads.fastpath.kernels`;
  ``X`` streams from memory once per epoch, a head of a stack trains bit for
  bit like a lone head, and the gradient sum and Adam step are one compiled call.
* :class:`TorchChunks` (larger stacks, which are compute-bound enough for BLAS):
  three PyTorch calls per chunk of rows, the second product re-reading the chunk
  from cache. Rows are grouped in runs of equal label and weight, so within a
  chunk ``sw`` and ``y`` are constants. For label 1 the chunk computes ``-z``
  (``addmm`` with ``alpha = beta = -1``), because ``sigmoid(z) - 1 = -sigmoid(-z)``;
  so for every chunk ``q = sigmoid(s * z)`` (``s = +1`` for label 0, ``-1`` for
  label 1) and ``g += (s * sw) X_c.T q``::

    for each chunk c:  z~_c = s (X_c w + b);  q_c = sigmoid(z~_c);  g += s sw X_c.T q_c

  The loss is ``sum sw * softplus(z~)`` and the bias gradient ``sum s sw q``, both
  computed per shard from its sigmoids (see :meth:`TorchChunks.train`).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from cactus_features.heads.fastpath import kernels
from cactus_features.heads.fastpath.snapshots import SnapshotWindow, window_epochs
from cactus_features.heads.fastpath.val_scoring import Scorer, make_scorer
from cactus_features.heads.nn.adam import StackedAdam

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
        raise ValueError(f"the native kernel needs numba: {kernels.unavailable_reason()}")
    if kernel == "auto":
        if heads > NATIVE_MAX_HEADS:
            return "torch"
        if not kernels.available():
            kernels.report_unavailable()
            return "torch"
        return "native"
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
        g_parts: ``[threads, K, D]`` each shard's weight gradient.
    """

    z: torch.Tensor
    g_parts: torch.Tensor


class TorchChunks:
    """A shard's pass as PyTorch calls on chunks of rows (see the module docstring)."""

    def __init__(self, rows: Rows, out: Buffers, params: list[torch.Tensor], chunk_rows: int):
        k, d = params[0].shape[0], rows.x.shape[1]
        self.rows, self.out = rows, out
        self.w_t = params[0].view(k, d).T  # [D, K] view of the weights
        self.b = params[1].view(k)
        self.g_w, self.g_b = torch.empty(k, 1, d), torch.empty(k, 1)
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
        self.val_chunks = _chunks([(0, nv)], rows.val_bounds, chunk_rows)
        # per shard: weighted loss and bias gradient; its rows' logits, sigmoids, weights
        # and two scratch buffers
        threads = out.g_parts.shape[0]
        self.loss_parts, self.grad_b_parts = torch.zeros(threads, k), torch.zeros(threads, k)
        scratch = torch.empty(2, *out.z.shape)
        self.shard_rows = [
            (
                out.z[a:e],
                self.q[a:e],
                rows.sw[a:e, 0],
                ssw[a:e, 0],
                scratch[0, a:e],
                scratch[1, a:e],
            )
            for a, e in itertools.pairwise(rows.bounds)
        ]

    def train(self, t: int, reverse: bool) -> None:
        """Shard ``t``'s logits, gradient, loss and bias gradient.

        The loss uses the sigmoids already computed: ``softplus(z~) = max(z~, 0) -
        log(max(q, 1 - q))`` (one vectorised log, no exp), weighted by a product with
        the rows' weights, as is the bias gradient.
        """
        g = self.out.g_parts[t]
        g.zero_()
        chunks = self.train_chunks[t]
        for xc, zc, qc, s, alpha in reversed(chunks) if reverse else chunks:
            torch.addmm(self.b, xc, self.w_t, beta=s, alpha=s, out=zc)
            torch.sigmoid(zc, out=qc)
            g.addmm_(qc.T, xc, alpha=alpha)
        z, q, sw, ssw, log_q, sp = self.shard_rows[t]
        torch.maximum(q, torch.sub(1.0, q, out=log_q), out=log_q).log_()
        torch.clamp_min(z, 0.0, out=sp).sub_(log_q)
        torch.mv(sp.T, sw, out=self.loss_parts[t])
        torch.mv(q.T, ssw, out=self.grad_b_parts[t])

    def val(self, t: int, w: torch.Tensor, b: torch.Tensor, z_val: torch.Tensor) -> None:
        """Shard ``t``'s rows of ``z_val [Nv, M] = x_val w.T + b`` (``w [M, D]``, ``b [M]``)."""
        for a, e in self.val_chunks[t]:
            torch.addmm(b, self.rows.x_val[a:e], w.T, out=z_val[a:e])

    def finish(self, opt: StackedAdam) -> torch.Tensor:
        """Sum the shards' gradients (in shard order), take the Adam step; returns the
        weighted training loss ``[K]`` of the pass."""
        k = self.b.shape[0]
        torch.sum(self.out.g_parts, dim=0, out=self.g_w.view(k, -1))
        torch.sum(self.grad_b_parts, dim=0, out=self.g_b.view(k))
        opt.step([self.g_w, self.g_b])
        return self.loss_parts.sum(0)


class NativeRows:
    """A shard's pass as one call of the compiled one-pass kernel."""

    def __init__(self, rows: Rows, out: Buffers, params: list[torch.Tensor], opt: StackedAdam):
        k = params[0].shape[0]
        threads = out.g_parts.shape[0]
        # Adam's moments (NumPy views of the optimizer's buffers), learning rates, decays
        m_w, m_b = (m.view(k, -1).numpy() for m in opt.exp_avg)
        v_w, v_b = (v.view(k, -1).numpy() for v in opt.exp_avg_sq)
        lr, wd = opt.lr.to(torch.float32).numpy(), opt.weight_decay.to(torch.float32).numpy()
        self._state = (m_w, v_w, m_b.reshape(k), v_b.reshape(k), lr, wd)
        self._hyper = np.zeros(6)
        self._loss = torch.zeros(k, dtype=torch.float64)  # the last pass's loss
        self._loss_np = self._loss.numpy()
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
        xv = rows.x_val.to(torch.float32).contiguous().numpy()
        self.val_shards = [(xv[a:e], a, e) for a, e in itertools.pairwise(rows.val_bounds)]
        # per shard: weighted loss and bias gradient of each head
        self.loss_parts = np.zeros((threads, k))
        self.grad_b_parts = np.zeros((threads, k))

    def train(self, t: int, reverse: bool) -> None:
        """Shard ``t``'s logits, gradient, loss and bias gradient."""
        xs, sign, cw, sw, z = self.shards[t]
        loss, grad_b = self.loss_parts[t], self.grad_b_parts[t]
        kernels.linear_epoch(xs, self.w, self.b, sign, cw, sw, z, self.g[t], loss, grad_b, reverse)

    def val(self, t: int, w: torch.Tensor, b: torch.Tensor, z_val: torch.Tensor) -> None:
        """Shard ``t``'s rows of ``z_val [Nv, M] = x_val w.T + b`` (``w [M, D]``, ``b [M]``)."""
        xv, a, e = self.val_shards[t]
        kernels.linear_logits(xv, w.numpy(), b.numpy(), z_val[a:e].numpy())

    def finish(self, opt: StackedAdam) -> torch.Tensor:
        """Sum the shards' gradients (in shard order) and take the Adam step, in one
        compiled call; returns the weighted training loss ``[K]`` of the pass (a buffer
        overwritten by the next call)."""
        opt.step_count += 1
        t = opt.step_count
        hyper = self._hyper
        b1, b2 = opt.beta1, opt.beta2
        hyper[:] = (b2, 1.0 - b1, 1.0 - b2, opt.eps, 1.0 / (1.0 - b1**t), (1.0 - b2**t) ** 0.5)
        kernels.adam_step(
            self.g, self.grad_b_parts, self.loss_parts, self._loss_np, self.w, self.b,
            *self._state, hyper,
        )  # fmt: skip
        return self._loss


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

    name = "fused"
    """The engine's name in a run's info."""

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
        self.out = Buffers(torch.empty(n, k), torch.empty(self.threads, k, d))
        self.rows = rows
        self._z_val = torch.empty(0)
        self.shard_pass: NativeRows | TorchChunks = (
            NativeRows(rows, self.out, params, optimizer)
            if self.kernel == "native"
            else TorchChunks(rows, self.out, params, chunk_rows or max(16, CHUNK_BYTES // (4 * d)))
        )
        # the calling thread works shard 0; the pool the others
        self._pool = ThreadPoolExecutor(self.threads - 1) if self.threads > 1 else None
        self._epoch = 0

    def scorer(self, y_val: torch.Tensor, w_val: torch.Tensor) -> Scorer:
        """Validation loss and AUC of ``[m, K, Nv]`` logits, compiled, over the worker threads."""
        return make_scorer(y_val, w_val, self.k, self.parallel, self.threads)

    def validation(self, params: list[torch.Tensor]) -> WindowedValidation:
        """Validation a window of epochs at a time, in one pass over the validation rows."""
        return WindowedValidation(self, params, window_epochs(self.k, params[0].shape[-1]))

    def close(self) -> None:
        """Stop the worker threads."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def parallel(self, fn: Callable[[int], None]) -> None:
        """Run ``fn(0), ..., fn(threads - 1)``: ``fn(0)`` here, the others on the pool."""
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
        """The shard's gradient at the current weights; rows are walked forwards on even
        passes and backwards on odd ones, so the rows read last in one pass (still in
        the L3 cache) are read first in the next."""
        self.shard_pass.train(t, reverse=self._epoch % 2 == 1)

    def step(self) -> torch.Tensor:
        """One epoch: gradient and training loss in one pass over the training rows,
        then the Adam step. Returns the loss ``[K]`` at the weights before the step."""
        self.parallel(self._pass_shard)
        self._epoch += 1
        return self.shard_pass.finish(self.opt)

    def val_logits(self, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Validation logits ``[M, Nv]`` of ``M`` weight vectors ``w [M, D]``, ``b [M]``.

        One pass over the validation rows for all ``M`` (for example a window of
        epochs' snapshots of every head): each row is read once and scored against
        weights that stay in cache, instead of once per epoch.
        """
        m, nv = w.shape[0], self.rows.x_val.shape[0]
        if self._z_val.numel() < nv * m:
            self._z_val = torch.empty(nv * m)
        z_val = self._z_val[: nv * m].view(nv, m)
        w, b = w.contiguous(), b.contiguous()
        self.parallel(lambda t: self.shard_pass.val(t, w, b, z_val))
        return z_val.T


class WindowedValidation(SnapshotWindow):
    """A :class:`~cactus_features.heads.fastpath.snapshots.SnapshotWindow` whose
    snapshots are scored by the fused engine in one pass over the validation rows.

    Args:
        engine: The engine that computes the validation logits.
        params: The live parameters (their shapes).
        size: Epochs per window.
    """

    def __init__(self, engine: FusedLinearEngine, params: list[torch.Tensor], size: int) -> None:
        super().__init__(params, size)
        self.engine = engine

    def logits(self) -> torch.Tensor:
        """Validation logits ``[m, K, Nv]`` of the window's ``m`` snapshots."""
        return self.engine.val_logits(*self.flat()).view(len(self), self.k, -1)
