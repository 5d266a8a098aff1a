"""Stage 3: compare backbones from their saved run files.

Reads nothing but run files (:mod:`cactus_features.runfile`). Modules:

* :mod:`~cactus_features.metrics.core` — every metric from confusion counts;
* :mod:`~cactus_features.metrics.stats` — paired bootstrap, DeLong, McNemar;
* :mod:`~cactus_features.metrics.compare` — aligning runs and assembling tables;
* :mod:`~cactus_features.metrics.plots` — figures (matplotlib OO API);
* :mod:`~cactus_features.metrics.report` — Markdown, CSV and PNG output.

Note: ``cactus_features.metrics.compare`` as an attribute is the :func:`compare`
function; import the module's other names with
``from cactus_features.metrics.compare import ...``.
"""

from cactus_features.metrics.compare import (
    Backbone,
    Comparison,
    EfficiencyRow,
    Estimate,
    MetricRow,
    PairwiseRow,
    RunMetrics,
    RunMismatchError,
    compare,
    evaluate_run,
)
from cactus_features.metrics.core import (
    METRIC_NAMES,
    ConfusionMatrix,
    CurveCounts,
    ThresholdResult,
    choose_threshold,
    cumulative_counts,
    evaluate,
    rates_from_counts,
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
    "METRIC_NAMES",
    "Backbone",
    "Comparison",
    "ConfusionMatrix",
    "CurveCounts",
    "DeLongResult",
    "EfficiencyRow",
    "Estimate",
    "McNemarResult",
    "MetricRow",
    "PairwiseRow",
    "RunMetrics",
    "RunMismatchError",
    "ThresholdResult",
    "choose_threshold",
    "compare",
    "cumulative_counts",
    "delong_test",
    "evaluate",
    "evaluate_run",
    "mcnemar_exact",
    "mcnemar_exact_p",
    "paired_bootstrap",
    "percentile_interval",
    "rates_from_counts",
]
