"""The public entry points of stage three: compute, then render and write.

:func:`compare` and :func:`evaluate_run` run the computation of
:mod:`cactus_features.metrics` and return its results with rendering methods
(:class:`ComparisonReport`, :class:`RunReport`); ``compare(out=...)`` also
writes the report folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

from cactus_features.metrics.class_results import ClassComparison
from cactus_features.metrics.compare import VAL_RULE, compare_runs, run_metrics
from cactus_features.metrics.core import ThresholdCriterion
from cactus_features.metrics.results import Comparison, RunMetrics
from cactus_features.report.class_markdown import render_class_markdown
from cactus_features.report.class_text import render_class_text
from cactus_features.report.folder import write_report
from cactus_features.report.markdown import render_markdown
from cactus_features.report.text import render_run_metrics, render_text
from cactus_features.runfile import RunFile


@dataclass
class ComparisonReport(Comparison):
    """A :class:`~cactus_features.metrics.results.Comparison` that renders itself.

    Attributes:
        report_path: ``report.md`` when a report folder was written.
    """

    report_path: Path | None = None

    @classmethod
    def of(cls, comparison: Comparison) -> ComparisonReport:
        """The same results (shared, not copied) with the rendering methods."""
        return cls(**{f.name: getattr(comparison, f.name) for f in fields(comparison)})

    def to_markdown(self) -> str:
        """The full report as Markdown (tables only; figure links need a written report)."""
        return render_markdown(self)

    def to_text(self) -> str:
        """A compact plain-text summary for the terminal."""
        return render_text(self, self.report_path)


@dataclass
class ClassComparisonReport(ClassComparison):
    """A K-class or multi-label :class:`~cactus_features.metrics.class_results.ClassComparison`
    that renders itself.

    Attributes:
        report_path: ``report.md`` when a report folder was written.
    """

    report_path: Path | None = None

    @classmethod
    def of(cls, comparison: ClassComparison) -> ClassComparisonReport:
        """The same results (shared, not copied) with the rendering methods."""
        return cls(**{f.name: getattr(comparison, f.name) for f in fields(comparison)})

    def to_markdown(self) -> str:
        """The full report as Markdown (tables only; figure links need a written report)."""
        return render_class_markdown(self)

    def to_text(self) -> str:
        """A compact plain-text summary for the terminal."""
        return render_class_text(self, self.report_path)


@dataclass(frozen=True)
class RunReport(RunMetrics):
    """A :class:`~cactus_features.metrics.results.RunMetrics` that renders itself."""

    @classmethod
    def of(cls, result: RunMetrics) -> RunReport:
        """The same results with the rendering method."""
        return cls(**{f.name: getattr(result, f.name) for f in fields(result)})

    def to_text(self) -> str:
        """Confusion matrices and metrics at each rule, as plain text."""
        return render_run_metrics(self)


def compare(
    runs: Sequence[RunFile | str | Path],
    out: str | Path | None = None,
    threshold: str | float = VAL_RULE,
    n_bootstrap: int = 2000,
    seed: int = 0,
    ci: float = 0.95,
    val_criterion: ThresholdCriterion = "youden",
) -> ComparisonReport | ClassComparisonReport:
    """Compare backbones from their saved run files, and write the report folder.

    Binary runs give a :class:`ComparisonReport`; multiclass and multilabel runs a
    :class:`ClassComparisonReport` (K-class tables, confusion matrix or per-label
    AP figure; ``threshold`` and ``val_criterion`` do not apply to them).

    Computes :func:`~cactus_features.metrics.compare.compare_runs` (see there for
    the method: threshold rules, paired bootstrap, DeLong, McNemar), then renders.

    Args:
        runs: Run files (paths or loaded :class:`RunFile` objects), in display order.
        out: Folder for ``report.md``, CSV tables and PNG figures; ``None`` writes nothing.
        threshold: Primary rule: ``"val"`` or a fixed threshold such as ``0.5``.
        n_bootstrap: Bootstrap resamples; 0 skips intervals.
        seed: Seed of the bootstrap generator.
        ci: Interval coverage, e.g. 0.95.
        val_criterion: ``"youden"`` or ``"f1"``, for choosing the validation threshold.

    Returns:
        The comparison (with ``report_path`` when ``out`` is given).

    Raises:
        UserError: What :func:`~cactus_features.metrics.compare.compare_runs` raises
            (mismatched runs, invalid options, unreadable or unusable run files).
    """
    result = compare_runs(
        runs,
        threshold=threshold,
        n_bootstrap=n_bootstrap,
        seed=seed,
        ci=ci,
        val_criterion=val_criterion,
    )
    report: ComparisonReport | ClassComparisonReport = (
        ClassComparisonReport.of(result)
        if isinstance(result, ClassComparison)
        else ComparisonReport.of(result)
    )
    if out is not None:
        report.report_path = write_report(report, out)
    return report


def evaluate_run(
    run: RunFile | str | Path,
    val_criterion: ThresholdCriterion = "youden",
    split: str = "test",
) -> RunReport:
    """:func:`~cactus_features.metrics.compare.run_metrics` of one run, renderable.

    Args:
        run: A run file or its path.
        val_criterion: ``"youden"`` or ``"f1"``.
        split: The split to evaluate.

    Returns:
        The metrics at each rule, with :meth:`RunReport.to_text`.
    """
    return RunReport.of(run_metrics(run, val_criterion=val_criterion, split=split))
