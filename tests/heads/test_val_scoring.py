"""Validation loss and AUC of many epochs x heads: compiled scorer against torch."""

from __future__ import annotations

import pytest
import torch

from cactus_features.heads.fastpath import kernels
from cactus_features.heads.fastpath.val_scoring import NativeScorer, make_scorer, torch_scorer


def logits(m: int, k: int, n: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    base = torch.randn(k, n, generator=gen)
    drift = torch.randn(m, k, n, generator=gen).cumsum(0) * 0.05
    z = base + drift
    if m > 2:
        z[2] = z[2].round()  # ties
    return z.contiguous()


def val_rows(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed + 1)
    y = (torch.rand(n, generator=gen) < 0.7).float()
    return y, torch.tensor([0.75, 0.25])[y.long()]


def sequential(fn) -> None:
    """The engine's parallel(), three workers on one thread."""
    for t in range(3):
        fn(t)


@pytest.mark.skipif(not kernels.available(), reason="numba not installed")
def test_native_scorer_matches_torch_over_several_calls() -> None:
    y, w = val_rows(203)
    native = NativeScorer(y, w, heads=2, parallel=sequential, threads=3)
    ref = torch_scorer(y, w)
    for seed in range(3):  # the kept orders carry over from one call to the next
        z = logits(7, 2, 203, seed)
        loss, auc = native(z)
        ref_loss, ref_auc = ref(z)
        assert loss.shape == auc.shape == (7, 2)
        torch.testing.assert_close(loss, ref_loss, rtol=1e-6, atol=0)
        torch.testing.assert_close(auc, ref_auc, rtol=0, atol=1e-12)


@pytest.mark.skipif(not kernels.available(), reason="numba not installed")
def test_native_scorer_with_fewer_epochs_than_threads() -> None:
    y, w = val_rows(50)
    z = logits(3, 1, 50)[:1]
    loss, auc = NativeScorer(y, w, 1, sequential, 3)(z)
    ref_loss, ref_auc = torch_scorer(y, w)(z)
    torch.testing.assert_close(auc, ref_auc, rtol=0, atol=1e-12)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-6, atol=0)


def test_one_class_gives_nan_auc() -> None:
    y = torch.ones(10)
    w = torch.ones(10)
    z = torch.randn(2, 1, 10)
    for scorer in (make_scorer(y, w, 1), torch_scorer(y, w)):
        loss, auc = scorer(z)
        assert torch.isnan(auc).all() and torch.isfinite(loss).all()


def test_make_scorer_picks_the_compiled_scorer_on_the_cpu(monkeypatch) -> None:
    y, w = val_rows(20)
    expected = NativeScorer if kernels.available() else type(torch_scorer(y, w))
    assert isinstance(make_scorer(y, w, 2), expected)
    monkeypatch.setattr(kernels, "available", lambda: False)
    assert not isinstance(make_scorer(y, w, 2), NativeScorer)
    assert torch.isfinite(make_scorer(y, w, 1)(logits(3, 1, 20))[0]).all()


@pytest.mark.skipif(not kernels.available(), reason="numba not installed")
@pytest.mark.parametrize(("heads", "threads"), [(1, 3), (2, 3), (3, 3), (5, 2)])
def test_native_scorer_splits_heads_or_epochs(heads: int, threads: int) -> None:
    y, w = val_rows(64)
    native = NativeScorer(y, w, heads, parallel=lambda fn: [fn(t) for t in range(threads)],
                          threads=threads)  # fmt: skip
    ref = torch_scorer(y, w)
    for m in (5, 1):  # a full window, then a last short one
        z = logits(m, heads, 64, seed=m)
        loss, auc = native(z)
        ref_loss, ref_auc = ref(z)
        torch.testing.assert_close(auc, ref_auc, rtol=0, atol=1e-12)
        torch.testing.assert_close(loss, ref_loss, rtol=1e-6, atol=0)
