"""The kNN probe on K classes: brute-force parity, k by macro AUC, leave-one-out, run files."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from cactus_features.heads import HeadConfig, predict_scores, train_head
from cactus_features.heads.prepare.data import prepare
from cactus_features.heads.solvers.knn import (
    KS,
    TEMPERATURE,
    KnnOptions,
    KnnSolver,
    Neighbours,
    TaskVotes,
    vote_share,
)
from cactus_features.heads.solvers.knn_votes import (
    PROB_EPS,
    choose_k_by,
    class_log_loss,
    class_vote_shares,
    macro_auc,
)
from cactus_features.runfile import load_run

from .synthetic import write_cache
from .test_knn import reference_neighbours
from .test_multiclass import k_class_features


def reference_shares(
    x: np.ndarray,
    labels: np.ndarray,
    train: np.ndarray,
    queries: np.ndarray,
    k: int,
    class_weights: np.ndarray,
    n_classes: int,
) -> np.ndarray:
    """One neighbour at a time (of the brute-force :func:`reference_neighbours`), each
    adding ``c_y exp(s / T)`` to its class; the classes' shares."""
    out = np.zeros((len(queries), n_classes))
    for n, (rows, sims) in enumerate(reference_neighbours(x, train, queries, k)):
        for row, sim in zip(rows, sims, strict=True):
            c = labels[row]
            out[n, c] += class_weights[c] * np.exp(sim / TEMPERATURE)
        out[n] /= out[n].sum()
    return out


def reference_choice(fs, train, val, cw, n_classes) -> int:
    """The ``k`` of :data:`KS` with the best macro one-vs-rest validation AUC (ties:
    lower class-weighted log loss, then smaller ``k``), by scikit-learn."""
    x, y = np.asarray(fs.embeddings, np.float64), fs.labels
    scored = []
    for k in KS:
        p = reference_shares(x, y, train, val, k, cw, n_classes)
        auc = np.mean([roc_auc_score(y[val] == c, p[:, c]) for c in np.unique(y[val])])
        w = cw[y[val]]
        loss = np.sum(w * -np.log(np.clip(p[np.arange(len(val)), y[val]], PROB_EPS, 1))) / w.sum()
        scored.append((-round(auc, 12), round(loss, 9), k))
    return min(scored)[2]


@pytest.mark.parametrize(
    ("n_classes", "class_weight"), [(3, "inverse"), (5, "inverse"), (3, (1.0, 2.0, 0.5))]
)
def test_k_class_shares_and_k_match_brute_force(n_classes, class_weight) -> None:
    fs = k_class_features(n_classes, n=300, seed=n_classes)
    result = train_head(fs, head="knn", class_weight=class_weight, save=False, quiet=True)
    preds = result.predictions
    assert preds.task == "multiclass" and preds.score.shape == (len(preds.ids), n_classes)
    np.testing.assert_allclose(preds.score.sum(axis=1), 1.0, atol=1e-12)
    split = np.asarray(fs.split)
    train, val = np.flatnonzero(split == 0), np.flatnonzero(split == 1)
    cw = np.asarray(result.class_weights)
    info = result.run.info
    assert info["task"] == "multiclass" and info["knn"]["task"] == "multiclass"
    assert info["knn"]["k"] == reference_choice(fs, train, val, cw, n_classes)
    rows = np.flatnonzero(split <= 2)
    x = np.asarray(fs.embeddings, np.float64)
    expected = reference_shares(x, fs.labels, train, rows, info["knn"]["k"], cw, n_classes)
    np.testing.assert_allclose(preds.score, expected, atol=1e-5)
    in_val = split[rows] == 1
    y_val = fs.labels[rows][in_val]
    macro = np.mean([roc_auc_score(y_val == c, expected[in_val, c]) for c in range(n_classes)])
    assert result.val_auc == pytest.approx(macro, abs=1e-6)


def test_class_weights_multiply_each_neighbours_vote() -> None:
    sims = torch.tensor([[0.9, 0.8, 0.5, 0.1]], dtype=torch.float64)
    labels = torch.tensor([[2, 0, 2, 1]])
    cw = np.array([1.0, 3.0, 0.5])
    p = class_vote_shares(sims, labels, 3, 0.5, cw)
    v = np.exp(np.array([0.9, 0.8, 0.5]) / 0.5) * cw[[2, 0, 2]]
    np.testing.assert_allclose(p[0], [v[1], 0.0, v[0] + v[2]] / v.sum(), rtol=1e-12)
    # for two classes the class-1 share is the binary probe's score
    two = torch.tensor([[1, 0, 1, 1]])
    np.testing.assert_allclose(
        class_vote_shares(sims, two, 4, 0.5, cw[:2])[:, 1],
        vote_share(Neighbours(sims, two), 4, 0.5, cw[:2]),
        rtol=1e-12,
    )


def test_training_rows_are_left_out_of_their_own_votes() -> None:
    """Relabelling one training row changes no vote of its own score (one fixed k)."""
    fs = k_class_features(3, n=200, seed=1)
    config = HeadConfig.create("knn", class_weight="none")
    solver = KnnSolver(KnnOptions(ks=(7,)))
    row = int(np.flatnonzero(fs.split == 0)[0])
    labels = fs.labels.copy()
    labels[row] = (labels[row] + 1) % 3
    relabelled = replace(fs, labels=labels)
    scores = []
    for f in (fs, relabelled):
        data = prepare(f, config)
        scores.append(solver.fit(data, [config], torch.device("cpu")).scores(0))
    at = int(np.flatnonzero(prepare(fs, config).rows == row)[0])
    np.testing.assert_array_equal(scores[0][at], scores[1][at])
    assert not np.array_equal(scores[0], scores[1])  # it does vote for other rows


def test_k_is_chosen_by_macro_auc_then_loss_then_smaller_k() -> None:
    labels = np.array([0, 1, 2, 0, 1, 2])
    sims = torch.linspace(0.9, 0.1, 8).repeat(6, 1)
    agree = torch.as_tensor(labels).unsqueeze(1).repeat(1, 8)
    task = TaskVotes("multiclass", labels, np.ones(3), TEMPERATURE)

    def choose(neighbours):
        return choose_k_by((2, 4, 8), lambda k: task.judge(task.score(neighbours, k), labels))

    choice = choose(Neighbours(sims, agree))
    assert choice.k == 2 and choice.val_auc == (1.0, 1.0, 1.0)
    mixed = agree.clone()
    mixed[:, 1] = (mixed[:, 1] + 1) % 3  # the 2nd neighbour disagrees: k=2 loses most
    choice = choose(Neighbours(sims, mixed))
    assert len(set(choice.val_auc)) == 1 and choice.val_loss[0] > min(choice.val_loss)
    assert choice.k == choice.ks[int(np.argmin(choice.val_loss))] != 2
    # a class absent from validation is left out of the macro AUC
    proba = np.array([[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1]])
    assert macro_auc(proba, np.array([0, 1, 0])) == pytest.approx(1.0)
    loss = class_log_loss(proba, np.array([0, 1, 0]), [2.0, 1.0, 1.0])
    assert loss == pytest.approx(-(2 * np.log(0.7) + np.log(0.7) + 2 * np.log(0.6)) / 5)


def test_k_class_run_file_predict_and_submission(tmp_path: Path) -> None:
    from cactus_features.study.predict import write_submission

    fs = k_class_features(4, n=240, seed=2)
    cache = write_cache(tmp_path / "cache" / "gauss4_8.h5", fs)
    result = train_head(cache, head="knn", quiet=True)
    with h5py.File(result.path, "r") as f:
        assert int(f.attrs["format_version"]) == 2
    run = load_run(result.path)
    assert run.head_state == {} and run.predictions.task == "multiclass"
    test = fs.split == 2
    scores = predict_scores(run, fs.embeddings[test])
    assert scores.shape == (int(test.sum()), 4)
    np.testing.assert_allclose(scores, run.predictions.select("test").score, atol=1e-12)
    ids = [str(i) for i in fs.ids[test]]
    path = write_submission(tmp_path / "s.csv", "id", run.info["class_names"], ids, scores)
    lines = path.read_text().splitlines()
    assert lines[0] == "id,c0,c1,c2,c3" and len(lines) == len(ids) + 1
