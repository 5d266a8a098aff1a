"""The results of a comparison, as data (rendering lives in :mod:`cactus_features.report`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cactus_features.metrics.core import ConfusionMatrix, ThresholdResult
from cactus_features.metrics.stats import DeLongResult, McNemarResult


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its bootstrap confidence interval.

    Attributes:
        value: The estimate on the full test set.
        low: Lower end of the interval (NaN without bootstrap).
        high: Upper end of the interval (NaN without bootstrap).
    """

    value: float
    low: float = math.nan
    high: float = math.nan


@dataclass
class Backbone:
    """One compared run, with its test scores aligned to the comparison's test ids.

    Attributes:
        label: Unique display label (``"resnet50@224 (random init)"``).
        name: ``backbone_name`` from the run info.
        path: The run file, if it was read from disk.
        weights: ``weights_label`` from the run info, if recorded.
        random_init: Whether the backbone was randomly initialised.
        thresholds: Decision threshold by rule name.
        test_score: Test scores in the order of :attr:`Comparison.test_ids`.
        split_sizes: Number of predictions per split (``train``, ``val``, ``test``).
        history: Per-epoch curves (``train_loss``, ``val_loss``, ``val_auc``).
        info: The run's full ``info`` dictionary.
        config: The run's head configuration.
    """

    label: str
    name: str
    path: Path | None
    weights: str | None
    random_init: bool
    thresholds: dict[str, float]
    test_score: np.ndarray
    split_sizes: dict[str, int]
    history: dict[str, np.ndarray] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MetricRow:
    """Every metric of one backbone at one threshold rule, with CIs.

    Attributes:
        backbone: The backbone's display label.
        rule: Threshold rule name (``"0.5"``, ``"val"``, ...).
        threshold: Threshold applied to the test scores.
        confusion: The test confusion matrix the threshold metrics come from.
        metrics: :class:`Estimate` by metric name (see :data:`METRIC_NAMES`).
    """

    backbone: str
    rule: str
    threshold: float
    confusion: ConfusionMatrix
    metrics: dict[str, Estimate]


@dataclass(frozen=True)
class PairwiseRow:
    """Differences ``a - b`` between two backbones at one threshold rule.

    Attributes:
        rule: Threshold rule name.
        a: First backbone's label.
        b: Second backbone's label.
        differences: ``metric(a) - metric(b)`` with paired bootstrap CIs, by metric.
        delong: DeLong's test of the AUC difference (independent of the threshold).
        mcnemar: McNemar's exact test of the accuracy difference at this rule.
    """

    rule: str
    a: str
    b: str
    differences: dict[str, Estimate]
    delong: DeLongResult
    mcnemar: McNemarResult


@dataclass(frozen=True)
class EfficiencyRow:
    """Cost figures of one backbone as recorded in its run file (``None`` when absent).

    Attributes:
        backbone: Display label.
        weights: Weights label (``"IMAGENET1K_V2"``, ``"random init"``, ...).
        params: Backbone parameters.
        gflops: GFLOPs per image at the extraction resolution.
        resolution: Extraction resolution in pixels.
        images_per_second: Extraction throughput.
        extract_seconds: Extraction wall time.
        train_seconds: Head training wall time, without one-off kernel compilation or
            loading (runs made before that was split out include it).
        dim: Embedding dimension.
        epochs_run: Head training epochs run.
        best_epoch: Epoch whose head was kept.
        one_off_seconds: One-off kernel compile/load time of the run's process, paid by
            its first head (``None`` when not recorded).
    """

    backbone: str
    weights: str | None
    params: float | None
    gflops: float | None
    resolution: float | None
    images_per_second: float | None
    extract_seconds: float | None
    train_seconds: float | None
    dim: float | None
    epochs_run: float | None
    best_epoch: float | None
    one_off_seconds: float | None = None


@dataclass(frozen=True)
class ProtocolRow:
    """How one backbone's head was trained and chosen, as recorded in its run file.

    Attributes:
        backbone: Display label.
        protocol: The preset name (``tuned``, ``report``, with overridden fields) or the
            solver of a run made without a preset; ``None`` for runs that predate presets.
        param: What the grid varied (``"l2"``, ``"weight_decay"``), ``None`` without a grid.
        chosen: The chosen strength (``None`` without a grid).
        criterion: The selection criterion (``val_loss``, ``val_auc``; for a run
            without a grid, how its epoch was selected).
        val_loss: Validation loss of the kept head (``None`` when not recorded).
        val_auc: Validation AUC of the kept head.
        converged: Whether the kept fit converged (``None`` when not recorded).
        at_edge: Whether the chosen strength is at the edge of the grid.
        warnings: The run's convergence warnings.
        grid_values: Every strength of the grid (empty without a grid).
        grid_val_loss: Validation loss at each strength.
        grid_val_auc: Validation AUC at each strength.
    """

    backbone: str
    protocol: str | None
    param: str | None
    chosen: float | None
    criterion: str | None
    val_loss: float | None
    val_auc: float | None
    converged: bool | None
    at_edge: bool
    warnings: tuple[str, ...] = ()
    grid_values: tuple[float, ...] = ()
    grid_val_loss: tuple[float, ...] = ()
    grid_val_auc: tuple[float, ...] = ()


@dataclass
class Comparison:
    """Everything :func:`~cactus_features.metrics.compare.compare_runs` computed, as data.

    Attributes:
        backbones: The compared runs, in the order given.
        metrics: One row per backbone per threshold rule.
        pairwise: One row per pair of backbones per threshold rule.
        efficiency: One row per backbone.
        rules: Threshold rules computed, e.g. ``["0.5", "val"]``.
        primary_rule: The rule shown first and used for the confusion figure.
        val_criterion: How validation thresholds were chosen (``youden`` or ``f1``).
        class_names: All class names in index order.
        positive_class: Index of the positive class.
        negative_name: Name of the negative side of the binary view.
        positive_name: Name of the positive class.
        test_ids: The common test ids, in the order scores are aligned to.
        test_is_pos: Whether each test case is positive.
        n_bootstrap: Bootstrap resamples (0: no intervals).
        seed: Bootstrap seed.
        ci: Interval coverage, e.g. 0.95.
        degenerate_resamples: Resamples lacking a class (ignored for metrics
            that are then undefined).
        notes: Remarks for the reader (e.g. a rule that could not be computed).
        protocols: How each backbone's head was trained and chosen (one row each).
    """

    backbones: list[Backbone]
    metrics: list[MetricRow]
    pairwise: list[PairwiseRow]
    efficiency: list[EfficiencyRow]
    rules: list[str]
    primary_rule: str
    val_criterion: str
    class_names: list[str]
    positive_class: int
    negative_name: str
    positive_name: str
    test_ids: np.ndarray
    test_is_pos: np.ndarray
    n_bootstrap: int
    seed: int
    ci: float
    degenerate_resamples: int = 0
    notes: list[str] = field(default_factory=list)
    protocols: list[ProtocolRow] = field(default_factory=list)

    @property
    def n_test(self) -> int:
        """Number of test cases compared."""
        return len(self.test_ids)

    @property
    def task(self) -> str:
        """The task kind, ``"binary"`` (K-class tasks give a ``ClassComparison``)."""
        return "binary"

    def rows(self, rule: str | None = None) -> list[MetricRow]:
        """Metric rows of one rule (the primary rule by default)."""
        rule = rule or self.primary_rule
        return [r for r in self.metrics if r.rule == rule]

    def row(self, backbone: str, rule: str | None = None) -> MetricRow:
        """The metric row of one backbone (by label) at one rule."""
        for r in self.rows(rule):
            if r.backbone == backbone:
                return r
        raise KeyError(f"no metrics for {backbone!r} at rule {rule or self.primary_rule!r}")

    def pairs(self, rule: str | None = None) -> list[PairwiseRow]:
        """Pairwise rows of one rule (the primary rule by default)."""
        rule = rule or self.primary_rule
        return [r for r in self.pairwise if r.rule == rule]


@dataclass(frozen=True)
class RunMetrics:
    """Full metrics of a single run (no comparison, no intervals).

    Attributes:
        label: Display label of the run.
        split: The split evaluated (``"test"`` by default).
        split_sizes: Predictions per split.
        val_criterion: How the validation threshold was chosen.
        results: :class:`ThresholdResult` by rule name.
        notes: Remarks (e.g. why no validation threshold could be chosen).
    """

    label: str
    split: str
    split_sizes: dict[str, int]
    val_criterion: str
    results: dict[str, ThresholdResult]
    notes: list[str] = field(default_factory=list)
