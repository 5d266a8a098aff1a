"""The K-class softmax head's CPU fast path: the one-read chunked pass and the
softmax covariance preconditioner."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from cactus_features.heads.fastpath.softmax_pass import ChunkedSoftmax
from cactus_features.heads.prepare.data import SplitTensors
from cactus_features.heads.solvers import grid
from cactus_features.heads.solvers.multinomial import (
    TwoPassSoftmax,
    fit_softmax_lbfgs,
    softmax_terms,
)
from cactus_features.heads.solvers.precondition import SoftmaxPreconditioner, softmax_curvature


def correlated_rows(
    n: int, d: int, k: int, *, seed: int = 0, rank: int = 6, separation: float = 0.6
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Centred low-rank-plus-noise rows (strongly correlated features) with class means
    in the low-rank space, unequal class weights: ``(x float32, y, weight)``."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    means = separation * rng.standard_normal((k, rank))
    mix = rng.standard_normal((rank, d)) * 3.0
    x = (rng.standard_normal((n, rank)) + means[y]) @ mix + 0.3 * rng.standard_normal((n, d))
    x = (x - x.mean(0)) / x.std()
    w = rng.uniform(0.5, 2.0, k)[y]
    return (
        torch.as_tensor(x, dtype=torch.float32),
        torch.as_tensor(y, dtype=torch.float32),
        torch.as_tensor(w, dtype=torch.float32),
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("threads", "chunk_rows"), [(1, None), (2, 37), (3, 64)])
def test_chunked_pass_equals_two_pass(dtype, threads, chunk_rows):
    x, y, s = correlated_rows(1000, 48, 5)
    x = x.to(dtype)
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(5, 48, generator=gen, dtype=torch.float64) * 0.3
    b = torch.randn(5, generator=gen, dtype=torch.float64)
    want = TwoPassSoftmax(x, y, s, 5)(w, b)
    rtol = 1e-5 if dtype == torch.float32 else 1e-12
    with ChunkedSoftmax(x, y, s, 5, threads=threads, chunk_rows=chunk_rows) as chunked:
        assert chunked.threads == threads
        for _ in range(2):  # forwards, then backwards through the chunks
            loss, grad_w, grad_b = chunked(w, b)
            assert loss == pytest.approx(want[0], rel=rtol)
            scale = float(want[1].abs().max())
            torch.testing.assert_close(grad_w, want[1], rtol=0, atol=rtol * scale)
            torch.testing.assert_close(grad_b, want[2], rtol=0, atol=rtol * float(s.sum()))


def test_chunked_pass_is_deterministic():
    x, y, s = correlated_rows(700, 32, 4)
    w, b = torch.randn(4, 32, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)
    with ChunkedSoftmax(x, y, s, 4, threads=2, chunk_rows=50) as chunked:
        first = chunked(w, b)
        chunked(w, b)  # the backwards walk in between
        again = chunked(w, b)
    assert first[0] == again[0]
    assert torch.equal(first[1], again[1]) and torch.equal(first[2], again[2])


def test_fits_agree_whichever_pass():
    x, y, s = correlated_rows(600, 24, 4, seed=2)
    fits = {}
    for kind in ("chunked", "two_pass"):
        with contextlib.closing(softmax_terms(x, y, s, 4, tol=1e-5, kind=kind)) as terms:
            assert isinstance(terms, ChunkedSoftmax if kind == "chunked" else TwoPassSoftmax)
            fits[kind] = fit_softmax_lbfgs(x, y, s, 4, C=0.05, tol=1e-5, terms=terms)
    a, b = fits["chunked"], fits["two_pass"]
    assert a.converged and b.converged
    torch.testing.assert_close(a.weight, b.weight, rtol=0, atol=1e-3)
    torch.testing.assert_close(a.bias, b.bias, rtol=0, atol=1e-3)


def test_softmax_terms_rejects_an_unknown_pass():
    x, y, s = correlated_rows(50, 4, 3)
    with pytest.raises(ValueError, match="pass must be one of"):
        softmax_terms(x, y, s, 3, kind="fused")


def test_the_default_pass_on_the_cpu_is_chunked_and_float64_below_float32_tol():
    x, y, s = correlated_rows(200, 8, 3)
    terms = softmax_terms(x, y, s, 3, tol=1e-5)
    assert isinstance(terms, ChunkedSoftmax) and terms.x.dtype == torch.float32
    terms.close()
    terms = softmax_terms(x, y, s, 3, tol=1e-7)
    assert isinstance(terms, ChunkedSoftmax) and terms.x.dtype == torch.float64
    terms.close()


def test_preconditioner_inverts_the_kronecker_hessian():
    """``(A (x) Cov + lam I)`` for the weights and ``A`` for the intercepts (written out
    as dense matrices) are undone by the preconditioner, off ``A``'s null direction."""
    k, d, lam = 3, 5, 0.3
    x, _y, s = correlated_rows(400, d, k, rank=2)
    x = x.double()
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(400, k, generator=gen, dtype=torch.float64)
    a = softmax_curvature(z, s)
    p, sw = torch.softmax(z, dim=1), s.double()
    explicit = sum(sw[i] * (torch.diag(p[i]) - torch.outer(p[i], p[i])) for i in range(400))
    torch.testing.assert_close(a, explicit / sw.sum(), rtol=0, atol=1e-12)
    pre = SoftmaxPreconditioner(x, s, k)
    pre.set(lam, a)
    cov = (x * s.double()[:, None]).T @ x / float(s.double().sum())
    h_w = torch.kron(a, cov) + lam * torch.eye(k * d, dtype=torch.float64)
    v = torch.randn(k, d + 1, generator=gen, dtype=torch.float64)
    v[:, d] -= v[:, d].mean()  # intercepts off the all-ones direction
    hv = torch.empty_like(v)
    hv[:, :d] = (h_w @ v[:, :d].reshape(-1)).view(k, d)
    hv[:, d] = a @ v[:, d]
    torch.testing.assert_close(pre(hv.view(-1)).view(k, d + 1), v, rtol=0, atol=1e-8)


def test_preconditioner_needs_set():
    x, _y, s = correlated_rows(40, 4, 3)
    with pytest.raises(RuntimeError, match="set"):
        SoftmaxPreconditioner(x, s, 3)(torch.zeros(15, dtype=torch.float64))


def _split(seed: int) -> SplitTensors:
    x, y, s = correlated_rows(1500, 40, 5, seed=seed)
    return SplitTensors(x[:1000], y[:1000], s[:1000], x[1000:], y[1000:], s[1000:])


def test_preconditioned_path_same_solution_in_fewer_iterations():
    """On correlated features (float64 products: tol below ``FLOAT32_TOL``, so both paths
    can reach it whatever the weights' size)."""
    tensors = _split(4)
    l2 = (1e-1, 1e-2, 1e-3, 1e-4)
    plain = grid.l2_path(tensors, l2, n_classes=5, precondition=False, tol=1e-6, max_iter=2000)
    pre = grid.l2_path(tensors, l2, n_classes=5, precondition=True, tol=1e-6, max_iter=2000)
    assert all(p.converged for p in plain) and all(p.converged for p in pre)
    xv = tensors.x_val.double()
    for a, b in zip(plain, pre, strict=True):
        pa = torch.softmax(xv @ a.weight.T + a.bias, dim=1)  # type: ignore[operator]
        pb = torch.softmax(xv @ b.weight.T + b.bias, dim=1)  # type: ignore[operator]
        assert float((pa - pb).abs().max()) < 2e-3
        assert b.val_loss == pytest.approx(a.val_loss, abs=1e-3)
    n_plain, n_pre = sum(p.iterations for p in plain), sum(p.iterations for p in pre)
    print(f"path iterations: plain {n_plain}, preconditioned {n_pre}")
    assert n_pre < 0.5 * n_plain


def test_well_conditioned_path_never_builds_the_preconditioner(monkeypatch):
    rng = np.random.default_rng(5)
    x = torch.as_tensor(rng.standard_normal((600, 6)), dtype=torch.float32)
    y = torch.as_tensor(rng.integers(0, 3, 600), dtype=torch.float32)
    s = torch.ones(600)
    tensors = SplitTensors(x[:400], y[:400], s[:400], x[400:], y[400:], s[400:])

    def refuse(*_args, **_kwargs):
        raise AssertionError("built the preconditioner")

    monkeypatch.setattr(grid, "SoftmaxPreconditioner", refuse)
    points = grid.l2_path(tensors, (1.0, 0.1), n_classes=3)
    assert all(p.converged and p.iterations <= grid.PRECONDITION_AFTER for p in points)
