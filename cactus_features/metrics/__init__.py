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
  (:func:`compare_runs`, :func:`run_metrics`).
"""

from cactus_features.metrics.align import RunMismatchError
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
    delong_test,
    mcnemar_exact,
    mcnemar_exact_p,
    paired_bootstrap,
    percentile_interval,
)

__all__ = [
    "METRICS",
    "METRIC_NAMES",
    "Backbone",
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
    "RunMetrics",
    "RunMismatchError",
    "ThresholdResult",
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
]
