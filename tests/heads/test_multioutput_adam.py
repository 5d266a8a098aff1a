"""Heads with more than one output (K-class softmax, multi-label sigmoids) in the Adam engine:
gradients against autograd, the validation scorer against scikit-learn, training to a good
accuracy, determinism and stacking."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from cactus_features import train_head
from cactus_features.data.classes import BINARY, MULTICLASS, MULTILABEL
from cactus_features.errors import ConfigError
from cactus_features.features import FeatureSet
from cactus_features.heads.fastpath.val_scoring import multi_output_scorer
from cactus_features.heads.nn.losses import TaskLoss, normalise_weights
from cactus_features.heads.nn.models import (
    build_head,
    check_takes_classes,
    init_stacked,
    layer_sizes,
    output_dim,
    stacked_state,
)
from cactus_features.heads.nn.stacked import StackedNet
from cactus_features.heads.prepare.data import SplitTensors
from cactus_features.heads.prepare.multilabel import takes_labels
from cactus_features.heads.solvers.engine import fit_stacked

D = 9


def targets(task: str, n: int, c: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random targets and positive, unequal raw weights of ``n`` rows for ``c`` outputs."""
    if task == MULTICLASS:
        y = torch.randint(0, c, (n,), generator=gen).float()
        w = torch.linspace(0.5, 2.0, c)[y.long()]
    else:
        y = (torch.rand(n, c, generator=gen) < 0.4).float()
        w = torch.where(y > 0, 2.0, 0.7) * torch.linspace(0.5, 1.5, c)
    return y, w


def reference_loss(logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor, task: str):
    """The documented loss, from torch's own functions: the class-weighted mean
    cross-entropy, or the mean over labels of each label's weighted-mean BCE."""
    if task == MULTICLASS:
        ce = F.cross_entropy(logits, y.long(), reduction="none")
        return (ce * w).sum() / w.sum()
    bce = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    per_label = [(bce[:, j] * w[:, j]).sum() / w[:, j].sum() for j in range(y.shape[1])]
    return torch.stack(per_label).mean()


@pytest.mark.parametrize("task", [MULTICLASS, MULTILABEL])
@pytest.mark.parametrize("c", [3, 5])
@pytest.mark.parametrize("hidden", [(), (7,), (6, 4)])
@pytest.mark.parametrize("per_head", [False, True])
def test_stacked_gradients_match_autograd(task, c, hidden, per_head) -> None:
    """StackedNet forward/backward with the task's loss equals autograd on the nn.Module head,
    for shared rows (full batch) and per-head rows (mini-batches, raw weights)."""
    gen = torch.Generator().manual_seed(c + len(hidden))
    n, k = 23, 2
    sizes = layer_sizes(D, hidden, c)
    params = init_stacked(sizes, [3, 4])
    net = StackedNet(params)
    loss_of = TaskLoss(task)
    x = torch.randn(k, n, D, generator=gen) if per_head else torch.randn(n, D, generator=gen)
    ys, ws = zip(*(targets(task, n, c, gen) for _ in range(k if per_head else 1)), strict=True)
    y, w = (torch.stack(ys), torch.stack(ws)) if per_head else (ys[0], ws[0])
    logits = net.forward(x, train=True)
    assert logits.shape == (k, n, c)
    if per_head:
        column, dlogits = loss_of.batch_loss(logits, loss_of.targets(y), w)
        loss = loss_of.reduce(column / loss_of.mass(w))
    else:
        loss, dlogits = loss_of(logits, loss_of.targets(y), normalise_weights(w, task))
    grads = net.backward(dlogits)
    for h in range(k):
        module = build_head(D, hidden, 0.0, out_dim=c)
        state = stacked_state(params, h, len(hidden))
        module.load_state_dict({name: torch.from_numpy(v) for name, v in state.items()})
        xh, yh, wh = (x[h], y[h], w[h]) if per_head else (x, y, w)
        ref = reference_loss(module(xh), yh, wh, task)
        ref.backward()
        torch.testing.assert_close(loss[h], ref.detach(), rtol=1e-5, atol=1e-6)
        ref_grads = dict(module.named_parameters())
        for i, name in enumerate(state):  # parameter order: W_0, b_0, W_1, b_1, ...
            torch.testing.assert_close(grads[i][h], ref_grads[name].grad, rtol=1e-4, atol=1e-6)


def test_one_output_keeps_the_binary_shapes() -> None:
    net = StackedNet(init_stacked(layer_sizes(D, (5,), 1), [0, 1]))
    z = net.forward(torch.randn(11, D), train=True)
    assert z.shape == (2, 11)
    assert [g.shape for g in net.backward(torch.ones(2, 11))] == [p.shape for p in net.params]


def _scores_data(seed: int = 0, nv: int = 80, c: int = 4):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(3, 2, nv, c, generator=gen) * 2
    return z, gen


def test_multiclass_scorer_matches_sklearn() -> None:
    from sklearn.metrics import log_loss, roc_auc_score

    z, gen = _scores_data()
    y = torch.randint(0, 4, (80,), generator=gen)
    y[:4] = torch.arange(4)
    w = torch.tensor([0.5, 1.0, 2.0, 1.5])[y]
    loss, auc = multi_output_scorer(y.float(), w, MULTICLASS)(z)
    assert loss.shape == auc.shape == (3, 2) and loss.dtype == auc.dtype == torch.float64
    for m in range(3):
        for k in range(2):
            p = torch.softmax(z[m, k].double(), dim=1).numpy()
            want_loss = log_loss(y.numpy(), p, sample_weight=w.numpy(), labels=range(4))
            want_auc = roc_auc_score(y.numpy(), p, multi_class="ovr", average="macro")
            assert float(loss[m, k]) == pytest.approx(want_loss, rel=1e-6)
            assert float(auc[m, k]) == pytest.approx(want_auc, abs=1e-10)


def test_multiclass_scorer_leaves_out_classes_absent_from_validation() -> None:
    from sklearn.metrics import roc_auc_score

    z, gen = _scores_data()
    y = torch.randint(0, 3, (80,), generator=gen)  # class 3 never occurs
    _, auc = multi_output_scorer(y.float(), torch.ones(80), MULTICLASS)(z)
    p = torch.softmax(z[1, 0].double(), dim=1).numpy()
    want = np.mean([roc_auc_score(y.numpy() == j, p[:, j]) for j in range(3)])
    assert float(auc[1, 0]) == pytest.approx(want, abs=1e-10)
    _, auc = multi_output_scorer(torch.zeros(80), torch.ones(80), MULTICLASS)(z)
    assert torch.isnan(auc).all()


def test_multilabel_scorer_matches_sklearn() -> None:
    from sklearn.metrics import roc_auc_score

    z, gen = _scores_data()
    y = (torch.rand(80, 4, generator=gen) < 0.3).float()
    y[0], y[1] = 1.0, 0.0
    w = torch.where(y > 0, 2.5, 0.8)
    loss, auc = multi_output_scorer(y, w, MULTILABEL)(z)
    for m in range(3):
        for k in range(2):
            zz = z[m, k].double()
            want_loss = reference_loss(zz, y.double(), w.double(), MULTILABEL)
            assert float(loss[m, k]) == pytest.approx(float(want_loss), rel=1e-9)
            want_auc = roc_auc_score(y.numpy(), zz.numpy(), average="macro")
            assert float(auc[m, k]) == pytest.approx(want_auc, abs=1e-10)
    y[:, 2] = 0.0  # label 2 has one value in validation: left out of the mean
    _, auc = multi_output_scorer(y, w, MULTILABEL)(z)
    want = np.mean([roc_auc_score(y[:, j].numpy(), z[0, 0, :, j].numpy()) for j in (0, 1, 3)])
    assert float(auc[0, 0]) == pytest.approx(want, abs=1e-10)


def blobs(
    c: int, n: int, seed: int, task: str = MULTICLASS, d: int = D
) -> tuple[np.ndarray, np.ndarray]:
    """Well-separated Gaussian blobs: class indices ``[n]`` (multiclass) or a 0/1 label
    matrix ``[n, c]`` (multilabel: each label adds its own mean shift)."""
    rng = np.random.default_rng(seed)
    means = 3.0 * rng.standard_normal((c, d))
    if task == MULTICLASS:
        y = rng.integers(0, c, n)
        return (means[y] + rng.standard_normal((n, d))).astype(np.float32), y
    y = (rng.random((n, c)) < 0.35).astype(np.int64)
    return (y @ means + 0.7 * rng.standard_normal((n, d))).astype(np.float32), y


def blob_features(c: int, seed: int, n: int = 450, d: int = 24) -> FeatureSet:
    """A K-class feature set of blobs in memory, split 60/20/20 at random."""
    x, y = blobs(c, n, seed, d=d)
    split = np.random.default_rng(seed + 100).choice(3, n, p=[0.6, 0.2, 0.2]).astype(np.uint8)
    return FeatureSet(
        path=None,
        key={"backbone": f"blobs{c}", "resolution": 8},
        ids=np.array([f"i{i}" for i in range(n)], dtype=object),
        labels=y.astype(np.int64),
        split=split,
        class_names=[f"c{j}" for j in range(c)],
        attrs={},
        _embeddings=x * 1.5 + 2.0,
    )


def top1_of_test_rows(result) -> float:
    preds = result.predictions
    test = preds.split == 2
    return float(np.mean(preds.score[test].argmax(axis=1) == preds.label[test]))


@pytest.mark.parametrize("c", [3, 5])
@pytest.mark.parametrize("options", [{"head": "mlp"}, {"preset": "report"}])
def test_k_class_adam_heads_learn_blobs(c, options) -> None:
    fs = blob_features(c, seed=c)
    result = train_head(fs, save=False, **options)
    preds = result.predictions
    assert preds.task == "multiclass" and preds.score.shape == (len(preds.ids), c)
    np.testing.assert_allclose(preds.score.sum(axis=1), 1.0, atol=1e-6)
    assert result.run.info["engine"] == "generic"
    accuracy = top1_of_test_rows(result)
    assert accuracy >= 0.95, accuracy
    assert result.val_auc > 0.98


def test_mini_batch_k_class_head_learns_blobs() -> None:
    fs = blob_features(4, seed=1)
    result = train_head(fs, "mlp", preset="report", batch_size=64, epochs=60, save=False)
    assert top1_of_test_rows(result) >= 0.95


def multilabel_tensors(n: int, nv: int, c: int, seed: int) -> tuple[SplitTensors, tuple]:
    """Blob multi-label rows as SplitTensors (per-label inverse-frequency entry weights), and
    held-out test rows ``(x, y)``."""
    x, y = blobs(c, n + nv + 200, seed, MULTILABEL)
    x = (x - x[:n].mean(0)) / x[:n].std(0)
    pos = y[:n].mean(0)
    w = np.where(y == 1, 0.5 / pos, 0.5 / (1 - pos)).astype(np.float32)
    t = [torch.from_numpy(a) for a in (x, y.astype(np.float32), w)]
    data = SplitTensors(*(a[:n] for a in t), *(a[n : n + nv] for a in t))
    return data, (t[0][n + nv :], y[n + nv :])


@pytest.mark.parametrize("hidden", [(), (16,)])
@pytest.mark.parametrize("batch_size", [None, 50])
def test_multilabel_heads_learn_blobs(hidden, batch_size) -> None:
    c = 4
    data, (x_test, y_test) = multilabel_tensors(400, 150, c, seed=2)
    sizes = layer_sizes(D, hidden, output_dim(c, MULTILABEL))
    epochs = 300 if batch_size is None else 40
    fit = fit_stacked(
        data, sizes, [1e-2], [0.0], [0], epochs=epochs, batch_size=batch_size, task=MULTILABEL
    )
    assert fit.engine == "generic"
    assert fit.history["train_loss"][-1, 0] < 0.5 * fit.history["train_loss"][0, 0]
    assert fit.best_val_auc[0] > 0.97
    z = StackedNet(fit.best).forward(x_test)[0]
    accuracy = float(((z > 0).numpy() == (y_test == 1)).mean())  # per label and row
    assert accuracy >= 0.93, accuracy


def test_mini_batch_epoch_loss_is_the_loss_over_all_rows() -> None:
    """With a learning rate of 0 the weights never move, so a mini-batch epoch's loss is
    the full-batch loss of the same rows (the per-label weighted means, then their mean)."""
    for task, c in ((MULTILABEL, 3), (MULTICLASS, 4)):
        gen = torch.Generator().manual_seed(5)
        y, w = targets(task, 97, c, gen)
        yv, wv = targets(task, 30, c, gen)
        data = SplitTensors(torch.randn(97, D, generator=gen), y, w, torch.randn(30, D), yv, wv)
        kw = {"epochs": 2, "task": task, "select": "last"}
        full = fit_stacked(data, layer_sizes(D, (5,), c), [0.0], [0.0], [1], **kw)
        mini = fit_stacked(data, layer_sizes(D, (5,), c), [0.0], [0.0], [1], batch_size=20, **kw)
        np.testing.assert_allclose(
            mini.history["train_loss"], full.history["train_loss"], rtol=1e-5
        )


@pytest.mark.parametrize(("task", "c"), [(MULTICLASS, 3), (MULTILABEL, 4)])
def test_curves_score_each_epochs_weights_on_the_weighted_validation_rows(task, c) -> None:
    from sklearn.metrics import roc_auc_score

    data = k_class_tensors(c) if task == MULTICLASS else multilabel_tensors(150, 60, c, 1)[0]
    sizes = layer_sizes(D, (6,), c)
    fit = fit_stacked(data, sizes, [1e-2, 1e-3], [0.0, 0.0], [0, 1], epochs=7, task=task)
    z = StackedNet(fit.last).forward(data.x_val).double()
    for h in range(2):
        loss = reference_loss(z[h], data.y_val.double(), data.w_val.double(), task)
        assert fit.history["val_loss"][-1, h] == pytest.approx(float(loss), rel=1e-6)
        if task == MULTICLASS:
            p = torch.softmax(z[h], dim=1).numpy()
            auc = roc_auc_score(data.y_val.numpy(), p, multi_class="ovr")
        else:
            auc = roc_auc_score(data.y_val.numpy(), z[h].numpy(), average="macro")
        assert fit.history["val_auc"][-1, h] == pytest.approx(auc, abs=1e-9)


def k_class_tensors(c: int = 3, seed: int = 0) -> SplitTensors:
    x, y = blobs(c, 300, seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.float32))
    w = torch.linspace(0.6, 1.4, c)[yt.long()]
    return SplitTensors(xt[:200], yt[:200], w[:200], xt[200:], yt[200:], w[200:])


@pytest.mark.parametrize("hidden", [(), (8,)])
def test_k_class_training_is_deterministic_and_a_stacked_head_equals_a_lone_head(hidden):
    data = k_class_tensors()
    sizes = layer_sizes(D, hidden, 3)
    kw = {"epochs": 25, "task": MULTICLASS, "dropout": 0.2 if hidden else 0.0}
    lrs, wds, seeds = [1e-2, 3e-3, 1e-2], [0.0, 1e-3, 0.0], [0, 1, 2]
    stack = fit_stacked(data, sizes, lrs, wds, seeds, **kw)
    again = fit_stacked(data, sizes, lrs, wds, seeds, **kw)
    for a, b in zip(stack.best + stack.last, again.best + again.last, strict=True):
        assert torch.equal(a, b)
    np.testing.assert_array_equal(stack.history["val_loss"], again.history["val_loss"])
    lone = fit_stacked(data, sizes, lrs[1:2], wds[1:2], seeds[1:2], **kw)
    for a, b in zip(stack.last, lone.last, strict=True):
        torch.testing.assert_close(a[1], b[0], rtol=0, atol=1e-5)
    assert stack.best_epoch[1] == lone.best_epoch[0]
    assert not torch.equal(stack.last[0][0], stack.last[0][1])


def test_fit_stacked_refuses_a_task_that_does_not_fit() -> None:
    data = k_class_tensors()
    with pytest.raises(ValueError, match="binary head has one output"):
        fit_stacked(data, layer_sizes(D, (), 3), [1e-2], [0.0], [0], epochs=1)
    with pytest.raises(ValueError, match="fused engine"):
        fit_stacked(
            data, layer_sizes(D, (), 3), [1e-2], [0.0], [0], epochs=1, task=MULTICLASS,
            engine="fused",
        )  # fmt: skip
    with pytest.raises(ValueError, match="multilabel targets"):
        fit_stacked(data, layer_sizes(D, (), 3), [1e-2], [0.0], [0], epochs=1, task=MULTILABEL)
    with pytest.raises(ValueError, match="task 'multi'"):
        fit_stacked(data, layer_sizes(D, (), 3), [1e-2], [0.0], [0], epochs=1, task="multi")
    fit = fit_stacked(data, layer_sizes(D, (), 3), [1e-2], [0.0], [0], epochs=1, task=MULTICLASS)
    assert fit.engine == "generic"


def test_which_heads_take_k_classes_and_labels() -> None:
    for head, solver in (("linear", "grid"), ("linear", "adam"), ("mlp", "grid"), ("mlp", "adam")):
        check_takes_classes(head, solver, 5)
    check_takes_classes("knn", "knn", 5)
    with pytest.raises(ConfigError, match="5 classes"):
        check_takes_classes("linear", "lbfgs", 5)
    for head, solver in (("mlp", "grid"), ("mlp", "adam"), ("linear", "adam"), ("linear", "grid")):
        assert takes_labels(head, solver)
    assert not takes_labels("linear", "lbfgs")
    assert (output_dim(2), output_dim(2, MULTILABEL), output_dim(7, BINARY)) == (1, 2, 7)
    with pytest.raises(ConfigError, match="two labels"):
        output_dim(1, MULTILABEL)


@pytest.mark.filterwarnings("ignore::cactus_features.notices.ConvergenceWarning")
@pytest.mark.parametrize(
    ("options", "min_auc", "min_accuracy"),
    # the report recipe (lr 5e-4, 500 epochs) is still improving at its last epoch on these
    # unstandardised blobs (measured: test AUC 0.946, accuracy 0.858); the tuned MLP separates them
    [({"preset": "report"}, 0.93, 0.84), ({"head": "mlp"}, 0.99, 0.97)],
)
def test_multilabel_train_head_end_to_end(options, min_auc, min_accuracy) -> None:
    c, n = 4, 500
    x, y = blobs(c, n, seed=3, task=MULTILABEL)
    split = np.random.default_rng(3).choice(3, n, p=[0.6, 0.2, 0.2]).astype(np.uint8)
    fs = FeatureSet(
        path=None,
        key={"backbone": "mlblobs", "resolution": 8},
        ids=np.array([f"i{i}" for i in range(n)], dtype=object),
        labels=np.full(n, -1, dtype=np.int64),
        split=split,
        class_names=[f"l{j}" for j in range(c)],
        attrs={},
        label_matrix=y.astype(np.uint8),
        _embeddings=x,
    )
    result = train_head(fs, save=False, **options)
    preds = result.predictions
    assert preds.task == "multilabel" and preds.score.shape == (n, c)
    test = preds.split == 2
    accuracy = float(((preds.score[test] > 0.5) == (preds.label[test] == 1)).mean())
    auc = np.mean(
        [roc_auc_score(preds.label[test][:, j], preds.score[test][:, j]) for j in range(c)]
    )
    assert auc >= min_auc and accuracy >= min_accuracy
    assert result.val_auc > 0.9  # the mean per-label validation AUC
