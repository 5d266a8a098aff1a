"""The kNN probe: brute-force reference, leave-one-out, k selection, run files, CLI, compare."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from sklearn.metrics import roc_auc_score

from cactus_features.cli import cli
from cactus_features.cli.compare import COMMANDS as COMPARE_COMMANDS
from cactus_features.cli.train import COMMANDS as TRAIN_COMMANDS
from cactus_features.errors import CacheError, ConfigError
from cactus_features.heads import HeadConfig, predict_scores, train_head
from cactus_features.heads.solvers.knn import (
    KS,
    TEMPERATURE,
    candidate_ks,
    l2_normalise,
    nearest,
)
from cactus_features.runfile import load_run

from .synthetic import make_features, write_cache


def reference_neighbours(
    x: np.ndarray, train: np.ndarray, queries: np.ndarray, k: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Brute force in float64, per query: the ``k`` training rows (but the query itself)
    most cosine-similar to it and their similarities, most similar first."""
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    out = []
    for q in queries:
        bank = train[train != q]
        sims = xn[bank] @ xn[q]
        top = np.argsort(-sims, kind="stable")[:k]
        out.append((bank[top], sims[top]))
    return out


def reference_scores(
    x: np.ndarray,
    labels: np.ndarray,
    train: np.ndarray,
    queries: np.ndarray,
    k: int,
    class_weights: np.ndarray,
    temperature: float = TEMPERATURE,
) -> np.ndarray:
    """Votes ``c_y exp(s / T)`` of the :func:`reference_neighbours`: the positive share."""
    out = np.empty(len(queries))
    for n, (rows, sims) in enumerate(reference_neighbours(x, train, queries, k)):
        votes = np.exp(sims / temperature) * class_weights[labels[rows]]
        out[n] = votes[labels[rows] == 1].sum() / votes.sum()
    return out


def reference_k(fs, train: np.ndarray, val: np.ndarray, cw: np.ndarray) -> int:
    """The ``k`` of :data:`KS` with the best validation AUC (smallest on ties)."""
    x, y = np.asarray(fs.embeddings, np.float64), fs.labels
    aucs = {k: roc_auc_score(y[val], reference_scores(x, y, train, val, k, cw)) for k in KS}
    best = max(aucs.values())
    return min(k for k, a in aucs.items() if a >= best - 1e-12)


@pytest.fixture
def fs():
    return make_features(n=400, d=16, signal=1.0)


def test_scores_and_k_match_brute_force(fs) -> None:
    result = train_head(fs, head="knn", save=False)
    info = result.run.info["knn"]
    split = np.asarray(fs.split)
    train, val = np.flatnonzero(split == 0), np.flatnonzero(split == 1)
    cw = np.asarray(result.class_weights)
    assert info["k"] == reference_k(fs, train, val, cw)
    rows = np.flatnonzero(split <= 2)
    expected = reference_scores(
        np.asarray(fs.embeddings, np.float64), fs.labels, train, rows, info["k"], cw
    )
    np.testing.assert_allclose(result.predictions.score, expected, atol=1e-5)
    assert result.val_auc == pytest.approx(
        roc_auc_score(fs.labels[val], expected[split[rows] == 1]), abs=1e-9
    )


def test_training_rows_are_scored_leave_one_out(fs) -> None:
    q = l2_normalise(fs.embeddings)
    labels = torch.as_tensor(fs.labels)
    own = torch.arange(len(q))
    loo = nearest(q, q, labels, 5, self_index=own)
    assert float(loo.sims.max()) < 0.999  # never the row itself (similarity 1)
    with_self = nearest(q, q, labels, 6)
    np.testing.assert_allclose(with_self.sims[:, 0].numpy(), 1.0, atol=1e-5)
    np.testing.assert_allclose(loo.sims.numpy(), with_self.sims[:, 1:6].numpy(), atol=1e-6)


def test_blocks_do_not_change_the_neighbours(fs) -> None:
    q = l2_normalise(fs.embeddings)
    labels = torch.as_tensor(fs.labels)
    own = torch.arange(len(q))
    a = nearest(q, q, labels, 20, self_index=own, block=7)
    b = nearest(q, q, labels, 20, self_index=own, block=4096)
    torch.testing.assert_close(a.sims, b.sims, rtol=0, atol=1e-6)  # BLAS may sum in other orders
    assert torch.equal(a.labels, b.labels)


def test_class_weights_keep_the_ranking(fs) -> None:
    weighted = train_head(fs, head="knn", save=False)
    plain = train_head(fs, head="knn", class_weight="none", save=False)
    w, p = weighted.predictions.select("test"), plain.predictions.select("test")
    assert roc_auc_score(w.label, w.score) == pytest.approx(roc_auc_score(p.label, p.score))
    assert weighted.run.info["knn"]["k"] == plain.run.info["knn"]["k"]
    assert not np.allclose(w.score, p.score)  # the minority class's votes count more


def test_candidate_ks_are_capped_for_small_training_splits() -> None:
    assert candidate_ks(KS, 30) == (10, 20, 29)
    assert candidate_ks(KS, 1000) == KS
    with pytest.raises(ConfigError, match="at least 2 training rows"):
        candidate_ks(KS, 1)


def test_config_of_the_knn_head() -> None:
    config = HeadConfig.create("knn", solver="adam", standardize=True)
    assert (config.solver, config.standardize, config.hidden) == ("knn", False, ())
    with pytest.raises(ConfigError, match="--head mlp"):
        HeadConfig.create("knn", hidden=(8,))
    with pytest.raises(ConfigError, match="--head knn"):
        HeadConfig.create("linear", solver="knn")


def test_needs_a_validation_split_with_both_classes(fs) -> None:
    no_val = replace(fs, split=np.where(fs.split == 1, 0, fs.split).astype(np.uint8))
    with pytest.raises(ConfigError, match="validation split"):
        train_head(no_val, head="knn", save=False)


def test_run_file_holds_no_weights_and_predict_rereads_the_cache(tmp_path: Path) -> None:
    cache = write_cache(tmp_path / "cache" / "syn.h5", make_features(n=300, d=8, signal=1.0))
    result = train_head(cache, head="knn")
    run = load_run(result.path)
    assert run.head_state == {} and run.standardize == {}
    assert run.info["solver"] == "knn" and run.info["knn"]["temperature"] == TEMPERATURE
    assert run.info["knn"]["neighbour_rows"] == "train split"
    with h5py.File(cache, "r") as f:
        emb, split = f["embeddings"][...], f["split"][...]
    test = run.predictions.select("test").score
    np.testing.assert_allclose(predict_scores(run, emb[split == 2]), test, atol=1e-12)
    with h5py.File(cache, "r+") as f:
        f["embeddings"][int(np.flatnonzero(split == 0)[0])] += 1.0
    with pytest.raises(CacheError, match="checksum differs"):
        predict_scores(run, emb[split == 2])


def test_predict_of_a_subset_run_uses_its_own_neighbours(tmp_path: Path) -> None:
    fs = make_features(n=300, d=8, signal=1.0)
    cache = write_cache(tmp_path / "syn.h5", fs)
    train = np.flatnonzero(fs.split == 0)
    subset = np.concatenate([train[fs.labels[train] == c][:40] for c in (0, 1)])
    result = train_head(cache, head="knn", train_rows=subset)
    run = load_run(result.path)
    assert run.info["knn"]["neighbour_rows"] == sorted(int(r) for r in subset)
    assert run.info["train_subset"] == {"rows": 80, "of": int(train.size)}
    test = fs.split == 2
    np.testing.assert_allclose(
        predict_scores(run, fs.embeddings[test]), run.predictions.select("test").score, atol=1e-12
    )


def test_cli_train_knn_and_compare_with_a_linear_run(tmp_path: Path) -> None:
    for command in (*TRAIN_COMMANDS, *COMPARE_COMMANDS):
        cli.add_command(command)
    runner = CliRunner()
    cache = write_cache(tmp_path / "syn.h5", make_features(n=300, d=8))
    knn = runner.invoke(cli, ["train", str(cache), "--head", "knn", "--quiet"])
    assert knn.exit_code == 0, knn.output
    assert knn.stdout.startswith("synthetic@32 [knn]: kNN k=")
    linear = runner.invoke(cli, ["train", str(cache), "--epochs", "30", "--lr", "0.01", "-q"])
    assert linear.exit_code == 0, linear.output
    paths = [line.strip().rsplit(" -> ", 1)[1] for line in (knn.stdout, linear.stdout)]
    out = runner.invoke(cli, ["compare", *paths, "--out", str(tmp_path / "report")])
    assert out.exit_code == 0, out.output
    label = "synthetic@32 (random init)"  # the synthetic cache's weights label
    assert f"{label} [knn]" in out.stdout and f"{label} [linear]" in out.stdout
    report = (tmp_path / "report" / "report.md").read_text()
    assert f"| {label} [knn] | random init | knn |" in report
    assert f"| {label} [linear] | random init | linear |" in report


def test_choose_k_breaks_ties_by_log_loss_then_smaller_k() -> None:
    from cactus_features.heads.solvers.knn import Neighbours, choose_k

    labels = np.array([0, 1, 1, 0, 1])
    sims = torch.linspace(0.9, 0.1, 8).repeat(5, 1)
    agree = torch.as_tensor(labels).unsqueeze(1).repeat(1, 8)  # every neighbour agrees
    choice = choose_k(Neighbours(sims, agree), labels, (2, 4, 8), TEMPERATURE, [0.5, 0.5])
    assert choice.k == 2 and choice.val_auc == (1.0, 1.0, 1.0)
    mixed = agree.clone()
    mixed[:, 1] = 1 - mixed[:, 1]  # the 2nd neighbour disagrees: k=2 has the highest log loss
    choice = choose_k(Neighbours(sims, mixed), labels, (2, 4, 8), TEMPERATURE, [0.5, 0.5])
    assert len(set(choice.val_auc)) == 1 and choice.val_loss[0] > min(choice.val_loss)
    assert choice.k == choice.ks[int(np.argmin(choice.val_loss))] != 2


def test_sweeps_refuse_the_knn_probe(fs) -> None:
    from cactus_features.heads import sweep_heads

    with pytest.raises(ConfigError, match="train --head knn"):
        sweep_heads(fs, head="knn", save=False)


def test_the_probe_reports_no_convergence_problem(fs, recwarn) -> None:
    """Nothing iterates: no "did not converge" warning, and no converged flag to show."""
    result = train_head(fs, head="knn", save=False)
    assert result.run.info["warnings"] == []
    assert "converged" not in result.run.info["convergence"]
    assert not [w for w in recwarn if "converge" in str(w.message)]
