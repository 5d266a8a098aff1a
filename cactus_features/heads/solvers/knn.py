"""The kNN probe: cosine similarity, temperature-weighted votes, ``k`` chosen on validation.

In the spirit of DINOv2's k-NN evaluation: embeddings are L2-normalised, so a
matrix product gives cosine similarities (``HeadConfig.create`` turns
standardisation off for this probe: on the real EfficientNet-Lite0 caches,
standardising first lowered the best validation AUC, 0.9862 -> 0.9795 at
64 px and 0.9978 -> 0.9968 at 224 px (best ``k`` each, ``benchmarks/bench_knn.py``);
a configuration made with ``standardize=True`` by hand is honoured). Each query's
``k`` most similar *training* rows vote with weight ``exp(sim / T)``
(``T`` = :data:`TEMPERATURE`), times the class weight of their label. A row's
score is the positive class's share of the votes::

    score = c_1 sum_{j in top k, y_j = 1} e^{s_j / T} / sum_{j in top k} c_{y_j} e^{s_j / T}

Class weights only rescale the odds of each row's score, so they change the
0.5 threshold but not the ranking (nor the AUC). K classes and multi-label data
vote the same way, per class or per label (:mod:`~cactus_features.heads.solvers.knn_votes`):
probabilities ``[N, K]`` (each class's share of the class-weighted votes; rows sum
to 1) or scores ``[N, L]`` (per label, the share of its votes, weighted by each
neighbour's own entry weight, cast by neighbours having the label).

``k`` is chosen from :data:`KS` by the validation AUC of the score (ties: the
lower class-weighted validation log loss, then the smaller ``k``): AUC because
it is the library's selection criterion everywhere and because vote shares of
exactly 0 or 1 make log loss dominated by a few confident mistakes. For K classes
the AUC is the macro one-vs-rest AUC over the classes in validation, for
multi-label data the mean per-label AUC (the task's ``val_auc``).

Training rows are scored leave-one-out (a row is never its own neighbour); the
neighbours of every other row are the training rows. Nothing is learnt but
``k``: the run file holds no weights, and :func:`predict_knn` re-reads the
training embeddings from the cache the run names (checked by checksum).

Similarities are computed in row blocks of the queries (one matrix product and
one :func:`torch.topk` per block); the top-``max(KS)`` neighbours are found once
and every candidate ``k`` reuses their prefix.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cactus_features.data.classes import BINARY, MULTICLASS, MULTILABEL
from cactus_features.errors import CacheError, ConfigError
from cactus_features.heads.config import HeadConfig
from cactus_features.heads.fastpath.auc import roc_auc
from cactus_features.heads.prepare.data import PreparedData
from cactus_features.heads.prepare.standardize import Standardizer
from cactus_features.heads.solvers.base import Fit, Progress
from cactus_features.heads.solvers.knn_votes import (
    PROB_EPS,
    KChoice,
    choose_k_by,
    class_log_loss,
    class_vote_shares,
    entry_weights,
    label_log_loss,
    label_vote_shares,
    label_weight_table,
    macro_auc,
    mean_label_auc,
    votes,
)

KS = (10, 20, 50, 100)
"""Candidate numbers of neighbours."""
TEMPERATURE = 0.07
"""Vote temperature ``T`` (DINOv2's)."""
QUERY_BLOCK = 1024
"""Query rows per similarity block (``QUERY_BLOCK x N_train`` float32 at once)."""
CRITERION = "val_auc"
"""How ``k`` is chosen (see the module docstring)."""
AUC_NAMES = {BINARY: "val AUC", MULTICLASS: "val macro AUC", MULTILABEL: "val mean label AUC"}
"""What the validation AUC of each task is called in the console note."""


@dataclass(frozen=True)
class KnnOptions:
    """The probe's fixed settings.

    Attributes:
        ks: Candidate ``k`` (values above the number of training rows minus one are
            capped to it).
        temperature: Vote temperature.
        block: Query rows per similarity block.
    """

    ks: tuple[int, ...] = KS
    temperature: float = TEMPERATURE
    block: int = QUERY_BLOCK


@dataclass
class Neighbours:
    """The nearest training rows of some queries, most similar first.

    Attributes:
        sims: Cosine similarities ``[Nq, kmax]`` (float32, descending per row).
        labels: Label index of each neighbour ``[Nq, kmax]`` (int64); for multi-label
            data, its position in the bank (its labels are a row of a matrix).
    """

    sims: torch.Tensor
    labels: torch.Tensor

    def select(self, index: np.ndarray | torch.Tensor) -> Neighbours:
        """The neighbours of some of the queries."""
        idx = torch.as_tensor(np.asarray(index), dtype=torch.long, device=self.sims.device)
        return Neighbours(self.sims[idx], self.labels[idx])


def l2_normalise(x: np.ndarray | torch.Tensor, device: torch.device | None = None) -> torch.Tensor:
    """Rows scaled to unit length (all-zero rows stay zero), float32 on ``device``."""
    t = torch.as_tensor(np.asarray(x, dtype=np.float32), device=device)
    return torch.nn.functional.normalize(t, dim=1)


def nearest(
    queries: torch.Tensor,
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    kmax: int,
    *,
    self_index: torch.Tensor | None = None,
    block: int = QUERY_BLOCK,
) -> Neighbours:
    """The ``kmax`` most similar bank rows of each query (blocked matrix products + top-k).

    Args:
        queries: L2-normalised query rows ``[Nq, D]``.
        bank: L2-normalised bank (training) rows ``[Nb, D]``.
        bank_labels: Label index of each bank row ``[Nb]``.
        kmax: Neighbours per query (at most ``Nb``, or ``Nb - 1`` with ``self_index``).
        self_index: Per query, its own position in the bank (``-1``: not in the bank);
            that bank row is never its neighbour (leave-one-out).
        block: Queries per block.

    Returns:
        Similarities and labels of the neighbours, most similar first.
    """
    n = queries.shape[0]
    sims = torch.empty((n, kmax), dtype=torch.float32, device=queries.device)
    labels = torch.empty((n, kmax), dtype=torch.long, device=queries.device)
    bank_t = bank.T.contiguous()
    for a in range(0, n, block):
        b = min(n, a + block)
        s = queries[a:b] @ bank_t
        if self_index is not None:
            own = self_index[a:b]
            rows = torch.nonzero(own >= 0).squeeze(1)
            s[rows, own[rows]] = -torch.inf
        top = torch.topk(s, kmax, dim=1, largest=True, sorted=True)
        sims[a:b] = top.values
        labels[a:b] = bank_labels[top.indices]
    return Neighbours(sims, labels)


def vote_share(
    neighbours: Neighbours,
    k: int,
    temperature: float,
    class_weights: Sequence[float] | np.ndarray,
) -> np.ndarray:
    """The positive class's share of the temperature-weighted votes of the first ``k``.

    Args:
        neighbours: The queries' neighbours (at least ``k`` each).
        k: Neighbours that vote.
        temperature: Vote temperature ``T`` (weights ``exp(sim / T)``).
        class_weights: Weight of each class's votes, in class-index order.

    Returns:
        float64 scores ``[Nq]`` in ``[0, 1]``.
    """
    v = votes(neighbours.sims, k, temperature)
    cw = torch.as_tensor(np.asarray(class_weights, dtype=np.float64), device=v.device)
    v = v * cw[neighbours.labels[:, :k]]
    pos = (v * (neighbours.labels[:, :k] == 1)).sum(dim=1)
    return (pos / v.sum(dim=1)).cpu().numpy()


def weighted_log_loss(
    score: np.ndarray, labels: np.ndarray, class_weights: Sequence[float] | np.ndarray
) -> float:
    """Class-weighted mean binary cross-entropy of clipped scores (the heads' validation loss)."""
    p = np.clip(np.asarray(score, dtype=np.float64), PROB_EPS, 1.0 - PROB_EPS)
    y = np.asarray(labels) == 1
    w = np.asarray(class_weights, dtype=np.float64)[np.asarray(labels)]
    terms = np.where(y, -np.log(p), -np.log1p(-p))
    return float((w * terms).sum() / w.sum())


def choose_k(
    neighbours: Neighbours,
    labels: np.ndarray,
    ks: Sequence[int],
    temperature: float,
    class_weights: Sequence[float] | np.ndarray,
) -> KChoice:
    """Pick ``k`` by validation AUC (ties: lower log loss, then smaller ``k``).

    Args:
        neighbours: The validation rows' neighbours (at least ``max(ks)`` each).
        labels: The validation rows' labels.
        ks: Candidates, ascending.
        temperature: Vote temperature.
        class_weights: Class weights of the votes and of the log loss.

    Returns:
        The chosen ``k`` and every candidate's validation scores.
    """
    task = TaskVotes(BINARY, np.asarray(labels), np.asarray(class_weights), temperature)
    return choose_k_by(ks, lambda k: task.judge(task.score(neighbours, k), np.asarray(labels)))


@dataclass(frozen=True)
class TaskVotes:
    """How one task's queries are scored by their neighbours and how a ``k`` is judged.

    Attributes:
        task: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        bank: The bank (training) rows' labels: class indices ``[Nb]``, or the 0/1
            label matrix ``[Nb, L]`` of multi-label data.
        weights: Class weights ``[K]``, or the per-label ``(negative, positive)``
            weights ``[L, 2]`` of multi-label data.
        temperature: Vote temperature.
    """

    task: str
    bank: np.ndarray
    weights: np.ndarray
    temperature: float

    @property
    def gathered(self) -> np.ndarray:
        """What :func:`nearest` records of each neighbour: its class, or (multi-label)
        its bank position."""
        return np.arange(len(self.bank)) if self.task == MULTILABEL else self.bank

    def score(self, neighbours: Neighbours, k: int) -> np.ndarray:
        """Scores of the queries from their first ``k`` neighbours: P(class 1) ``[Nq]``
        (binary), probabilities ``[Nq, K]``, or per-label scores ``[Nq, L]``."""
        t = self.temperature
        if self.task == BINARY:
            return vote_share(neighbours, k, t, self.weights)
        if self.task == MULTICLASS:
            return class_vote_shares(neighbours.sims, neighbours.labels, k, t, self.weights)
        y = torch.as_tensor(np.asarray(self.bank, dtype=np.float64))
        w = torch.as_tensor(entry_weights(self.bank, self.weights))
        return label_vote_shares(neighbours.sims, neighbours.labels, k, t, y, w)

    def judge(self, scores: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
        """``(val_auc, val_loss)`` of some rows' scores against their labels ``truth``."""
        return self.auc(scores, truth), self.loss(scores, truth)

    def auc(self, scores: np.ndarray, truth: np.ndarray) -> float:
        """AUC (binary), macro one-vs-rest AUC (K classes) or mean per-label AUC."""
        if self.task == BINARY:
            return float(roc_auc(torch.from_numpy(scores), torch.as_tensor(truth == 1)))
        if self.task == MULTICLASS:
            return macro_auc(scores, truth)
        return mean_label_auc(scores, truth)

    def loss(self, scores: np.ndarray, truth: np.ndarray) -> float:
        """The weighted log loss of the task (see :mod:`.knn_votes`)."""
        if self.task == BINARY:
            return weighted_log_loss(scores, truth, self.weights)
        if self.task == MULTICLASS:
            return class_log_loss(scores, truth, self.weights)
        return label_log_loss(scores, truth, entry_weights(truth, self.weights))


def candidate_ks(ks: Sequence[int], n_bank: int) -> tuple[int, ...]:
    """The candidates capped at ``n_bank - 1`` (leave-one-out), sorted and unique.

    Raises:
        ConfigError: With fewer than two training rows.
    """
    if n_bank < 2:
        raise ConfigError(f"a kNN probe needs at least 2 training rows, got {n_bank}")
    return tuple(sorted({min(int(k), n_bank - 1) for k in ks}))


def bank_checksum(ids: np.ndarray, labels: np.ndarray, embeddings: np.ndarray) -> str:
    """SHA-256 of the neighbours' ids, labels and raw float32 embeddings (in order)."""
    h = hashlib.sha256()
    h.update("\n".join(str(i) for i in ids).encode("utf-8"))
    h.update(np.ascontiguousarray(labels, dtype="<i8").tobytes())
    h.update(np.ascontiguousarray(embeddings, dtype="<f4").tobytes())
    return h.hexdigest()


class KnnSolver:
    """The kNN probe behind the :class:`~cactus_features.heads.solvers.base.Solver` interface.

    Args:
        options: Candidates, temperature and block size (default :class:`KnnOptions`).
    """

    def __init__(self, options: KnnOptions | None = None) -> None:
        self.options = options or KnnOptions()

    def fit(
        self,
        data: PreparedData,
        configs: Sequence[HeadConfig],
        device: torch.device,
        progress: Progress | None = None,
    ) -> Fit:
        """Score every row of ``data`` with each configuration (the neighbours depend
        only on the data, so they are found once); ``progress`` is not reported.

        Raises:
            ConfigError: Without a validation split holding both classes (multi-label:
                a label with both values).
        """
        opts = self.options
        truth = _truth(data)
        start = time.perf_counter()
        ks = candidate_ks(opts.ks, data.train.size)
        task = TaskVotes(data.task, truth[data.train], _vote_weights(data), opts.temperature)
        bank = l2_normalise(data.inputs(data.train), device)
        bank_labels = torch.as_tensor(task.gathered, dtype=torch.long, device=device)
        position = np.full(len(truth), -1, dtype=np.int64)
        position[data.train] = np.arange(data.train.size)
        queries = l2_normalise(data.inputs(data.rows), device)
        own = torch.as_tensor(position[data.rows], device=device)
        neighbours = nearest(queries, bank, bank_labels, ks[-1], self_index=own, block=opts.block)
        del queries
        row_of = {int(r): i for i, r in enumerate(data.rows)}
        val_nb = neighbours.select([row_of[int(r)] for r in data.val])
        train_nb = neighbours.select([row_of[int(r)] for r in data.train])
        fe = data.features
        checksum = bank_checksum(
            fe.ids[data.train], truth[data.train], np.asarray(fe.embeddings[data.train])
        )
        choice = choose_k_by(ks, lambda k: task.judge(task.score(val_nb, k), truth[data.val]))
        scores = task.score(neighbours, choice.k)
        if task.task == BINARY and data.positive_index == 0:
            scores = 1.0 - scores  # the other class's share (k's choice is symmetric)
        train_loss = task.loss(task.score(train_nb, choice.k), truth[data.train])
        seconds = time.perf_counter() - start
        n = len(configs)  # the probe has no option that configurations differ in
        val_auc, val_loss = choice.val_auc[choice.index], choice.val_loss[choice.index]
        return Fit(
            history={
                "train_loss": np.full((1, n), train_loss),
                "val_loss": np.full((1, n), val_loss),
                "val_auc": np.full((1, n), val_auc),
            },
            best_epoch=np.ones(n, dtype=np.int64),
            best_val_auc=np.full(n, val_auc),
            best_val_loss=np.full(n, val_loss),
            epochs_run=1,
            seconds=seconds,
            info=_info(choice, opts, data, checksum, task),
            group_size=n,
            weights=lambda k: {},
            note=f"kNN: k={choice.k} of {list(ks)} ({AUC_NAMES[task.task]} "
            + ", ".join(f"{a:.4f}" for a in choice.val_auc)
            + f"), T={opts.temperature:g}",
            scores=lambda k: scores,
        )


def _truth(data: PreparedData) -> np.ndarray:
    """Every cache row's labels: class indices ``[N]``, or the label matrix ``[N, L]``.

    Raises:
        ConfigError: Without a validation split holding two classes (multi-label: a
            label with both values), which ``k`` is chosen on.
    """
    name = data.features.name
    if data.task == MULTILABEL:
        matrix = np.asarray(data.features.label_matrix)
        val = matrix[data.val] != 0
        if data.val.size == 0 or not np.any(val.any(axis=0) & ~val.all(axis=0)):
            raise ConfigError(
                f"{name}: the kNN probe chooses k on a validation split where some label "
                "is both present and absent; make a split with one"
            )
        return matrix
    labels = np.asarray(data.labels)
    if data.val.size == 0 or len(np.unique(labels[data.val])) < 2:
        raise ConfigError(
            f"{name}: the kNN probe chooses k on a validation split with "
            "both classes; make a split with one"
        )
    return labels


def _vote_weights(data: PreparedData) -> np.ndarray:
    """The class weights, or (multi-label) the ``[L, 2]`` per-label weights read off the
    prepared tensors (the ``SplitTensors`` contract: per-entry weights ``[N, L]``)."""
    if data.task != MULTILABEL:
        return data.class_weights
    t = data.tensors(torch.device("cpu"))
    return label_weight_table([(t.y_train, t.w_train), (t.y_val, t.w_val)])


def _info(
    choice: KChoice, opts: KnnOptions, data: PreparedData, checksum: str, task: TaskVotes
) -> dict[str, Any]:
    """The run's ``info`` entries of a kNN probe (``knn.task`` for K classes and
    multi-label data, ``knn.label_weights`` ``[L, 2]`` for the latter)."""
    split_train = np.flatnonzero(np.asarray(data.features.split) == 0)
    subset = not np.array_equal(split_train, data.train)
    extra: dict[str, Any] = {}
    if task.task != BINARY:
        extra["task"] = task.task
    if task.task == MULTILABEL:
        extra["label_weights"] = np.asarray(task.weights, dtype=np.float64).tolist()
    return {
        "solver": "knn",
        # nothing iterates, so nothing can fail to converge (no Adam-curve check, no warning)
        "convergence": {"measure": "none: the kNN probe is not iterative"},
        "knn": {
            "k": choice.k,
            "temperature": opts.temperature,
            "similarity": "cosine",
            "criterion": CRITERION,
            "ks": list(choice.ks),
            "val_auc_by_k": list(choice.val_auc),
            "val_loss_by_k": list(choice.val_loss),
            "n_neighbours": int(data.train.size),
            "neighbour_rows": [int(r) for r in data.train] if subset else "train split",
            "neighbour_checksum": checksum,
            **extra,
        },
    }


def predict_knn(run: Any, embeddings: np.ndarray, device: torch.device | None = None) -> np.ndarray:
    """Score new embeddings with a saved kNN run, against the training rows it used.

    The training embeddings are read again from the cache(s) named in the run's
    ``features_path`` and must match the checksum saved in the run.

    Args:
        run: A kNN :class:`~cactus_features.runfile.RunFile`.
        embeddings: Raw embeddings ``[N, D]`` of the same backbone configuration.
        device: Where to compute (default CPU).

    Returns:
        float64 P(positive class) ``[N]``; for K classes the probability of each class
        ``[N, K]``, for multi-label data the score of each label ``[N, L]``.

    Raises:
        CacheError: If the cache is gone or changed, or the dimension does not match.
    """
    from cactus_features.heads.prepare.data import resolve_features

    meta = run.info.get("knn") or {}
    paths = run.info.get("features_path")
    if not paths or "neighbour_checksum" not in meta:
        raise CacheError(f"{run.name}: the kNN run does not name the cache of its neighbours")
    fs, _ = resolve_features(paths)
    kind = meta.get("task", BINARY)
    truth = fs.labels if kind != MULTILABEL else fs.label_matrix
    if truth is None:
        raise CacheError(f"{paths}: the cache holds no label matrix for this multi-label kNN run")
    rows = meta["neighbour_rows"]
    rows = np.flatnonzero(np.asarray(fs.split) == 0) if rows == "train split" else np.array(rows)
    if rows.size and rows.max() >= len(fs.ids):
        raise CacheError(f"{paths}: the cache has fewer rows than the kNN run's neighbours")
    raw = np.asarray(fs.embeddings[rows])
    if bank_checksum(fs.ids[rows], truth[rows], raw) != meta["neighbour_checksum"]:
        raise CacheError(
            f"{paths}: the cache no longer holds the training rows this kNN run used "
            "(checksum differs); train the kNN probe again"
        )
    emb = np.asarray(embeddings)
    if emb.ndim != 2 or emb.shape[1] != raw.shape[1]:
        raise CacheError(
            f"embeddings of shape {emb.shape} do not fit this kNN run (dim {raw.shape[1]}); "
            f"use features of {run.name}"
        )
    dev = torch.device(device or "cpu")
    standardizer = Standardizer.from_state(run.standardize)

    def prepared(x: np.ndarray) -> torch.Tensor:
        x = np.asarray(x, dtype=np.float32)
        return l2_normalise(standardizer.transform(x) if standardizer else x, dev)

    weights = meta["label_weights"] if kind == MULTILABEL else run.info["class_weights"]
    task = TaskVotes(kind, np.asarray(truth[rows]), np.asarray(weights), float(meta["temperature"]))
    bank_labels = torch.as_tensor(task.gathered, dtype=torch.long, device=dev)
    k = int(meta["k"])
    share = task.score(nearest(prepared(emb), prepared(raw), bank_labels, k), k)
    if kind == BINARY and int(run.info.get("positive_class", 1)) != 1:
        return 1.0 - share
    return share
