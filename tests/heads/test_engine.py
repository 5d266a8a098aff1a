"""The hand-written batched engines against a plain autograd + torch.optim.Adam loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cactus_features.heads.nn.models import build_head, init_stacked, layer_sizes, stacked_state
from cactus_features.heads.prepare.data import SplitTensors
from cactus_features.heads.solvers.engine import fit_stacked, train_generators

D = 12


def make_data(n: int = 300, n_val: int = 100, seed: int = 0) -> SplitTensors:
    gen = torch.Generator().manual_seed(seed)
    direction = torch.randn(D, generator=gen)
    x = torch.randn(n, D, generator=gen)
    y = ((x @ direction + torch.randn(n, generator=gen)) > 0.8).float()
    xv = torch.randn(n_val, D, generator=gen)
    yv = ((xv @ direction) > 0.8).float()
    cw = torch.tensor([0.3, 0.7])
    return SplitTensors(x, y, cw[y.long()], xv, yv, cw[yv.long()])


def reference(
    data: SplitTensors,
    hidden: tuple[int, ...],
    *,
    lr: float,
    wd: float,
    seed: int,
    epochs: int,
    batch_size: int | None = None,
) -> dict[str, np.ndarray]:
    """Autograd + torch.optim.Adam from the same initial weights and batch order."""
    sizes = layer_sizes(D, hidden)
    head = build_head(D, hidden, dropout=0.0)
    start = stacked_state(init_stacked(sizes, [seed]), 0, len(hidden))
    head.load_state_dict({k: torch.from_numpy(v) for k, v in start.items()})
    opt = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=wd)
    gen = train_generators([seed], torch.device("cpu"))[0]
    n = len(data.y_train)
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen) if batch_size else torch.arange(n)
        for a in range(0, n, batch_size or n):
            idx = order[a : a + (batch_size or n)]
            w = data.w_train[idx]
            opt.zero_grad()
            logits = head(data.x_train[idx])[:, 0]
            loss = F.binary_cross_entropy_with_logits(
                logits, data.y_train[idx], weight=w / w.sum(), reduction="sum"
            )
            loss.backward()
            opt.step()
    return {k: v.detach().numpy() for k, v in head.state_dict().items()}


def assert_close(params: list[torch.Tensor], hidden: tuple[int, ...], ref: dict, k: int = 0):
    ours = stacked_state(params, k, len(hidden))
    assert ours.keys() == ref.keys()
    for name in ref:
        np.testing.assert_allclose(ours[name], ref[name], rtol=0, atol=2e-5, err_msg=name)


@pytest.mark.parametrize(
    ("engine", "kernel"), [("fused", "native"), ("fused", "torch"), ("generic", "auto")]
)
@pytest.mark.parametrize("threads", [1, 2])
def test_linear_engines_match_autograd_adam(engine: str, kernel: str, threads: int) -> None:
    data = make_data(n=301)  # odd: shards and blocks of rows end in partial ones
    fit = fit_stacked(
        data,
        layer_sizes(D, ()),
        [1e-2],
        [1e-3],
        [4],
        epochs=40,
        select="last",
        engine=engine,
        kernel=kernel,
        threads=threads,
    )
    assert fit.engine == engine
    assert fit.kernel == ("" if engine == "generic" else kernel)
    assert_close(fit.last, (), reference(data, (), lr=1e-2, wd=1e-3, seed=4, epochs=40))


def test_one_head_runs_the_native_kernel_by_default() -> None:
    fit = fit_stacked(make_data(), layer_sizes(D, ()), [1e-2], [0.0], [0], epochs=2)
    assert (fit.engine, fit.kernel) == ("fused", "native")


@pytest.mark.parametrize("threads", [1, 2])
def test_native_and_torch_kernels_give_the_same_curves(threads: int) -> None:
    """Loss, validation AUC and the selected epoch agree between the two kernels
    (wider rows than the block of the native kernel's gradient update)."""
    gen = torch.Generator().manual_seed(3)
    n, nv, d = 517, 101, 70
    direction = torch.randn(d, generator=gen)
    x, xv = torch.randn(n, d, generator=gen), torch.randn(nv, d, generator=gen)
    y = ((x @ direction + 2 * torch.randn(n, generator=gen)) > 0.5).float()
    yv = ((xv @ direction + 2 * torch.randn(nv, generator=gen)) > 0.5).float()
    cw = torch.tensor([0.6, 0.4])
    data = SplitTensors(x, y, cw[y.long()], xv, yv, cw[yv.long()])
    fits = {
        k: fit_stacked(
            data, layer_sizes(d, ()), [3e-3], [1e-4], [2], epochs=60, kernel=k, threads=threads
        )
        for k in ("native", "torch")
    }
    a, b = fits["native"], fits["torch"]
    for name in ("train_loss", "val_loss", "val_auc"):
        np.testing.assert_allclose(a.history[name], b.history[name], rtol=1e-5, atol=1e-6)
    assert a.best_epoch.tolist() == b.best_epoch.tolist()
    for p, q in zip(a.last, b.last, strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-5)


def test_native_stack_trains_each_head_bitwise_like_a_lone_head() -> None:
    data = make_data(n=999)
    lrs, wds, seeds = [1e-2, 3e-3, 1e-2], [0.0, 1e-3, 0.0], [0, 1, 2]
    kw = {"epochs": 20, "threads": 2, "kernel": "native"}
    stack = fit_stacked(data, layer_sizes(D, ()), lrs, wds, seeds, **kw)
    lone = fit_stacked(data, layer_sizes(D, ()), lrs[1:2], wds[1:2], seeds[1:2], **kw)
    for a, b in zip(stack.last, lone.last, strict=True):
        assert torch.equal(a[1], b[0])
    np.testing.assert_array_equal(
        stack.history["train_loss"][:, 1], lone.history["train_loss"][:, 0]
    )
    assert stack.best_epoch[1] == lone.best_epoch[0]


def test_native_kernel_is_deterministic() -> None:
    data = make_data(n=999)
    runs = [
        fit_stacked(data, layer_sizes(D, ()), [1e-2], [0.0], [1], epochs=25, threads=2)
        for _ in range(2)
    ]
    assert torch.equal(runs[0].last[0], runs[1].last[0])
    np.testing.assert_array_equal(runs[0].history["train_loss"], runs[1].history["train_loss"])


def test_auto_kernel_switches_to_blas_for_large_stacks() -> None:
    from cactus_features.heads.fastpath.fused_linear import NATIVE_MAX_HEADS

    data = make_data(n=50, n_val=20)
    for k, want in [(NATIVE_MAX_HEADS, "native"), (NATIVE_MAX_HEADS + 1, "torch")]:
        fit = fit_stacked(data, layer_sizes(D, ()), [1e-2] * k, [0.0] * k, range(k), epochs=1)
        assert fit.kernel == want


def test_unknown_kernel_is_refused() -> None:
    with pytest.raises(ValueError, match="kernel must be one of"):
        fit_stacked(make_data(), layer_sizes(D, ()), [1e-2], [0.0], [0], epochs=1, kernel="asm")


@pytest.mark.parametrize("kernel", ["native", "torch"])
def test_fused_engine_with_several_threads_and_heads(kernel: str) -> None:
    """Each head of a stack, with rows sharded over threads, trains like a lone head."""
    data = make_data(n=1000)
    lrs, wds, seeds = [1e-2, 3e-3, 1e-2], [0.0, 0.0, 1e-2], [0, 1, 2]
    fit = fit_stacked(
        data, layer_sizes(D, ()), lrs, wds, seeds, epochs=30, select="last", threads=2,
        kernel=kernel,
    )  # fmt: skip
    assert (fit.engine, fit.kernel) == ("fused", kernel)
    for k in range(3):
        ref = reference(data, (), lr=lrs[k], wd=wds[k], seed=seeds[k], epochs=30)
        assert_close(fit.last, (), ref, k)


def test_mlp_matches_autograd_adam() -> None:
    data = make_data()
    hidden = (16, 8)
    fit = fit_stacked(data, layer_sizes(D, hidden), [5e-3], [1e-4], [1], epochs=30, select="last")
    assert fit.engine == "generic"
    assert_close(fit.last, hidden, reference(data, hidden, lr=5e-3, wd=1e-4, seed=1, epochs=30))


@pytest.mark.parametrize("hidden", [(), (8,)])
def test_mini_batches_match_autograd_adam(hidden: tuple[int, ...]) -> None:
    data = make_data(n=100)
    fit = fit_stacked(
        data, layer_sizes(D, hidden), [1e-2], [0.0], [7], epochs=3, batch_size=32, select="last"
    )
    ref = reference(data, hidden, lr=1e-2, wd=0.0, seed=7, epochs=3, batch_size=32)
    assert_close(fit.last, hidden, ref)


def test_dropout_head_of_a_stack_equals_a_lone_head() -> None:
    data = make_data()
    sizes = layer_sizes(D, (16,))
    stack = fit_stacked(data, sizes, [1e-2, 1e-3], [0.0, 0.0], [5, 6], epochs=20, dropout=0.3)
    lone = fit_stacked(data, sizes, [1e-3], [0.0], [6], epochs=20, dropout=0.3)
    for a, b in zip(stack.best, lone.best, strict=True):
        torch.testing.assert_close(a[1], b[0], rtol=0, atol=1e-5)
    assert stack.best_epoch[1] == lone.best_epoch[0]
    assert not torch.equal(stack.best[0][0], stack.best[0][1])


def test_selection_tracks_the_best_validation_epoch() -> None:
    data = make_data()
    fit = fit_stacked(data, layer_sizes(D, (16,)), [3e-2], [0.0], [0], epochs=60)
    auc, loss = fit.history["val_auc"][:, 0], fit.history["val_loss"][:, 0]
    best = max(range(60), key=lambda e: (auc[e], -loss[e]))
    assert fit.best_epoch[0] == best + 1
    assert fit.best_val_auc[0] == auc[best]
    by_loss = fit_stacked(
        data, layer_sizes(D, (16,)), [3e-2], [0.0], [0], epochs=60, select="val_loss"
    )
    assert by_loss.best_epoch[0] == int(np.argmin(by_loss.history["val_loss"][:, 0])) + 1


def test_without_numba_the_torch_kernel_trains(monkeypatch) -> None:
    from cactus_features.heads.fastpath import kernels

    monkeypatch.setattr(kernels, "available", lambda: False)
    data = make_data()
    fit = fit_stacked(data, layer_sizes(D, ()), [1e-2], [1e-3], [4], epochs=40, select="last")
    assert (fit.engine, fit.kernel) == ("fused", "torch")
    assert_close(fit.last, (), reference(data, (), lr=1e-2, wd=1e-3, seed=4, epochs=40))
    with pytest.raises(ValueError, match="needs numba"):
        fit_stacked(data, layer_sizes(D, ()), [1e-2], [0.0], [0], epochs=1, kernel="native")


@pytest.mark.parametrize("kernel", ["native", "torch"])
def test_windowed_validation_scores_each_epochs_weights(kernel: str) -> None:
    """The fused engine scores validation a window of epochs at a time (64 here, so
    150 epochs make three windows, the last partial): the curves, the selected epoch
    and the selected weights are those of each epoch's own weights."""
    from cactus_features.heads.fastpath.auc import roc_auc
    from cactus_features.heads.fastpath.snapshots import window_epochs
    from cactus_features.heads.nn.stacked import weighted_bce

    if kernel == "native":
        pytest.importorskip("numba")
    assert window_epochs(2, D) == 64
    data = make_data()
    sizes, lrs, seeds = layer_sizes(D, ()), [3e-2, 1e-2], [0, 1]
    reports: list[int] = []
    fit = fit_stacked(
        data, sizes, lrs, [0.0, 0.0], seeds, epochs=150, kernel=kernel,
        progress=lambda epoch, _: reports.append(epoch),
    )  # fmt: skip
    assert reports == [15 * i for i in range(1, 11)]
    sw = data.w_val / data.w_val.sum()
    for epoch in (1, 63, 64, 65, 128, 129, 150):
        again = fit_stacked(
            data, sizes, lrs, [0.0, 0.0], seeds, epochs=epoch, kernel=kernel, select="last"
        )
        w, b = again.last
        z = (data.x_val @ w[:, 0].T + b[:, 0]).T
        auc = roc_auc(z, data.y_val > 0.5).numpy()
        loss = weighted_bce(z, data.y_val, sw)[0].numpy()
        np.testing.assert_allclose(fit.history["val_auc"][epoch - 1], auc, rtol=0, atol=1e-12)
        np.testing.assert_allclose(fit.history["val_loss"][epoch - 1], loss, rtol=1e-5)
    for k in range(2):
        again = fit_stacked(
            data, sizes, lrs, [0.0, 0.0], seeds, epochs=int(fit.best_epoch[k]), kernel=kernel,
            select="last",
        )  # fmt: skip
        assert torch.equal(fit.best[0][k], again.last[0][k])
        assert torch.equal(fit.best[1][k], again.last[1][k])
