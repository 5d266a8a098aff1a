"""The native kernels against a float64 NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest

from cactus_features.heads.fastpath import kernels

pytestmark = pytest.mark.skipif(not kernels.available(), reason="numba not installed")


def reference(x, w, b, sign, sw):
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    z = sign * (x64 @ w64 + b)
    q = 1.0 / (1.0 + np.exp(-z))
    cw = sign * sw
    loss = float(np.sum(sw * np.logaddexp(0.0, z)))
    return z, x64.T @ (cw * q), float(np.sum(cw * q)), loss


def epoch(x, w, b, sign, sw, reverse=False):
    """Run the kernel on fresh (NaN-filled) outputs; returns ``(z, g, grad_b, loss)``."""
    n, heads = x.shape[0], w.shape[0]
    z = np.full((n, heads), np.nan, np.float32)
    g = np.full(w.shape, np.nan, np.float32)
    loss, grad_b = np.full(heads, np.nan), np.full(heads, np.nan)
    cw = sign * sw
    kernels.linear_epoch(x, w, b, sign, cw, sw, z, g, loss, grad_b, reverse)
    return z, g, grad_b, loss


@pytest.mark.parametrize("n", [0, 1, 3, kernels.BLOCK_ROWS, 2 * kernels.BLOCK_ROWS + 5])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("heads", [1, 3])
def test_linear_epoch_matches_float64(n: int, reverse: bool, heads: int) -> None:
    rng = np.random.default_rng(n)
    d = 37
    x = rng.standard_normal((n, d)).astype(np.float32)
    w = rng.standard_normal((heads, d)).astype(np.float32)
    b = rng.standard_normal(heads).astype(np.float32)
    sign = np.where(rng.random(n) < 0.3, 1.0, -1.0).astype(np.float32)
    sw = rng.random(n).astype(np.float32)
    sw /= max(sw.sum(), 1.0)
    z, g, grad_b, loss = epoch(x, w, b, sign, sw, reverse)
    for k in range(heads):
        z_ref, g_ref, gb_ref, loss_ref = reference(x, w[k], b[k], sign, sw)
        np.testing.assert_allclose(z[:, k], z_ref, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(g[k], g_ref, rtol=1e-4, atol=1e-6)
        assert grad_b[k] == pytest.approx(gb_ref, rel=1e-5, abs=1e-7)
        assert loss[k] == pytest.approx(loss_ref, rel=1e-5, abs=1e-7)


def test_a_head_of_a_stack_is_bitwise_a_lone_head() -> None:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((101, 300)).astype(np.float32)
    w = rng.standard_normal((4, 300)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    sign = np.where(rng.random(101) < 0.5, 1.0, -1.0).astype(np.float32)
    sw = np.full(101, 1 / 101, np.float32)
    z, g, grad_b, loss = epoch(x, w, b, sign, sw, True)
    z1, g1, grad_b1, loss1 = epoch(x, w[2:3].copy(), b[2:3].copy(), sign, sw, True)
    np.testing.assert_array_equal(z[:, 2], z1[:, 0])
    np.testing.assert_array_equal(g[2], g1[0])
    assert (grad_b[2], loss[2]) == (grad_b1[0], loss1[0])


def test_saturated_logits_stay_finite() -> None:
    """Logits of +-200 overflow a naive exp in float32; loss and gradient must not."""
    x = np.array([[200.0], [-200.0], [200.0], [-200.0]], np.float32)
    sign = np.array([1.0, 1.0, -1.0, -1.0], np.float32)
    sw = np.full(4, 0.25, np.float32)
    w, b = np.ones((1, 1), np.float32), np.zeros(1, np.float32)
    _, g, grad_b, loss = epoch(x, w, b, sign, sw)
    _, g_ref, gb_ref, loss_ref = reference(x, w[0], 0.0, sign, sw)
    assert np.isfinite([loss[0], grad_b[0], g[0, 0]]).all()
    assert loss[0] == pytest.approx(loss_ref, rel=1e-6)
    assert grad_b[0] == pytest.approx(gb_ref, abs=1e-7)
    assert g[0, 0] == pytest.approx(g_ref[0], rel=1e-6)


def test_linear_logits() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 9)).astype(np.float32)
    w = rng.standard_normal((2, 9)).astype(np.float32)
    b = np.array([-1.5, 2.0], np.float32)
    out = np.empty((50, 2), np.float32)
    kernels.linear_logits(x, w, b, out)
    np.testing.assert_allclose(out, x.astype(np.float64) @ w.T + b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("ties", [False, True])
def test_val_metrics_match_torch(ties: bool) -> None:
    import torch

    from cactus_features.heads.fastpath.auc import roc_auc
    from cactus_features.heads.nn.stacked import weighted_bce

    rng = np.random.default_rng(1)
    z = rng.standard_normal(301).astype(np.float32) * 3
    if ties:
        z = np.round(z)  # many tied scores, across both classes
    pos = rng.random(301) < 0.7
    sw = rng.random(301)
    sw /= sw.sum()
    loss, auc = kernels.val_metrics(z, pos, sw)
    zt = torch.from_numpy(z).reshape(1, -1)
    ref_loss, _ = weighted_bce(zt, torch.from_numpy(pos).float(), torch.from_numpy(sw).float())
    assert loss == pytest.approx(float(ref_loss[0]), rel=1e-6)
    assert auc == pytest.approx(float(roc_auc(zt, torch.from_numpy(pos))[0]), abs=1e-12)


def test_val_metrics_with_one_class_gives_nan_auc() -> None:
    z = np.array([0.5, -1.0], np.float32)
    loss, auc = kernels.val_metrics(z, np.array([True, True]), np.array([0.5, 0.5]))
    assert np.isnan(auc) and np.isfinite(loss)


@pytest.mark.parametrize("wd", [0.0, 1e-2])
def test_adam_step_matches_stacked_adam(wd: float) -> None:
    import torch

    from cactus_features.heads.nn.adam import StackedAdam

    rng = np.random.default_rng(2)
    heads, d, parts = 3, 37, 2
    w0 = rng.standard_normal((heads, 1, d)).astype(np.float32)
    b0 = rng.standard_normal((heads, 1)).astype(np.float32)
    lrs, wds = [1e-3, 5e-2, 3e-1], [wd, 0.0, 2 * wd]
    ref = [torch.from_numpy(w0.copy()), torch.from_numpy(b0.copy())]
    ref_opt = StackedAdam(ref, lrs, wds)
    w, b = w0[:, 0].copy(), b0[:, 0].copy()
    m_w, v_w, m_b, v_b = (np.zeros_like(a) for a in (w, w, b, b))
    lr, wdv = np.array(lrs, np.float32), np.array(wds, np.float32)
    for t in range(1, 8):
        g_parts = rng.standard_normal((parts, heads, d)).astype(np.float32)
        gb_parts = rng.standard_normal((parts, heads))
        hyper = np.array([0.999, 1 - 0.9, 1 - 0.999, 1e-8, 1 / (1 - 0.9**t), (1 - 0.999**t) ** 0.5])
        loss_parts, loss = rng.random((parts, heads)), np.full(heads, np.nan)
        kernels.adam_step(
            g_parts, gb_parts, loss_parts, loss, w, b, m_w, v_w, m_b, v_b, lr, wdv, hyper
        )
        np.testing.assert_allclose(loss, loss_parts.sum(0), rtol=1e-15)
        g_ref = torch.from_numpy(g_parts[0] + g_parts[1]).unsqueeze(1)
        gb_ref = torch.from_numpy(gb_parts.sum(0)).float().unsqueeze(1)
        ref_opt.step([g_ref, gb_ref])
    np.testing.assert_allclose(w, ref[0][:, 0].numpy(), rtol=0, atol=1e-6)  # a few ulps
    np.testing.assert_allclose(b, ref[1][:, 0].numpy(), rtol=0, atol=1e-6)  # a few ulps
    np.testing.assert_allclose(m_w, ref_opt.exp_avg[0][:, 0].numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(v_w, ref_opt.exp_avg_sq[0][:, 0].numpy(), rtol=1e-5, atol=1e-9)
    assert not np.allclose(w, w0[:, 0])  # it did move


@pytest.mark.parametrize("start", ["identity", "sorted", "reversed"])
def test_val_metrics_seq_equals_val_metrics_row_by_row(start: str) -> None:
    rng = np.random.default_rng(3)
    n, m = 257, 12
    drift = rng.standard_normal((m, n)).astype(np.float32).cumsum(0) * 0.05
    z = np.ascontiguousarray(rng.standard_normal(n).astype(np.float32) + drift)
    z[5] = np.round(z[5])  # a row with many ties
    z[8] = -z[7]  # a jump: the insertion sort gives up and quicksorts
    pos = rng.random(n) < 0.6
    sw = rng.random(n)
    sw /= sw.sum()
    order = {
        "identity": np.arange(n),
        "sorted": np.argsort(z[0]),
        "reversed": np.argsort(-z[0]),
    }[start].astype(np.int64)
    loss, auc = np.full(m, np.nan), np.full(m, np.nan)
    kernels.val_metrics_seq(z, pos, sw, order, loss, auc)
    for r in range(m):
        assert (loss[r], auc[r]) == kernels.val_metrics(z[r], pos, sw)
    assert np.all(np.diff(z[-1][order]) >= 0)  # the last row's order is kept for the next call
    assert sorted(order) == list(range(n))
