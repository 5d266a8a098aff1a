"""K-class metrics from labels ``y [N]`` and probabilities ``P [N, K]``, through one code path.

Every decision-based number comes from one weighted confusion matrix ``C [..., K, K]``
(rows: true class, columns: predicted class = the most probable one); the ranking
numbers (one-vs-rest ROC AUC) from the binary
:func:`~cactus_features.metrics.core.cumulative_counts` of each class against the rest.
Every function accepts optional case weights ``[B, N]`` (bootstrap multiplicities)
and then returns ``[B]`` values, so point estimates and bootstrap replicates are
computed by the same code.

Every reported number is one :class:`ClassMetric` of :data:`MULTICLASS_METRICS`
(overall) or one :class:`PerClassMetric` of :data:`PER_CLASS_METRICS` (one value
per class); the comparison, its bootstrap and every table iterate these.

Conventions, chosen to match scikit-learn's defaults:

* the predicted class is the most probable one; ties go to the lowest class index
  (``numpy.argmax``); top-k counts the true class as found when fewer than ``k``
  classes rank above it, ties ranked by lower index first (scikit-learn's
  ``top_k_accuracy_score`` ranks tied classes by higher index first; the two agree
  whenever the probabilities have no ties);
* per class: precision is 0 when the class is never predicted (scikit-learn's
  ``zero_division=0``); recall is NaN (undefined, scikit-learn: 0 with a warning)
  when the class does not occur; F1 is ``2 tp / (2 tp + fp + fn)``, NaN only when the
  class neither occurs nor is predicted;
* macro averages (balanced accuracy, macro F1, macro ROC AUC) average over the
  classes where the per-class value is defined: balanced accuracy and macro ROC AUC
  over the classes that occur in the (resampled) test set, macro F1 over the classes
  that occur or are predicted. This is scikit-learn's rule for
  ``balanced_accuracy_score`` and ``f1_score(average="macro")`` without ``labels=``;
  ``roc_auc_score(multi_class="ovr", labels=...)`` returns NaN for a test set lacking
  a class instead (and without ``labels=`` refuses it);
* weighted F1 weights each class's F1 by its support (occurrences in the test set);
* log loss is the mean of ``-log p(true class)`` with probabilities clipped to
  ``[eps, 1 - eps]`` (as scikit-learn does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from cactus_features.errors import DataError
from cactus_features.metrics.core import LOG_LOSS_EPS, _div

RANKING_BLOCK_ELEMENTS = 1_000_000
"""Weightings x cases processed at once by :func:`column_ranking` (bounds its memory)."""

PROBABILITY_SUM_TOLERANCE = 1e-3
"""How far from 1 a row of class probabilities may sum (float32 storage, rounding)."""


@dataclass(frozen=True)
class MulticlassCases:
    """The scored cases every K-class metric is computed from, with shared intermediates.

    Attributes:
        y: True class index of each case ``[N]`` (int, in ``[0, K)``).
        proba: Class probabilities ``[N, K]``.
        weights: Optional case weights ``[N]`` or ``[B, N]`` (``None``: each case once).
    """

    y: np.ndarray
    proba: np.ndarray
    weights: np.ndarray | None = None

    @property
    def n_classes(self) -> int:
        """Number of classes ``K``."""
        return int(self.proba.shape[1])

    @cached_property
    def predicted(self) -> np.ndarray:
        """The most probable class of each case ``[N]`` (ties: lowest index)."""
        return np.argmax(self.proba, axis=1)

    @cached_property
    def confusion(self) -> np.ndarray:
        """Weighted confusion counts ``[..., K, K]`` (rows true, columns predicted), float64."""
        k = self.n_classes
        pair = self.y.astype(np.int64) * k + self.predicted
        return weighted_bincount(pair, k * k, self.weights).reshape((*self.total.shape, k, k))

    @cached_property
    def total(self) -> np.ndarray:
        """Total weight of the cases ``[...]``."""
        if self.weights is None:
            return np.asarray(float(len(self.y)))
        return np.asarray(self.weights, dtype=np.float64).sum(axis=-1)

    @property
    def support(self) -> np.ndarray:
        """Occurrences of each true class ``[..., K]``."""
        return self.confusion.sum(axis=-1)

    @property
    def predicted_count(self) -> np.ndarray:
        """How often each class is predicted ``[..., K]``."""
        return self.confusion.sum(axis=-2)

    @property
    def true_positives(self) -> np.ndarray:
        """Correct predictions of each class ``[..., K]``."""
        return np.diagonal(self.confusion, axis1=-2, axis2=-1)

    def mean(self, per_case: np.ndarray) -> np.ndarray:
        """The weighted mean of a per-case quantity ``[N]``, of the leading shape ``[...]``."""
        return weighted_mean(per_case, self.weights)

    @cached_property
    def class_roc_auc(self) -> np.ndarray:
        """One-vs-rest ROC AUC of each class (its probability as the score) ``[..., K]``."""
        is_pos = self.y[:, None] == np.arange(self.n_classes)[None, :]
        return column_roc_auc(is_pos, self.proba, self.weights)


def weighted_bincount(index: np.ndarray, size: int, weights: np.ndarray | None) -> np.ndarray:
    """Total weight of each index value, for one weighting ``[N]`` or many ``[B, N]``.

    Args:
        index: Bin of each case ``[N]`` (int, in ``[0, size)``).
        size: Number of bins.
        weights: ``None`` (each case once), ``[N]`` or ``[B, N]``.

    Returns:
        Float64 totals ``[size]`` or ``[B, size]``; one pass over the weights
        (cases sorted by bin once, then summed per bin with ``reduceat``).
    """
    index = np.asarray(index, dtype=np.int64)
    if weights is None:
        return np.bincount(index, minlength=size).astype(np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim == 1:
        return np.bincount(index, weights=w, minlength=size)
    out = np.zeros((w.shape[0], size), dtype=np.float64)
    if len(index) == 0:
        return out
    order = np.argsort(index, kind="stable")
    sorted_index = index[order]
    starts = np.flatnonzero(np.r_[True, np.diff(sorted_index) != 0])
    out[:, sorted_index[starts]] = np.add.reduceat(w[:, order], starts, axis=1)
    return out


def column_roc_auc(is_pos: np.ndarray, score: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """ROC AUC of each column: its cases' ``is_pos`` ranked by its ``score``, weighted.

    See :func:`column_ranking`; NaN where a column lacks positives or negatives.
    """
    return column_ranking(is_pos, score, weights)[0]


def column_ranking(
    is_pos: np.ndarray,
    score: np.ndarray,
    weights: np.ndarray | None,
    *,
    average_precision: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """ROC AUC (and average precision) of each column, for all weightings at once.

    ROC AUC is the Mann-Whitney statistic ``sum_{i pos, j neg} w_i w_j ([s_i > s_j] +
    [s_i = s_j] / 2) / (W_pos W_neg)`` (ties count one half, like the trapezoidal ROC
    area and scikit-learn). Average precision is scikit-learn's ``sum_k (R_k -
    R_{k-1}) P_k`` over the distinct scores: each positive adds ``w_i / W_pos`` times
    the precision at the lowest score of its tie group (a score whose cases all have
    weight 0 adds nothing). Per column: one sort (independent of the weights), then
    one gather and one cumulative sum of the negatives' (and the positives') integer
    weights in score order, read at the edges of each positive's tie group.

    Args:
        is_pos: Whether each case is positive for each column ``[N, K]`` (bool).
        score: Score of each case for each column ``[N, K]``.
        weights: ``None`` (each case once), ``[N]`` or ``[B, N]`` integer case weights.
        average_precision: Also compute average precision.

    Returns:
        ``(auc, ap)``, each ``[K]`` or ``[B, K]`` (``ap`` is ``None`` unless asked for);
        AUC is NaN where a column lacks positives or negatives, AP where it lacks
        positives.
    """
    is_pos = np.asarray(is_pos, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    n = score.shape[0]
    w = np.ones(n, dtype=np.int64) if weights is None else np.asarray(weights)
    w2 = np.atleast_2d(w)
    # bounded temporaries (a few [block, N] arrays), whatever the number of weightings
    block = max(1, RANKING_BLOCK_ELEMENTS // max(1, n))
    parts = [
        _column_ranking_block(is_pos, score, w2[i : i + block], average_precision)
        for i in range(0, w2.shape[0], block)
    ]
    auc = np.concatenate([p[0] for p in parts])
    ap = np.concatenate([p[1] for p in parts]) if average_precision else None
    if w.ndim == 1:
        return auc[0], None if ap is None else ap[0]
    return auc, ap


def _column_ranking_block(
    is_pos: np.ndarray, score: np.ndarray, w2: np.ndarray, average_precision: bool
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`column_ranking` for weights ``[b, N]``."""
    n, k = score.shape
    # integer weights: exact sums; int32 halves the memory traffic while totals fit
    dtype = np.int32 if n == 0 or w2.sum(axis=1).max() < 2**31 else np.int64
    w2 = w2.astype(dtype, copy=False)
    b = w2.shape[0]
    auc = np.full((b, k), np.nan)
    ap = np.full((b, k), np.nan) if average_precision else None
    cum_neg = np.zeros((b, n + 1), dtype=dtype)  # [:, j]: weight of the first j negatives
    cum_pos = np.zeros((b, n + 1), dtype=dtype)  # [:, j]: weight of the first j positives
    for c in range(k):
        order = np.argsort(-score[:, c], kind="stable")
        s = score[order, c]
        pos = is_pos[order, c]
        new_group = np.r_[True, s[1:] != s[:-1]]
        start = np.flatnonzero(new_group)
        stop = np.r_[start[1:], n]
        at = np.flatnonzero(pos)
        g = (np.cumsum(new_group) - 1)[at]  # tie group of each positive
        negatives_before = np.r_[0, np.cumsum(~pos)]  # among the first j cases in score order
        n_neg = int(negatives_before[-1])
        np.cumsum(np.take(w2, order[~pos], axis=1), axis=1, out=cum_neg[:, 1 : n_neg + 1])
        neg_above = cum_neg[:, negatives_before[stop[g]]].astype(np.float64)  # score >= s_i
        neg_strictly_above = cum_neg[:, negatives_before[start[g]]].astype(np.float64)
        total_neg = cum_neg[:, n_neg].astype(np.float64)
        wp = np.take(w2, order[at], axis=1)
        total_pos = wp.sum(axis=1, dtype=np.float64)
        wp = wp.astype(np.float64)
        lower = total_neg[:, None] - 0.5 * (neg_above + neg_strictly_above)  # ties: one half
        den = total_pos * total_neg
        with np.errstate(invalid="ignore", divide="ignore"):
            auc[:, c] = np.where(den > 0, np.einsum("bp,bp->b", lower, wp) / den, np.nan)
        if ap is None:
            continue
        positives_before = np.r_[0, np.cumsum(pos)]
        np.cumsum(np.take(w2, order[at], axis=1), axis=1, out=cum_pos[:, 1 : len(at) + 1])
        tp = cum_pos[:, positives_before[stop[g]]].astype(np.float64)  # at the group's end
        predicted = tp + neg_above
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(predicted > 0, tp / np.where(predicted > 0, predicted, 1.0), 0.0)
            value = np.einsum("bp,bp->b", precision, wp) / total_pos
        ap[:, c] = np.where(total_pos > 0, np.minimum(value, 1.0), np.nan)
    return auc, ap if ap is not None else auc


def weighted_mean(per_case: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """Mean of a per-case quantity ``[N]`` under case weights ``[N]`` / ``[B, N]`` (or none)."""
    per_case = np.asarray(per_case, dtype=np.float64)
    if weights is None:
        return np.asarray(per_case.mean() if len(per_case) else np.nan)
    w = np.asarray(weights, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (w @ per_case) / w.sum(axis=-1)


def top_k_correct(y: np.ndarray, proba: np.ndarray, k: int) -> np.ndarray:
    """Whether the true class is among the ``k`` most probable ones ``[N]``.

    Ties are ranked by lower class index first (consistent with ``argmax``).
    """
    y = np.asarray(y, dtype=np.int64)
    p_true = proba[np.arange(len(y)), y][:, None]
    index = np.arange(proba.shape[1])[None, :]
    above = (proba > p_true) | ((proba == p_true) & (index < y[:, None]))
    return above.sum(axis=1) < k


def log_loss_terms(y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Per-case ``-log p(true class)`` with clipped probabilities ``[N]``."""
    p = proba[np.arange(len(y)), np.asarray(y, dtype=np.int64)]
    return -np.log(np.clip(p, LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS))


def nan_mean(x: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Mean over the last axis ignoring NaN (NaN when nothing is defined), no warnings."""
    x = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(x)
    w = ok.astype(np.float64) if weights is None else np.where(ok, weights, 0.0)
    num = np.sum(np.where(ok, x, 0.0) * w, axis=-1)
    den = np.sum(w, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def class_precision(c: MulticlassCases) -> np.ndarray:
    """Per-class precision ``tp / predicted`` (0 when never predicted) ``[..., K]``."""
    return _div(c.true_positives, c.predicted_count, undefined=0.0)


def class_recall(c: MulticlassCases) -> np.ndarray:
    """Per-class recall ``tp / support`` (NaN when the class does not occur) ``[..., K]``."""
    return _div(c.true_positives, c.support, undefined=np.nan)


def class_f1(c: MulticlassCases) -> np.ndarray:
    """Per-class F1 ``2 tp / (support + predicted)`` (NaN when both are 0) ``[..., K]``."""
    return _div(2.0 * c.true_positives, c.support + c.predicted_count, undefined=np.nan)


def class_roc_auc(c: MulticlassCases) -> np.ndarray:
    """Per-class one-vs-rest ROC AUC (NaN when the class or its rest is absent) ``[..., K]``."""
    return c.class_roc_auc


def _accuracy(c: MulticlassCases) -> np.ndarray:
    return _div(np.trace(c.confusion, axis1=-2, axis2=-1), c.total, undefined=np.nan)


def _top5(c: MulticlassCases) -> np.ndarray:
    return c.mean(top_k_correct(c.y, c.proba, 5))


def _weighted_f1(c: MulticlassCases) -> np.ndarray:
    f1 = np.nan_to_num(class_f1(c), nan=0.0)  # NaN only where support (the weight) is 0
    return _div(np.sum(f1 * c.support, axis=-1), c.total, undefined=np.nan)


def _log_loss(c: MulticlassCases) -> np.ndarray:
    return c.mean(log_loss_terms(c.y, c.proba))


@dataclass(frozen=True)
class ClassMetric:
    """One overall metric of a K-class or multi-label task.

    Attributes:
        name: Key in every result dictionary, stem of its CSV columns.
        label: Readable name for tables and figures.
        short_label: Column header of the terminal table.
        compute: The value from the cases, of the leading shape of their weights.
        lower_is_better: Whether a smaller value is better.
        min_classes: Reported only with more than this many classes (top-5: 5).
    """

    name: str
    label: str
    short_label: str
    compute: Callable[[Any], np.ndarray]
    lower_is_better: bool = False
    min_classes: int = 0

    def applies(self, n_classes: int) -> bool:
        """Whether the metric is reported for ``n_classes`` classes."""
        return n_classes > self.min_classes


@dataclass(frozen=True)
class PerClassMetric:
    """One metric reported per class (the per-class table).

    Attributes:
        name: Key in the per-class results and CSV.
        label: Readable name.
        compute: Values of every class ``[..., K]``.
    """

    name: str
    label: str
    compute: Callable[[Any], np.ndarray]


MULTICLASS_METRICS: tuple[ClassMetric, ...] = (
    ClassMetric("accuracy", "Top-1 accuracy", "Acc", _accuracy),
    ClassMetric("top5_accuracy", "Top-5 accuracy", "Top5", _top5, min_classes=5),
    ClassMetric(
        "balanced_accuracy",
        "Balanced accuracy",
        "BalAcc",
        lambda c: nan_mean(class_recall(c)),
    ),
    ClassMetric("macro_f1", "Macro F1", "MacroF1", lambda c: nan_mean(class_f1(c))),
    ClassMetric("weighted_f1", "Weighted F1", "WtdF1", _weighted_f1),
    ClassMetric(
        "macro_roc_auc",
        "Macro one-vs-rest ROC AUC",
        "MacroAUC",
        lambda c: nan_mean(class_roc_auc(c)),
    ),
    ClassMetric("log_loss", "Log loss", "LogLoss", _log_loss, lower_is_better=True),
)
"""Every overall K-class metric, in table order: the one place to add one."""

PER_CLASS_METRICS: tuple[PerClassMetric, ...] = (
    PerClassMetric("precision", "Precision", class_precision),
    PerClassMetric("recall", "Recall", class_recall),
    PerClassMetric("f1", "F1", class_f1),
    PerClassMetric("roc_auc", "ROC AUC (one vs rest)", class_roc_auc),
)
"""Every per-class metric of the per-class table (support is reported beside them)."""


def multiclass_metrics(
    y: np.ndarray, proba: np.ndarray, weights: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Every overall and per-class metric, optionally for many weightings at once.

    Args:
        y: True class of each case ``[N]``.
        proba: Class probabilities ``[N, K]``.
        weights: Optional case weights ``[N]`` or ``[B, N]``.

    Returns:
        ``{name: value [...]}`` for every applicable :data:`MULTICLASS_METRICS` entry,
        ``{"class_<name>": values [..., K]}`` for every :data:`PER_CLASS_METRICS`
        entry, and ``"class_support"`` ``[..., K]``.
    """
    cases = MulticlassCases(np.asarray(y, dtype=np.int64), np.asarray(proba), weights)
    return registry_values(cases, MULTICLASS_METRICS, PER_CLASS_METRICS)


def registry_values(
    cases: Any, overall: tuple[ClassMetric, ...], per_class: tuple[PerClassMetric, ...]
) -> dict[str, np.ndarray]:
    """Every applicable entry of an overall and a per-class registry on the same cases.

    Args:
        cases: :class:`MulticlassCases` or ``MultilabelCases`` (with ``n_classes`` and
            ``support``).
        overall: The overall metrics.
        per_class: The per-class metrics.

    Returns:
        ``{name: value}``, ``{"class_<name>": values [..., K]}`` and ``"class_support"``.
    """
    out = {m.name: m.compute(cases) for m in overall if m.applies(cases.n_classes)}
    out.update({f"class_{m.name}": m.compute(cases) for m in per_class})
    out["class_support"] = cases.support
    return out


def confusion_matrix(y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """The K x K confusion counts (rows true, columns predicted) ``[K, K]`` int64."""
    cases = MulticlassCases(np.asarray(y, dtype=np.int64), np.asarray(proba))
    return cases.confusion.astype(np.int64)


def row_normalised(counts: np.ndarray) -> np.ndarray:
    """Each row divided by its total: the share of each true class (0 for an absent class)."""
    counts = np.asarray(counts, dtype=np.float64)
    totals = counts.sum(axis=-1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def check_class_scores(
    y: np.ndarray, proba: np.ndarray, n_classes: int, *, where: str, multilabel: bool = False
) -> None:
    """Refuse labels or probabilities that cannot be K-class (or multi-label) predictions.

    Args:
        y: Labels ``[N]`` (class indices) or ``[N, L]`` (0/1, multi-label).
        proba: Probabilities ``[N, K]``.
        n_classes: Number of class names ``K``.
        where: The run, for the message.
        multilabel: Whether rows are independent probabilities (no sum-to-one check).

    Raises:
        DataError: Naming the run and what is wrong.
    """
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != n_classes:
        raise DataError(
            f"{where}: scores have shape {p.shape}, expected [N, {n_classes}] "
            f"(one column per class name); the run file is damaged or was written wrongly"
        )
    bad = ~np.isfinite(p) | (p < 0) | (p > 1)
    if bad.any():
        raise DataError(
            f"{where}: {int(bad.any(axis=1).sum())} of {len(p)} rows of scores are not "
            "probabilities in [0, 1]; the run file is damaged or was written wrongly"
        )
    if multilabel:
        labels = np.asarray(y)
        if labels.shape != p.shape or not np.isin(labels, (0, 1)).all():
            raise DataError(
                f"{where}: multi-label targets must be 0/1 of shape {p.shape}, "
                f"got shape {labels.shape}"
            )
        return
    off = np.abs(p.sum(axis=1) - 1.0) > PROBABILITY_SUM_TOLERANCE
    if off.any():
        raise DataError(
            f"{where}: {int(off.sum())} of {len(p)} rows of class probabilities do not sum to 1 "
            f"(tolerance {PROBABILITY_SUM_TOLERANCE:g}); save softmax probabilities, not logits"
        )
    labels = np.asarray(y)
    if labels.ndim != 1 or len(labels) != len(p) or ((labels < 0) | (labels >= n_classes)).any():
        raise DataError(
            f"{where}: labels must be class indices in [0, {n_classes}) for each of "
            f"{len(p)} rows; the run file is damaged"
        )
