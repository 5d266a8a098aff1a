"""Stage 3: compare backbones from their saved run files; the numbers, as data.

Reads nothing but run files (:mod:`cactus_features.runfile`) and writes nothing;
rendering and the report folder are :mod:`cactus_features.report`, which imports
this package (never the other way round). Modules:

* :mod:`~cactus_features.metrics.core` — the metric registry (:data:`METRICS`) and
  every metric from confusion counts;
* :mod:`~cactus_features.metrics.stats` — paired bootstrap, DeLong, McNemar;
* :mod:`~cactus_features.metrics.results` — the result types (data only);
* :mod:`~cactus_features.metrics.align` — which runs can be compared, aligned by test id;
* :mod:`~cactus_features.metrics.compare` — aligning runs and computing the tables
  (:func:`compare_runs`, :func:`run_metrics`); it dispatches on the runs' task;
* :mod:`~cactus_features.metrics.multiclass` / :mod:`~cactus_features.metrics.multilabel`
  — the K-class and multi-label registries (:data:`MULTICLASS_METRICS`,
  :data:`MULTILABEL_METRICS`), every metric from labels and ``[N, K]`` probabilities;
* :mod:`~cactus_features.metrics.class_compare` and
  :mod:`~cactus_features.metrics.class_results` — the K-class comparison and its types;
* :mod:`~cactus_features.metrics.runs` — each run's record, costs and estimates.
"""

from cactus_features.metrics.align import RunMismatchError, TaskScores, task_and_scores
from cactus_features.metrics.class_results import (
    ClassComparison,
    ClassMetricRow,
    ClassPairwiseRow,
    PerClassRow,
)
from cactus_features.metrics.compare import compare_runs, run_metrics
from cactus_features.metrics.core import (
    METRIC_NAMES,
    METRICS,
    ConfusionMatrix,
    CurveCounts,
    Metric,
    ThresholdResult,
    choose_threshold,
    cumulative_counts,
    evaluate,
    rates_from_counts,
)
from cactus_features.metrics.multiclass import MULTICLASS_METRICS, PER_CLASS_METRICS
from cactus_features.metrics.multilabel import MULTILABEL_METRICS, PER_LABEL_METRICS
from cactus_features.metrics.results import (
    Backbone,
    Comparison,
    EfficiencyRow,
    Estimate,
    MetricRow,
    PairwiseRow,
    RunMetrics,
)
from cactus_features.metrics.stats import (
    DeLongResult,
    McNemarResult,
    bootstrap_p_value,
    delong_test,
    mcnemar_exact,
    mcnemar_exact_p,
    paired_bootstrap,
    percentile_interval,
)

__all__ = [
    "METRICS",
    "METRIC_NAMES",
    "MULTICLASS_METRICS",
    "MULTILABEL_METRICS",
    "PER_CLASS_METRICS",
    "PER_LABEL_METRICS",
    "Backbone",
    "ClassComparison",
    "ClassMetricRow",
    "ClassPairwiseRow",
    "Comparison",
    "ConfusionMatrix",
    "CurveCounts",
    "DeLongResult",
    "EfficiencyRow",
    "Estimate",
    "McNemarResult",
    "Metric",
    "MetricRow",
    "PairwiseRow",
    "PerClassRow",
    "RunMetrics",
    "RunMismatchError",
    "TaskScores",
    "ThresholdResult",
    "bootstrap_p_value",
    "choose_threshold",
    "compare_runs",
    "cumulative_counts",
    "delong_test",
    "evaluate",
    "mcnemar_exact",
    "mcnemar_exact_p",
    "paired_bootstrap",
    "percentile_interval",
    "rates_from_counts",
    "run_metrics",
    "task_and_scores",
]
