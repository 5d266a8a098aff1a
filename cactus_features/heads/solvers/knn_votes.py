"""kNN votes for K classes and for multi-label data, and how a ``k`` is judged on them.

The neighbours (cosine similarities ``s_j``, most similar first) come from
:func:`~cactus_features.heads.solvers.knn.nearest`; each of the first ``k`` votes
with ``v_j = exp(s_j / T)``, as in the binary probe.

* **K classes.** Each vote also carries the class weight of its neighbour's class,
  and a query's probabilities are the classes' shares of the weighted votes::

      p_c = sum_{j, y_j = c} c_{y_j} v_j / sum_j c_{y_j} v_j        (rows sum to 1)

  For two classes this is the binary probe's score ``p_1``.
* **Multi-label.** Each label ``l`` is a binary vote of its own: a neighbour's
  vote for label ``l`` carries the weight of its own entry, ``W[j, l]`` (the
  label's positive weight when the neighbour has the label, its negative weight
  when not: the per-entry weights of the prepared data), and the score is the
  share of those votes cast by neighbours having the label::

      p_l = sum_j W[j, l] Y[j, l] v_j / sum_j W[j, l] v_j

  so each label's score is what the binary probe gives for that label alone.

``k`` is chosen by the task's ``val_auc`` (macro one-vs-rest AUC over the classes
present in validation; mean per-label AUC over the labels with both values
there), ties broken by the lower ``val_loss`` (class-weighted mean
cross-entropy; mean over labels of the weighted binary cross-entropy), then by the
smaller ``k``. Vote shares of exactly 0 are clipped to :data:`PROB_EPS` for the
losses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cactus_features.errors import ConfigError
from cactus_features.heads.fastpath.auc import roc_auc

PROB_EPS = 1e-7
"""Vote shares are clipped to ``[eps, 1 - eps]`` for the log loss."""
LABEL_BLOCK_ELEMENTS = 4_000_000
"""Multi-label votes gather ``[queries, k, L]`` blocks of at most this many entries."""


def votes(sims: torch.Tensor, k: int, temperature: float) -> torch.Tensor:
    """``exp((s_j - s_1) / T)`` of the first ``k`` neighbours, float64 ``[Nq, k]``.

    The same shares as ``exp(s_j / T)`` (the common factor cancels), without overflow.
    """
    s = sims[:, :k].double()
    return torch.exp((s - s[:, :1]) / temperature)


def class_vote_shares(
    sims: torch.Tensor,
    labels: torch.Tensor,
    k: int,
    temperature: float,
    class_weights: Sequence[float] | np.ndarray,
) -> np.ndarray:
    """Each class's share of the class-weighted votes of the first ``k`` neighbours.

    Args:
        sims: Similarities of each query's neighbours ``[Nq, >= k]``, most similar first.
        labels: Class index of each neighbour ``[Nq, >= k]``.
        k: Neighbours that vote.
        temperature: Vote temperature ``T``.
        class_weights: Weight of each class's votes ``[K]``, in class-index order.

    Returns:
        float64 probabilities ``[Nq, K]`` (rows sum to 1).
    """
    v = votes(sims, k, temperature)
    cw = torch.as_tensor(np.asarray(class_weights, dtype=np.float64), device=v.device)
    lab = labels[:, :k]
    v = v * cw[lab]
    out = torch.zeros((v.shape[0], len(cw)), dtype=torch.float64, device=v.device)
    out.scatter_add_(1, lab, v)
    return (out / out.sum(dim=1, keepdim=True)).cpu().numpy()


def label_vote_shares(
    sims: torch.Tensor,
    index: torch.Tensor,
    k: int,
    temperature: float,
    label_matrix: torch.Tensor,
    weights: torch.Tensor,
) -> np.ndarray:
    """Each label's share of its weighted votes cast by neighbours having it.

    Args:
        sims: Similarities of each query's neighbours ``[Nq, >= k]``, most similar first.
        index: Bank position of each neighbour ``[Nq, >= k]``.
        k: Neighbours that vote.
        temperature: Vote temperature ``T``.
        label_matrix: The bank rows' 0/1 labels ``[Nb, L]``.
        weights: The bank rows' per-entry weights ``[Nb, L]``.

    Returns:
        float64 scores ``[Nq, L]`` in ``[0, 1]``.
    """
    y = label_matrix.to(device=sims.device, dtype=torch.float64)
    w = weights.to(device=sims.device, dtype=torch.float64)
    wy = w * y
    n_q, n_l = sims.shape[0], y.shape[1]
    out = torch.empty((n_q, n_l), dtype=torch.float64, device=sims.device)
    block = max(1, LABEL_BLOCK_ELEMENTS // max(1, k * n_l))
    for a in range(0, n_q, block):
        b = min(n_q, a + block)
        v = votes(sims[a:b], k, temperature)
        nb = index[a:b, :k]
        num = torch.einsum("qj,qjl->ql", v, wy[nb])
        out[a:b] = num / torch.einsum("qj,qjl->ql", v, w[nb])
    return out.cpu().numpy()


def macro_auc(proba: np.ndarray, labels: np.ndarray) -> float:
    """Mean one-vs-rest ROC AUC over the classes present (with other classes) in ``labels``.

    Args:
        proba: Probabilities ``[N, K]``.
        labels: Class indices ``[N]``.

    Returns:
        The macro AUC (NaN when no class has both values).
    """
    p = torch.from_numpy(np.asarray(proba, dtype=np.float64))
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    return _finite_mean([float(roc_auc(p[:, c], y == c)) for c in range(p.shape[1])])


def class_log_loss(
    proba: np.ndarray, labels: np.ndarray, class_weights: Sequence[float] | np.ndarray
) -> float:
    """Class-weighted mean cross-entropy ``-log p_{y_i}`` (shares clipped at :data:`PROB_EPS`)."""
    y = np.asarray(labels, dtype=np.int64)
    p = np.asarray(proba, dtype=np.float64)[np.arange(len(y)), y]
    w = np.asarray(class_weights, dtype=np.float64)[y]
    return float((w * -np.log(np.clip(p, PROB_EPS, 1.0))).sum() / w.sum())


def mean_label_auc(scores: np.ndarray, label_matrix: np.ndarray) -> float:
    """Mean per-label ROC AUC over the labels with both values in ``label_matrix`` ``[N, L]``."""
    s = torch.from_numpy(np.asarray(scores, dtype=np.float64))
    y = torch.as_tensor(np.asarray(label_matrix) != 0)
    return _finite_mean([float(roc_auc(s[:, j], y[:, j])) for j in range(s.shape[1])])


def label_log_loss(scores: np.ndarray, label_matrix: np.ndarray, weights: np.ndarray) -> float:
    """Mean over labels of each label's weighted mean binary cross-entropy.

    Args:
        scores: Scores ``[N, L]`` (clipped to ``[eps, 1 - eps]``).
        label_matrix: 0/1 labels ``[N, L]``.
        weights: Per-entry weights ``[N, L]``.

    Returns:
        ``mean_l sum_i W_il BCE_il / sum_i W_il`` (labels with no weight left out).
    """
    p = np.clip(np.asarray(scores, dtype=np.float64), PROB_EPS, 1.0 - PROB_EPS)
    y = np.asarray(label_matrix) != 0
    w = np.asarray(weights, dtype=np.float64)
    terms = np.where(y, -np.log(p), -np.log1p(-p))
    total = w.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_label = (w * terms).sum(axis=0) / total
    return _finite_mean(per_label[total > 0].tolist())


def label_weight_table(
    pairs: Sequence[tuple[torch.Tensor | np.ndarray, torch.Tensor | np.ndarray]],
) -> np.ndarray:
    """Per-label ``(negative, positive)`` weights read off multi-label tensors.

    Args:
        pairs: ``(y, w)`` of some rows: 0/1 labels ``[N, L]`` and the per-entry
            weights ``[N, L]`` of the prepared data (its ``SplitTensors`` contract).

    Returns:
        float64 ``[L, 2]``: column 0 the weight of a label's negative entries, column 1
        of its positive ones (0 where no entry has that value).

    Raises:
        ConfigError: If the tensors are not ``[N, L]`` or a label's entries of one value
            carry different weights (so they are not per-label weights).
    """
    ys = [np.asarray(torch.as_tensor(y).cpu(), dtype=np.float64) for y, _ in pairs]
    ws = [np.asarray(torch.as_tensor(w).cpu(), dtype=np.float64) for _, w in pairs]
    if any(y.ndim != 2 or y.shape != w.shape for y, w in zip(ys, ws, strict=True)):
        raise ConfigError(
            "the kNN probe on multi-label data needs [N, L] label and weight tensors from the "
            "prepared data; this version prepares single-label data only"
        )
    y, w = np.concatenate(ys), np.concatenate(ws)
    table = np.zeros((y.shape[1], 2))
    for value in (0, 1):
        has = y == value
        # per label: the largest and smallest weight of its entries with this value
        high = np.where(has, w, -np.inf).max(axis=0)
        low = np.where(has, w, np.inf).min(axis=0)
        present = has.any(axis=0)
        if np.any(present & (high != low)):
            raise ConfigError(
                "multi-label entry weights differ within a label; the kNN probe needs one "
                "weight per label and value"
            )
        table[:, value] = np.where(present, high, 0.0)
    return table


def entry_weights(label_matrix: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Per-entry weights ``[N, L]`` of 0/1 labels under a ``[L, 2]`` weight table."""
    y = (np.asarray(label_matrix) != 0).astype(np.int64)
    return np.take_along_axis(np.asarray(table, dtype=np.float64).T, y, axis=0)


@dataclass(frozen=True)
class KChoice:
    """The choice of ``k`` on the validation split.

    Attributes:
        k: The chosen ``k``.
        ks: The candidates tried.
        val_auc: Validation AUC of each candidate.
        val_loss: Weighted validation log loss of each candidate.
    """

    k: int
    ks: tuple[int, ...]
    val_auc: tuple[float, ...]
    val_loss: tuple[float, ...]

    @property
    def index(self) -> int:
        """Position of the chosen ``k`` among the candidates."""
        return self.ks.index(self.k)


def choose_k_by(ks: Sequence[int], judge: Callable[[int], tuple[float, float]]) -> KChoice:
    """The ``k`` with the highest validation AUC (ties: lower loss, then smaller ``k``).

    Args:
        ks: Candidates, ascending.
        judge: ``judge(k)`` gives ``(val_auc, val_loss)`` of the scores with ``k`` votes.

    Returns:
        The chosen ``k`` and every candidate's validation scores.
    """
    aucs, losses = [], []
    for k in ks:
        auc, loss = judge(k)
        aucs.append(auc)
        losses.append(loss)
    best = min(range(len(ks)), key=lambda i: (-aucs[i], losses[i], ks[i]))
    return KChoice(int(ks[best]), tuple(int(k) for k in ks), tuple(aucs), tuple(losses))


def _finite_mean(values: Sequence[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")
