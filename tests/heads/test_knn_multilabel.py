"""The kNN probe on multi-label data: per-label votes against brute force, k by mean AUC.

The scoring is tested on arrays and, through :class:`KnnSolver`, on prepared data
whose tensors follow the multi-label ``SplitTensors`` contract (``y``, ``w`` ``[N, L]``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from cactus_features.errors import ConfigError
from cactus_features.features import FeatureSet, load_features
from cactus_features.heads import HeadConfig, train_head
from cactus_features.heads.prepare.data import PreparedData, SplitTensors
from cactus_features.heads.solvers.knn import (
    KS,
    TEMPERATURE,
    KnnSolver,
    Neighbours,
    TaskVotes,
    l2_normalise,
    nearest,
    predict_knn,
)
from cactus_features.heads.solvers.knn_votes import (
    PROB_EPS,
    entry_weights,
    label_log_loss,
    label_vote_shares,
    label_weight_table,
    mean_label_auc,
)
from tests.multilabel import LABELS, label_matrix

from .synthetic import write_cache
from .test_knn import reference_neighbours


def multilabel_features(n: int = 300, d: int = 10, seed: int = 0) -> FeatureSet:
    """Labels from :func:`tests.multilabel.label_matrix`, embeddings with a mean shift
    per label, a random 60/20/20 split. (The signal is weak enough that at ``n=300,
    seed=0`` the best validation AUC (k=50) and the best validation loss (k=20) differ.)"""
    rng = np.random.default_rng(seed)
    y = label_matrix(n, seed, prevalence=(0.15, 0.3, 0.4, 0.5))
    x = rng.standard_normal((n, d)) + 0.5 * y @ rng.standard_normal((y.shape[1], d)) + 2.0
    split = rng.choice(np.array([0, 1, 2], dtype=np.uint8), size=n, p=[0.6, 0.2, 0.2])
    return FeatureSet(
        path=None,
        key={"backbone": "multi", "resolution": 8},
        ids=np.array([f"m{i}" for i in range(n)], dtype=object),
        labels=np.full(n, -1, dtype=np.int64),
        split=split,
        class_names=list(LABELS),
        attrs={},
        label_matrix=y,
        _embeddings=x.astype(np.float32),
    )


def balanced_table(y: np.ndarray) -> np.ndarray:
    """Per-label ``(negative, positive)`` weights ``n / (2 n_value)``."""
    pos = y.sum(axis=0).astype(np.float64)
    return np.stack([len(y) / (2 * (len(y) - pos)), len(y) / (2 * pos)], axis=1)


@dataclass
class ContractData(PreparedData):
    """Prepared multi-label data whose tensors follow the ``SplitTensors`` contract."""

    table: np.ndarray | None = None

    def tensors(self, device: torch.device) -> SplitTensors:
        y = self.features.label_matrix

        def part(index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            w = entry_weights(y[index], self.table)
            return (
                torch.from_numpy(self.inputs(index)).to(device),
                torch.as_tensor(y[index], dtype=torch.float32, device=device),
                torch.as_tensor(w, dtype=torch.float32, device=device),
            )

        return SplitTensors(*part(self.train), *part(self.val))


def contract_data(fs: FeatureSet) -> ContractData:
    split = np.asarray(fs.split)
    train = np.flatnonzero(split == 0)
    table = balanced_table(fs.label_matrix[train])
    return ContractData(
        features=fs,
        class_names=list(fs.class_names),
        rows=np.flatnonzero(split <= 2),
        train=train,
        val=np.flatnonzero(split == 1),
        test=np.flatnonzero(split == 2),
        standardizer=None,
        class_weights=np.ones(len(fs.class_names)),
        class_weight_mode="balanced",
        positive_index=None,
        table=table,
    )


def reference_label_scores(x, y, w, train, queries, k) -> np.ndarray:
    """One neighbour and one label at a time (of the brute-force
    :func:`reference_neighbours`): for label ``l`` each adds ``W[j, l] exp(s / T)`` to
    the votes, and to the positive votes when it has ``l``."""
    out = np.zeros((len(queries), y.shape[1]))
    for n, (rows, sims) in enumerate(reference_neighbours(x, train, queries, k)):
        for label in range(y.shape[1]):
            pos = total = 0.0
            for row, sim in zip(rows, sims, strict=True):
                vote = w[row, label] * np.exp(sim / TEMPERATURE)
                total += vote
                pos += vote * y[row, label]
            out[n, label] = pos / total
    return out


def reference_k(x, y, w, train, val) -> int:
    """The ``k`` of :data:`KS` with the best mean per-label validation AUC (scikit-learn;
    ties: the lower mean per-label weighted BCE, then the smaller ``k``)."""
    scored = []
    for k in KS:
        p = reference_label_scores(x, y, w, train, val, k)
        yv, wv = y[val], w[val]
        both = [j for j in range(y.shape[1]) if 0 < yv[:, j].sum() < len(val)]
        auc = np.mean([roc_auc_score(yv[:, j], p[:, j]) for j in both])
        q = np.clip(p, PROB_EPS, 1 - PROB_EPS)
        bce = -(yv * np.log(q) + (1 - yv) * np.log(1 - q))
        loss = np.mean((wv * bce).sum(axis=0) / wv.sum(axis=0))
        scored.append((-round(auc, 12), round(loss, 9), k))
    return min(scored)[2]


def test_label_vote_shares_match_brute_force_on_arrays() -> None:
    fs = multilabel_features(n=120, seed=1)
    x, y = np.asarray(fs.embeddings, np.float64), fs.label_matrix
    train, queries = np.arange(80), np.arange(120)
    w = entry_weights(y, balanced_table(y[train]))
    bank = l2_normalise(x[train])
    own = torch.as_tensor(np.where(queries < 80, queries, -1))
    nb = nearest(l2_normalise(x), bank, torch.arange(80), 15, self_index=own)
    for k in (1, 6, 15):
        got = label_vote_shares(
            nb.sims, nb.labels, k, TEMPERATURE, torch.as_tensor(y[train]), torch.as_tensor(w[train])
        )
        np.testing.assert_allclose(
            got, reference_label_scores(x, y, w, train, queries, k), atol=1e-5
        )


def test_entry_weights_and_the_weight_table() -> None:
    y = np.array([[1, 0], [0, 0], [1, 1]])
    table = np.array([[0.2, 0.8], [0.5, 3.0]])
    w = entry_weights(y, table)
    np.testing.assert_array_equal(w, [[0.8, 0.5], [0.2, 0.5], [0.8, 3.0]])
    np.testing.assert_array_equal(label_weight_table([(y, w)]), table)
    # a value no row has gets weight 0; the pairs (train, val) are read together
    np.testing.assert_array_equal(label_weight_table([(y[:2], w[:2])]), [[0.2, 0.8], [0.5, 0.0]])
    w_bad = w.copy()
    w_bad[0, 0] = 0.7
    with pytest.raises(ConfigError, match="differ within a label"):
        label_weight_table([(y, w_bad)])
    with pytest.raises(ConfigError, match=r"\[N, L\]"):
        label_weight_table([(y[:, 0], w[:, 0])])


def test_mean_label_auc_and_loss() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random((50, 3)) < 0.4).astype(np.uint8)
    y[:, 2] = 1  # one value only: left out of the mean AUC
    s = np.clip(0.5 * y + rng.random((50, 3)) * 0.6, 0, 1)
    s[0, 0] = 0.0  # an exact 0 share is clipped for the loss
    expected = np.mean([roc_auc_score(y[:, j], s[:, j]) for j in (0, 1)])
    assert mean_label_auc(s, y) == pytest.approx(expected, abs=1e-12)
    w = entry_weights(y, np.array([[1.0, 2.0], [0.5, 1.5], [1.0, 1.0]]))
    q = np.clip(s, PROB_EPS, 1 - PROB_EPS)
    bce = -(y * np.log(q) + (1 - y) * np.log(1 - q))
    expected = np.mean([(w[:, j] * bce[:, j]).sum() / w[:, j].sum() for j in range(3)])
    assert label_log_loss(s, y, w) == pytest.approx(expected, rel=1e-12)


def test_solver_scores_contract_data_like_brute_force() -> None:
    fs = multilabel_features()
    data = contract_data(fs)
    config = HeadConfig.create("knn")
    fit = KnnSolver().fit(data, [config], torch.device("cpu"))
    x, y = np.asarray(fs.embeddings, np.float64), fs.label_matrix
    w = entry_weights(y, data.table)
    info = fit.info["knn"]
    assert info["task"] == "multilabel"
    np.testing.assert_allclose(info["label_weights"], data.table, rtol=1e-6)  # float32 tensors
    assert info["k"] == reference_k(x, y, w, data.train, data.val) == 50
    assert info["val_loss_by_k"][1] < info["val_loss_by_k"][2]  # AUC, not loss, chose
    expected = reference_label_scores(x, y, w, data.train, data.rows, info["k"])
    scores = fit.scores(0)
    assert scores.shape == (len(data.rows), len(LABELS))
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    in_val = np.isin(data.rows, data.val)
    assert fit.best_val_auc[0] == pytest.approx(mean_label_auc(expected[in_val], y[data.val]))
    assert "val mean label AUC" in fit.note


def test_multilabel_judge_is_the_mean_label_auc() -> None:
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    sims = torch.linspace(0.9, 0.1, 6, dtype=torch.float64).repeat(4, 1)
    index = torch.tensor([[0, 1, 2, 3, 0, 1]]).repeat(4, 1)
    task = TaskVotes("multilabel", y, np.ones((2, 2)), TEMPERATURE)
    nb = Neighbours(sims, index)
    # every query has the same neighbours, so every score ties: AUC 0.5 at every k
    auc, _ = task.judge(task.score(nb, 2), y)
    assert auc == pytest.approx(0.5)
    own = Neighbours(sims, torch.arange(4).unsqueeze(1).repeat(1, 6))  # its own row, 6 times
    assert task.judge(task.score(own, 3), y)[0] == pytest.approx(1.0)


def test_predict_rereads_the_label_matrix(tmp_path: Path) -> None:
    fs = multilabel_features(n=200, seed=2)
    path = write_cache(tmp_path / "multi_8.h5", fs)
    with h5py.File(path, "r+") as f:
        f.create_dataset("label_matrix", data=fs.label_matrix)
    data = contract_data(load_features(path))
    fit = KnnSolver().fit(data, [HeadConfig.create("knn")], torch.device("cpu"))
    run = SimpleNamespace(
        name="multi",
        info={"features_path": str(path), "knn": fit.info["knn"], "class_weights": []},
        standardize={},
    )
    test = fs.split == 2
    got = predict_knn(run, fs.embeddings[test])
    np.testing.assert_allclose(got, fit.scores(0)[np.isin(data.rows, data.test)], atol=1e-12)
    with h5py.File(path, "r+") as f:
        f["label_matrix"][int(data.train[0]), 0] ^= 1
    with pytest.raises(Exception, match="checksum differs"):
        predict_knn(run, fs.embeddings[test])


def test_train_head_knn_on_multilabel_data() -> None:
    fs = multilabel_features()
    result = train_head(fs, head="knn", save=False, quiet=True)
    preds = result.predictions
    assert preds.task == "multilabel" and preds.score.shape == (len(preds.ids), len(LABELS))
    assert preds.label.shape == preds.score.shape
    split = np.asarray(fs.split)
    train, val = np.flatnonzero(split == 0), np.flatnonzero(split == 1)
    info = result.run.info["knn"]
    x, y = np.asarray(fs.embeddings, np.float64), fs.label_matrix
    w = entry_weights(y, np.asarray(info["label_weights"]))
    assert info["k"] == reference_k(x, y, w, train, val)
    rows = np.flatnonzero(split <= 2)
    expected = reference_label_scores(x, y, w, train, rows, info["k"])
    np.testing.assert_allclose(preds.score, expected, atol=1e-5)
