"""Native kernels of the fused linear engine (compiled by Numba, cached on disk).

One training epoch of a linear head needs, for every training row ``i`` (with
``s_i = +1`` for label 0 and ``-1`` for label 1, ``c_i = s_i sw_i``; a stack of
``K`` heads does this per head, on the same rows while they are in cache)::

    z~_i = s_i (x_i . w + b)        q_i = sigmoid(z~_i)
    g   += c_i q_i x_i              g_b += c_i q_i      loss += sw_i softplus(z~_i)

PyTorch can only do this as two matrix-vector products per chunk of rows (each a
separate call with its own overhead, the second re-reading the chunk). Here one
call walks a shard of rows in blocks of :data:`BLOCK_ROWS` (256 KiB of
2,048-wide rows, so the block stays in the core's L2 cache): first the dot
products of the block's rows as they stream in from memory, then the gradient
update from L2, four rows per sweep over ``g`` so ``g`` is loaded and stored a
quarter as often. Features therefore stream from main memory once per epoch.

Floating point: the compiler may reorder sums (``reassoc``, to vectorise them)
but keeps IEEE infinities and NaNs. Results are deterministic for a given
machine: every sum has a fixed order.

Compilation: the types the engine passes are declared in :data:`SIGNATURES`, and
importing this module compiles the kernels for them, or loads them from Numba's
disk cache (next to this file, or Numba's per-user cache when that is not
writable), in :func:`warm_up`. Compiling takes about 10 s on 2 cores and is paid
once per install (``cactus-features warmup`` pays it up front); loading takes a
few tens of milliseconds. Either way it happens at import, before any training
loop starts its clock. Other types (tests) still compile on first use.

Without Numba, or when it fails to import or compile, :func:`available` is false
and the engine trains through PyTorch; :func:`report_unavailable` says so once.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import numpy as np

from cactus_features.notices import warn

try:
    import numba

    _UNAVAILABLE = ""
except Exception as exc:  # any failure to import numba means the torch path
    numba = None
    _UNAVAILABLE = f"numba cannot be imported ({type(exc).__name__}: {exc})"

BLOCK_ROWS = 32
"""Rows per block: dot products first, then the gradient update from the L2 cache."""

_FLAGS = {"reassoc", "contract", "nsz"}


def available() -> bool:
    """Whether the native kernels can be used (Numba imported and the kernels compiled)."""
    return not _UNAVAILABLE


def unavailable_reason() -> str:
    """Why the native kernels cannot be used (``""`` when they can)."""
    return _UNAVAILABLE


@functools.cache
def report_unavailable() -> None:
    """Warn, once per process, that linear heads train through the slower torch path."""
    warn(
        f"native kernels unavailable: {_UNAVAILABLE or 'disabled'}; linear heads train through the "
        "torch path (same results, slower on CPU); pip install 'numba>=0.59' for the fast path"
    )


def _jit(fn):  # type: ignore[no-untyped-def]
    """Compile ``fn`` with Numba (no GIL), caching the machine code when a cache dir exists."""
    if numba is None:  # pragma: no cover
        return fn
    opts = {"nogil": True, "fastmath": _FLAGS, "error_model": "numpy", "boundscheck": False}
    try:
        return numba.njit(cache=True, **opts)(fn)
    except RuntimeError:  # pragma: no cover - no writable cache location at all
        return numba.njit(cache=False, **opts)(fn)


def _inline(fn):  # type: ignore[no-untyped-def]
    if numba is None:  # pragma: no cover
        return fn
    return numba.njit(inline="always", fastmath=_FLAGS, error_model="numpy")(fn)


@_inline
def _dot(x, i, w):  # type: ignore[no-untyped-def]
    acc = np.float32(0.0)
    for j in range(x.shape[1]):
        acc += x[i, j] * w[j]
    return acc


@_inline
def _sigmoid_softplus(z):  # type: ignore[no-untyped-def]
    """``(sigmoid(z), softplus(z))`` in float32 from one ``exp`` (finite for any finite ``z``)."""
    e = np.exp(-abs(z))
    r = np.float32(1.0) / (np.float32(1.0) + e)
    return (r if z >= 0 else e * r), max(z, np.float32(0.0)) + np.log1p(e)


@_inline
def _softplus(z):  # type: ignore[no-untyped-def]
    return max(np.float64(z), 0.0) + np.log1p(np.exp(-abs(np.float64(z))))


@_inline
def _accumulate(x, a, e, q, g):  # type: ignore[no-untyped-def]
    """``g += sum_i q[i - a] x[i]`` over rows ``a <= i < e``, four rows per sweep of ``g``."""
    d = x.shape[1]
    i = a
    while i + 4 <= e:
        q0, q1, q2, q3 = q[i - a], q[i - a + 1], q[i - a + 2], q[i - a + 3]
        for j in range(d):
            g[j] += (q0 * x[i, j] + q1 * x[i + 1, j]) + (q2 * x[i + 2, j] + q3 * x[i + 3, j])
        i += 4
    while i < e:
        qi = q[i - a]
        for j in range(d):
            g[j] += qi * x[i, j]
        i += 1


@_jit
def linear_epoch(x, w, b, sign, cw, sw, z, g, loss, grad_b, reverse):  # type: ignore[no-untyped-def]
    """One full-batch epoch of ``K`` linear heads over a shard of rows.

    Each head's sums run in exactly the order they would for that head alone, so a
    head of a stack trains bit for bit like a lone head.

    Args:
        x: ``[n, d]`` float32 C-contiguous rows.
        w: ``[K, d]`` float32 weights.
        b: ``[K]`` float32 biases.
        sign: ``[n]`` float32, ``+1`` for label 0 and ``-1`` for label 1.
        cw: ``[n]`` float32 signed sample weights ``sign * sw``.
        sw: ``[n]`` float32 sample weights (summing to 1 over all shards).
        z: ``[n, K]`` float32 output: signed logits ``sign * (x w_k + b_k)``.
        g: ``[K, d]`` float32 output: the shard's weight gradients (overwritten).
        loss: ``[K]`` float64 output: the shard's weighted loss (overwritten).
        grad_b: ``[K]`` float64 output: the shard's bias gradients (overwritten).
        reverse: Walk the blocks last to first (the rows read last in one epoch are
            then read first in the next, while still in the L3 cache).
    """
    n = x.shape[0]
    heads = w.shape[0]
    g[:, :] = 0.0
    loss[:] = 0.0
    grad_b[:] = 0.0
    q = np.empty((heads, BLOCK_ROWS), np.float32)
    nblocks = (n + BLOCK_ROWS - 1) // BLOCK_ROWS
    for t in range(nblocks):
        blk = nblocks - 1 - t if reverse else t
        a = blk * BLOCK_ROWS
        e = min(a + BLOCK_ROWS, n)
        for i in range(a, e):
            for k in range(heads):
                zi = sign[i] * (_dot(x, i, w[k]) + b[k])
                z[i, k] = zi
                sig, sp = _sigmoid_softplus(zi)
                qi = cw[i] * sig
                q[k, i - a] = qi
                grad_b[k] += qi
                loss[k] += np.float64(sw[i]) * np.float64(sp)
        for k in range(heads):
            _accumulate(x, a, e, q[k], g[k])


@_jit
def linear_logits(x, w, b, out):  # type: ignore[no-untyped-def]
    """``out[i, k] = x[i] . w[k] + b[k]`` for ``x [n, d]``, ``w [K, d]``, ``b [K]``."""
    for i in range(x.shape[0]):
        for k in range(w.shape[0]):
            out[i, k] = _dot(x, i, w[k]) + b[k]


@_jit
def adam_step(g_parts, gb_parts, loss_parts, loss, w, b, m_w, v_w, m_b, v_b, lr, wd, hyper):  # type: ignore[no-untyped-def]
    """Sum the shards' gradients and losses (in shard order); take one Adam step, in place.

    The update of ``torch.optim.Adam`` (L2 weight decay added to the gradient, no
    AMSGrad) in float32, as :class:`~cactus_features.heads.nn.adam.StackedAdam` does it:
    ``m = m + (1 - beta1) (g - m)``, ``v = beta2 v + (1 - beta2) g^2``,
    ``p -= lr / bias1 * m / (sqrt(v) / sqrt(bias2) + eps)``.

    Args:
        g_parts: ``[T, K, d]`` float32 weight gradients of the ``T`` shards.
        gb_parts: ``[T, K]`` float64 bias gradients of the shards.
        loss_parts: ``[T, K]`` float64 weighted losses of the shards.
        loss: ``[K]`` float64 output: the total loss (at the weights before the step).
        w: ``[K, d]`` float32 weights (updated).
        b: ``[K]`` float32 biases (updated).
        m_w: ``[K, d]`` float32 first moments of the weights (updated); ``v_w`` second.
        m_b: ``[K]`` float32 first moments of the biases (updated); ``v_b`` second.
        lr: ``[K]`` float32 learning rates.
        wd: ``[K]`` float32 weight decays.
        hyper: float64 ``[beta2, 1 - beta1, 1 - beta2, eps, 1 / bias1, sqrt(bias2)]``
            with the step's bias corrections ``bias = 1 - beta^t`` (the differences are
            taken in float64, as PyTorch does: ``1 - beta2`` in float32 is 1e-5 off).
    """
    beta2, c1, c2 = np.float32(hyper[0]), np.float32(hyper[1]), np.float32(hyper[2])
    eps, inv_bias1, bias2_sqrt = np.float32(hyper[3]), np.float32(hyper[4]), np.float32(hyper[5])
    parts, heads, d = g_parts.shape
    for k in range(heads):
        gb = np.float64(0.0)
        total = np.float64(0.0)
        for t in range(parts):
            gb += gb_parts[t, k]
            total += loss_parts[t, k]
        loss[k] = total
        g = np.float32(gb) + wd[k] * b[k]
        m_b[k] += c1 * (g - m_b[k])
        v_b[k] = beta2 * v_b[k] + c2 * g * g
        b[k] -= inv_bias1 * (m_b[k] / (np.sqrt(v_b[k]) / bias2_sqrt + eps) * lr[k])
        for j in range(d):
            g = g_parts[0, k, j]
            for t in range(1, parts):
                g += g_parts[t, k, j]
            g += wd[k] * w[k, j]
            m = m_w[k, j] + c1 * (g - m_w[k, j])
            v = beta2 * v_w[k, j] + c2 * g * g
            m_w[k, j] = m
            v_w[k, j] = v
            w[k, j] -= inv_bias1 * (m / (np.sqrt(v) / bias2_sqrt + eps) * lr[k])


@_inline
def _sort_from(z, order):  # type: ignore[no-untyped-def]
    """Sort ``order`` (a permutation of ``z``'s indices) by ``z``, starting from its order.

    Insertion sort: linear when ``order`` is nearly sorted already (the order of the
    previous epoch's logits, which move little from one epoch to the next). Once it has
    shifted more than ``8 n`` entries it gives up and quicksorts from scratch.
    """
    n = z.shape[0]
    budget = 8 * n
    for i in range(1, n):
        o = order[i]
        v = z[o]
        j = i - 1
        while j >= 0 and z[order[j]] > v:
            order[j + 1] = order[j]
            j -= 1
            budget -= 1
        order[j + 1] = o
        if budget < 0:
            order[:] = np.argsort(z, kind="quicksort")
            return


@_inline
def _metrics_sorted(z, pos, sw, order):  # type: ignore[no-untyped-def]
    n = z.shape[0]
    loss = 0.0
    n_pos = 0
    for i in range(n):
        zi = np.float64(z[i])
        loss += sw[i] * _softplus(-zi if pos[i] else zi)
        n_pos += 1 if pos[i] else 0
    n_neg = n - n_pos
    if n_pos == 0 or n_neg == 0:
        return loss, np.nan
    rank_sum = 0.0
    a = 0
    while a < n:  # one group of tied scores: rows order[a:e] share mid-rank (a + e + 1) / 2
        e = a + 1
        while e < n and z[order[e]] == z[order[a]]:
            e += 1
        in_group = 0
        for r in range(a, e):
            in_group += 1 if pos[order[r]] else 0
        rank_sum += in_group * (a + e + 1) * 0.5
        a = e
    return loss, (rank_sum - n_pos * (n_pos + 1) * 0.5) / (n_pos * n_neg)


@_jit
def val_metrics(z, pos, sw):  # type: ignore[no-untyped-def]
    """Weighted BCE and ROC AUC of one head's validation logits.

    Args:
        z: ``[n]`` float32 logits.
        pos: ``[n]`` bool, the positive rows.
        sw: ``[n]`` sample weights summing to 1.

    Returns:
        ``(loss, auc)`` (float64); the AUC counts ties as one half (mid-ranks, as
        :func:`~cactus_features.heads.fastpath.auc.roc_auc`) and is NaN with one class only.
    """
    return _metrics_sorted(z, pos, sw, np.argsort(z, kind="quicksort"))


@_jit
def val_metrics_seq(z, pos, sw, order, loss, auc):  # type: ignore[no-untyped-def]
    """:func:`val_metrics` of each row of ``z [M, n]``, in row order (one head's epochs).

    Each row is sorted starting from the previous row's order (``order [n]`` int64, a
    permutation of ``range(n)``, kept by the caller from one call to the next), which
    is nearly sorted when the rows are consecutive epochs of one head.

    Args:
        z: ``[M, n]`` float32 logits.
        pos: ``[n]`` bool, the positive rows.
        sw: ``[n]`` sample weights summing to 1.
        order: ``[n]`` int64 permutation (updated: the last row's sorted order).
        loss: ``[M]`` float64 output.
        auc: ``[M]`` float64 output.
    """
    for r in range(z.shape[0]):
        _sort_from(z[r], order)
        loss[r], auc[r] = _metrics_sorted(z[r], pos, sw, order)


SIGNATURES: dict[str, tuple[str, ...]] = {
    "linear_epoch": (
        "void(f4[:, ::1], f4[:, ::1], f4[::1], f4[::1], f4[::1], f4[::1], f4[:, ::1], "
        "f4[:, ::1], f8[::1], f8[::1], b1)",
    ),
    "linear_logits": ("void(f4[:, ::1], f4[:, ::1], f4[::1], f4[:, ::1])",),
    "adam_step": (
        "void(f4[:, :, ::1], f8[:, ::1], f8[:, ::1], f8[::1], f4[:, ::1], f4[::1], "
        "f4[:, ::1], f4[:, ::1], f4[::1], f4[::1], f4[::1], f4[::1], f8[::1])",
    ),
    "val_metrics_seq": ("void(f4[:, ::1], b1[::1], f8[::1], i8[::1], f8[::1], f8[::1])",),
}
"""The argument types the fused engine and the validation scorer pass to each kernel,
compiled by :func:`warm_up` (a test checks that training compiles nothing more)."""


@dataclass(frozen=True)
class WarmUp:
    """What :func:`warm_up` did.

    Attributes:
        seconds: Wall time spent compiling or loading.
        compiled: Signatures compiled now (written to the disk cache).
        loaded: Signatures loaded from the disk cache.
        cache_dir: Where Numba caches the machine code (``""`` when unknown).
    """

    seconds: float
    compiled: int
    loaded: int
    cache_dir: str


def warm_up() -> WarmUp:
    """Compile every kernel for its :data:`SIGNATURES`, or load it from the disk cache.

    Signatures already in memory cost nothing, so calling it again is free.

    Raises:
        RuntimeError: Without Numba.
    """
    if numba is None:
        raise RuntimeError(_UNAVAILABLE)
    start = time.perf_counter()
    compiled = loaded = 0
    cache_dir = ""
    for name, signatures in SIGNATURES.items():
        dispatcher = globals()[name]
        for signature in signatures:
            hits, misses = _cache_counts(dispatcher)
            dispatcher.compile(signature)
            new_hits, new_misses = _cache_counts(dispatcher)
            loaded += new_hits > hits
            compiled += new_misses > misses
        cache = getattr(dispatcher, "_cache", None)
        cache_dir = cache_dir or str(getattr(cache, "cache_path", ""))
    return WarmUp(time.perf_counter() - start, compiled, loaded, cache_dir)


def _cache_counts(dispatcher) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    stats = getattr(dispatcher, "stats", None)
    if stats is None:  # pragma: no cover - every Numba dispatcher has stats
        return 0, 0
    return sum(stats.cache_hits.values()), sum(stats.cache_misses.values())


IMPORT_WARM_UP: WarmUp | None = None
"""What importing this module compiled or loaded (``None`` without Numba or on failure)."""

if numba is not None:
    try:
        IMPORT_WARM_UP = warm_up()
    except Exception as exc:  # a kernel that does not compile: the torch path
        _UNAVAILABLE = f"the Numba kernels do not compile ({type(exc).__name__}: {exc})"
