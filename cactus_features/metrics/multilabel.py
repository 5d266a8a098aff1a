"""Multi-label metrics from targets ``Y [N, L]`` (0/1) and probabilities ``P [N, L]``.

Each label is a binary problem scored by its own probability: ROC AUC and average
precision come from :func:`~cactus_features.metrics.multiclass.column_ranking` (one
sort per label, one cumulative sum per label for all resamples), per label and once
over all ``N x L`` (case, label) pairs for the micro average. Every function accepts optional
case weights ``[B, N]`` (bootstrap multiplicities; a case's weight applies to all of
its labels), so point estimates and replicates share one code path.

The metrics are :class:`~cactus_features.metrics.multiclass.ClassMetric` entries of
:data:`MULTILABEL_METRICS` (overall) and
:class:`~cactus_features.metrics.multiclass.PerClassMetric` entries of
:data:`PER_LABEL_METRICS` (one value per label).

Conventions:

* average precision as scikit-learn's ``average_precision_score``: ``sum_k (R_k -
  R_{k-1}) P_k`` over the distinct scores;
* macro mAP and macro ROC AUC average over the labels with at least one positive
  (and, for AUC, one negative) in the (resampled) test set. scikit-learn's
  ``average="macro"`` instead counts a label without positives as AP 0 (with a
  warning) and returns NaN for the macro ROC AUC; the two agree when every label
  occurs and is absent somewhere;
* micro mAP is the average precision of all (case, label) pairs pooled;
* exact match is the share of cases whose every label is right at threshold 0.5
  (``p >= 0.5`` is predicted present; scikit-learn's ``accuracy_score`` on
  indicator matrices).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from cactus_features.metrics.multiclass import (
    ClassMetric,
    PerClassMetric,
    column_ranking,
    nan_mean,
    registry_values,
    weighted_mean,
)

DECISION_THRESHOLD = 0.5
"""A label is predicted present when its probability is at least this."""


@dataclass(frozen=True)
class MultilabelCases:
    """The scored cases every multi-label metric is computed from.

    Attributes:
        targets: Whether each label is present in each case ``[N, L]`` (bool).
        proba: Probability of each label ``[N, L]``.
        weights: Optional case weights ``[N]`` or ``[B, N]``.
    """

    targets: np.ndarray
    proba: np.ndarray
    weights: np.ndarray | None = None

    @property
    def n_classes(self) -> int:
        """Number of labels ``L``."""
        return int(self.proba.shape[1])

    @cached_property
    def _label_ranking(self) -> tuple[np.ndarray, np.ndarray]:
        auc, ap = column_ranking(self.targets, self.proba, self.weights, average_precision=True)
        assert ap is not None
        return auc, ap

    @property
    def label_roc_auc(self) -> np.ndarray:
        """ROC AUC of each label ``[..., L]`` (NaN without positives or negatives)."""
        return self._label_ranking[0]

    @property
    def label_average_precision(self) -> np.ndarray:
        """Average precision of each label ``[..., L]`` (NaN without positives)."""
        return self._label_ranking[1]

    @cached_property
    def micro_average_precision(self) -> np.ndarray:
        """Average precision of all (case, label) pairs pooled (row-major order) ``[...]``."""
        w = None if self.weights is None else np.repeat(self.weights, self.n_classes, axis=-1)
        _, ap = column_ranking(
            self.targets.reshape(-1, 1), self.proba.reshape(-1, 1), w, average_precision=True
        )
        assert ap is not None
        return ap[..., 0]

    @cached_property
    def support(self) -> np.ndarray:
        """Positives of each label ``[..., L]`` (weighted)."""
        t = self.targets.astype(np.float64)
        if self.weights is None:
            return t.sum(axis=0)
        return np.asarray(self.weights, dtype=np.float64) @ t


def label_average_precision(c: MultilabelCases) -> np.ndarray:
    """Average precision of each label (NaN without positives) ``[..., L]``."""
    return c.label_average_precision


def label_roc_auc(c: MultilabelCases) -> np.ndarray:
    """ROC AUC of each label (NaN without positives or negatives) ``[..., L]``."""
    return c.label_roc_auc


def exact_match_correct(targets: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Whether every label of a case is right at :data:`DECISION_THRESHOLD` ``[N]``."""
    return np.all((np.asarray(proba) >= DECISION_THRESHOLD) == np.asarray(targets, bool), axis=1)


MULTILABEL_METRICS: tuple[ClassMetric, ...] = (
    ClassMetric("macro_map", "Macro mAP", "mAP", lambda c: nan_mean(label_average_precision(c))),
    ClassMetric("micro_map", "Micro mAP", "microAP", lambda c: c.micro_average_precision),
    ClassMetric("macro_roc_auc", "Macro ROC AUC", "MacroAUC", lambda c: nan_mean(label_roc_auc(c))),
    ClassMetric(
        "exact_match",
        "Exact match (threshold 0.5)",
        "Exact",
        lambda c: weighted_mean(exact_match_correct(c.targets, c.proba), c.weights),
    ),
)
"""Every overall multi-label metric, in table order: the one place to add one."""

PER_LABEL_METRICS: tuple[PerClassMetric, ...] = (
    PerClassMetric("average_precision", "Average precision", label_average_precision),
    PerClassMetric("roc_auc", "ROC AUC", label_roc_auc),
)
"""Every per-label metric of the per-label table (support is reported beside them)."""


def multilabel_metrics(
    targets: np.ndarray, proba: np.ndarray, weights: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Every overall and per-label metric, optionally for many weightings at once.

    Args:
        targets: 0/1 targets ``[N, L]``.
        proba: Label probabilities ``[N, L]``.
        weights: Optional case weights ``[N]`` or ``[B, N]``.

    Returns:
        ``{name: value [...]}`` for every :data:`MULTILABEL_METRICS` entry,
        ``{"class_<name>": values [..., L]}`` for every :data:`PER_LABEL_METRICS`
        entry, and ``"class_support"`` (positives per label) ``[..., L]``.
    """
    cases = MultilabelCases(np.asarray(targets, dtype=bool), np.asarray(proba), weights)
    return registry_values(cases, MULTILABEL_METRICS, PER_LABEL_METRICS)
