"""The results of a K-class or multi-label comparison, as data.

Rendering lives in :mod:`cactus_features.report`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cactus_features.metrics.results import Backbone, EfficiencyRow, Estimate
from cactus_features.metrics.stats import McNemarResult


@dataclass(frozen=True)
class ClassMetricRow:
    """Every overall metric of one backbone, with CIs.

    Attributes:
        backbone: The backbone's display label.
        metrics: :class:`~cactus_features.metrics.results.Estimate` by metric name
            (the task's registry, :attr:`ClassComparison.metric_names`).
    """

    backbone: str
    metrics: dict[str, Estimate]


@dataclass(frozen=True)
class PerClassRow:
    """One class (or label) of one backbone: support and per-class metrics with CIs.

    Attributes:
        backbone: The backbone's display label.
        class_index: Index of the class.
        class_name: Name of the class.
        support: Test cases of the class (multilabel: cases with the label).
        metrics: :class:`~cactus_features.metrics.results.Estimate` by per-class metric name.
    """

    backbone: str
    class_index: int
    class_name: str
    support: int
    metrics: dict[str, Estimate]


@dataclass(frozen=True)
class ClassPairwiseRow:
    """Differences ``a - b`` between two backbones, with their paired tests.

    Attributes:
        a: First backbone's label.
        b: Second backbone's label.
        differences: ``metric(a) - metric(b)`` with paired bootstrap CIs, by metric.
        p_values: Two-sided paired-bootstrap p-value of each difference
            (:func:`~cactus_features.metrics.stats.bootstrap_p_value`; NaN without
            bootstrap); this is the test of the macro ROC AUC (and mAP) differences.
        mcnemar: McNemar's exact test on per-image correctness: top-1 correct
            (multiclass) or all labels right at 0.5 (multilabel, exact match).
    """

    a: str
    b: str
    differences: dict[str, Estimate]
    p_values: dict[str, float]
    mcnemar: McNemarResult


@dataclass
class ClassComparison:
    """Everything a K-class or multi-label comparison computed, as data.

    Attributes:
        task: ``"multiclass"`` or ``"multilabel"``.
        backbones: The compared runs (``test_score`` holds the aligned ``[N, K]``
            probabilities; ``thresholds`` is empty: the decision is the most probable
            class, or ``p >= 0.5`` per label).
        metrics: One row per backbone (overall metrics).
        per_class: One row per backbone per class, backbones in order.
        pairwise: One row per pair of backbones.
        efficiency: One row per backbone.
        confusion: K x K test confusion counts by backbone label (rows true, columns
            predicted; multiclass only).
        metric_names: The overall metrics reported, in table order.
        per_class_names: The per-class metrics reported, in table order.
        class_names: All class (label) names in index order.
        test_ids: The common test ids, in the order scores are aligned to.
        test_labels: True class ``[N]`` or 0/1 targets ``[N, L]``, in that order.
        n_bootstrap: Bootstrap resamples (0: no intervals).
        seed: Bootstrap seed.
        ci: Interval coverage, e.g. 0.95.
        degenerate_resamples: Resamples lacking a class (label) of the test set;
            macro averages on them average the classes that remain.
        notes: Remarks for the reader.
    """

    task: str
    backbones: list[Backbone]
    metrics: list[ClassMetricRow]
    per_class: list[PerClassRow]
    pairwise: list[ClassPairwiseRow]
    efficiency: list[EfficiencyRow]
    confusion: dict[str, np.ndarray]
    metric_names: list[str]
    per_class_names: list[str]
    class_names: list[str]
    test_ids: np.ndarray
    test_labels: np.ndarray
    n_bootstrap: int
    seed: int
    ci: float
    degenerate_resamples: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def n_test(self) -> int:
        """Number of test cases compared."""
        return len(self.test_ids)

    @property
    def n_classes(self) -> int:
        """Number of classes (labels)."""
        return len(self.class_names)

    @property
    def support(self) -> np.ndarray:
        """Test cases of each class (multilabel: with each label) ``[K]``."""
        if self.task == "multilabel":
            return np.asarray(self.test_labels).sum(axis=0).astype(np.int64)
        return np.bincount(np.asarray(self.test_labels), minlength=self.n_classes)

    def row(self, backbone: str) -> ClassMetricRow:
        """The overall metric row of one backbone (by label)."""
        for r in self.metrics:
            if r.backbone == backbone:
                return r
        raise KeyError(f"no metrics for {backbone!r}")

    def classes_of(self, backbone: str) -> list[PerClassRow]:
        """The per-class rows of one backbone, in class order."""
        return [r for r in self.per_class if r.backbone == backbone]
