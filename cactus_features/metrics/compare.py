"""Compute the comparison of several backbones from their saved run files.

:func:`compare_runs` aligns the test predictions of every run by image id, computes
every metric at each threshold rule (fixed 0.5, a threshold chosen on each run's
validation split, optionally another fixed value), paired bootstrap confidence
intervals for every metric and every pairwise difference, DeLong's test for AUC
differences and McNemar's exact test for accuracy differences, and collects the
efficiency figures the runs recorded. Nothing but the run files is read and
nothing is written: the results are data (:mod:`~cactus_features.metrics.results`);
:mod:`cactus_features.report` renders and writes them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Sequence
from pathlib import Path

import numpy as np

from cactus_features.errors import ConfigError, DataError
from cactus_features.metrics.align import (
    RunMismatchError,
    align_test,
    common_classes,
    common_task,
    describe_run,
    display_label,
    run_task,
    unique_labels,
)
from cactus_features.metrics.class_compare import compare_class_runs
from cactus_features.metrics.class_results import ClassComparison
from cactus_features.metrics.core import (
    METRIC_NAMES,
    ThresholdCriterion,
    ThresholdResult,
    all_metrics,
    binary_targets,
    choose_threshold,
    class_pair,
    evaluate,
)
from cactus_features.metrics.results import (
    Backbone,
    Comparison,
    MetricRow,
    PairwiseRow,
    RunMetrics,
)
from cactus_features.metrics.runs import backbone_record, efficiency_row, estimate, protocol_row
from cactus_features.metrics.stats import (
    DeLongResult,
    delong_test,
    mcnemar_exact,
    paired_bootstrap,
)
from cactus_features.runfile import RunFile, load_run

__all__ = [
    "DEFAULT_RULE",
    "VAL_RULE",
    "RunMismatchError",
    "compare_runs",
    "parse_threshold",
    "run_metrics",
]

VAL_RULE = "val"
"""Name of the threshold rule "chosen on the validation split"."""
DEFAULT_RULE = "0.5"
"""Name of the fixed threshold rule at 0.5 (always computed)."""


def parse_threshold(threshold: str | float) -> str:
    """Normalise a threshold option to a rule name (``"val"`` or a number as text).

    Raises:
        ConfigError: If it is neither ``"val"`` nor a number strictly between 0 and 1.
    """
    if isinstance(threshold, str) and threshold.strip().lower() == VAL_RULE:
        return VAL_RULE
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise ConfigError(
            f"threshold {threshold!r} is not understood; use 'val' or a number such as 0.5"
        ) from None
    if not 0.0 < value < 1.0:
        raise ConfigError(f"threshold {value} is outside (0, 1); use 'val' or e.g. 0.5")
    return f"{value:g}"


def compare_runs(
    runs: Sequence[RunFile | str | Path],
    threshold: str | float = VAL_RULE,
    n_bootstrap: int = 2000,
    seed: int = 0,
    ci: float = 0.95,
    val_criterion: ThresholdCriterion = "youden",
) -> Comparison | ClassComparison:
    """Compare backbones from their saved run files.

    Dispatches on the runs' task kind (:func:`~cactus_features.metrics.align.run_task`):
    binary runs give a :class:`Comparison` as described below; multiclass and
    multilabel runs give a :class:`ClassComparison` from
    :func:`~cactus_features.metrics.class_compare.compare_class_runs` (the decision
    is the most probable class, or ``p >= 0.5`` per label, so ``threshold`` and
    ``val_criterion`` do not apply to them).

    Metrics are computed on the test split at threshold 0.5 and at a threshold
    chosen on each run's own validation split (and at ``threshold`` if it is
    another number). Confidence intervals are paired percentile bootstrap
    intervals: the test set is resampled ``n_bootstrap`` times with one seeded
    generator and every backbone is evaluated on the same resamples; thresholds
    stay fixed. AUC differences are tested with DeLong's test, accuracy
    differences with McNemar's exact test (no multiple-comparison correction).

    Args:
        runs: Run files (paths or loaded :class:`RunFile` objects), in display order.
        threshold: Primary rule: ``"val"`` or a fixed threshold such as ``0.5``.
        n_bootstrap: Bootstrap resamples; 0 skips intervals.
        seed: Seed of the bootstrap generator.
        ci: Interval coverage, e.g. 0.95.
        val_criterion: ``"youden"`` (max J = recall + specificity - 1) or ``"f1"``
            (max F1) for choosing the validation threshold.

    Returns:
        The comparison tables as data.

    Raises:
        RunMismatchError: If the runs' tasks, test ids, labels or classes differ.
        ConfigError: If an option is invalid.
        DataError: If a run lacks test predictions of both classes, or ``threshold``
            is ``"val"`` and a run has no usable validation predictions.
        CacheError: If a run file cannot be read.
    """
    if not runs:
        raise ConfigError("nothing to compare: give at least one run file")
    if n_bootstrap < 0:
        raise ConfigError(f"--bootstrap must be 0 or more, not {n_bootstrap}")
    if not 0.0 < ci < 1.0:
        raise ConfigError(f"confidence level {ci} is outside (0, 1); use e.g. 0.95")
    if val_criterion not in ("youden", "f1"):
        raise ConfigError(f"unknown threshold criterion {val_criterion!r}; use 'youden' or 'f1'")
    primary = parse_threshold(threshold)
    loaded = [r if isinstance(r, RunFile) else load_run(r) for r in runs]
    task = common_task(loaded)
    if task != "binary":
        return compare_class_runs(loaded, task, n_bootstrap=n_bootstrap, seed=seed, ci=ci)

    class_names, positive_class = common_classes(loaded)
    negative_name, positive_name = class_pair(class_names, positive_class)
    test_ids, test_is_pos, scores = align_test(loaded, positive_class)

    notes: list[str] = []
    val_thresholds = _val_thresholds(loaded, positive_class, val_criterion, primary, notes)
    rules = _rules(primary, has_val=val_thresholds is not None)
    backbones = _backbones(loaded, rules, val_thresholds, scores)

    point = [
        evaluate(test_is_pos, b.test_score, b.thresholds, (negative_name, positive_name))
        for b in backbones
    ]
    replicates: dict[Hashable, np.ndarray] = {}
    if n_bootstrap > 0:
        replicates = paired_bootstrap(
            lambda w: _bootstrap_statistic(w, test_is_pos, backbones),
            n=len(test_ids),
            n_resamples=n_bootstrap,
            seed=seed,
        )
    metric_rows = _metric_rows(backbones, rules, point, replicates, ci)
    pairwise_rows = _pairwise_rows(backbones, rules, point, replicates, ci, test_is_pos)

    degenerate = int(np.sum(replicates.get("degenerate", np.zeros(0)))) if replicates else 0
    protocols = [protocol_row(b) for b in backbones]
    names = sorted({p.protocol or "unrecorded" for p in protocols})
    if len(names) > 1:
        notes.append(
            f"The heads were trained with different protocols ({', '.join(names)}): their "
            "differences mix the features with the training protocol."
        )
    return Comparison(
        backbones=backbones,
        metrics=metric_rows,
        pairwise=pairwise_rows,
        efficiency=[efficiency_row(b) for b in backbones],
        protocols=protocols,
        rules=rules,
        primary_rule=primary,
        val_criterion=val_criterion,
        class_names=list(class_names),
        positive_class=positive_class,
        negative_name=negative_name,
        positive_name=positive_name,
        test_ids=test_ids,
        test_is_pos=test_is_pos,
        n_bootstrap=n_bootstrap,
        seed=seed,
        ci=ci,
        degenerate_resamples=degenerate,
        notes=notes,
    )


def run_metrics(
    run: RunFile | str | Path,
    val_criterion: ThresholdCriterion = "youden",
    split: str = "test",
) -> RunMetrics:
    """All metrics of one run at threshold 0.5 and at its validation-chosen threshold.

    Args:
        run: A run file or its path.
        val_criterion: ``"youden"`` or ``"f1"`` (see :func:`choose_threshold`).
        split: The split to evaluate.

    Returns:
        The metrics; the validation rule is omitted (with a note) when the run has
        no validation predictions of both classes.

    Raises:
        DataError: If the run is not binary (K-class runs: :func:`compare_runs`).
    """
    run = run if isinstance(run, RunFile) else load_run(run)
    task = run_task(run)
    if task != "binary":
        raise DataError(
            f"{describe_run(run)}: per-threshold metrics are for binary runs; for this {task} "
            "run use `cactus-features compare RUN` (K-class tables, --bootstrap 0 for no CIs)"
        )
    positive_class = int(run.info.get("positive_class", 1))
    names = class_pair(run.info.get("class_names"), positive_class)
    preds = run.predictions.select(split)
    if len(preds.ids) == 0:
        raise DataError(f"{describe_run(run)}: no predictions on the {split} split")
    thresholds = {DEFAULT_RULE: 0.5}
    notes: list[str] = []
    val = run.predictions.select("val")
    try:
        thresholds[VAL_RULE] = choose_threshold(
            binary_targets(val.label, positive_class), val.score, val_criterion
        )
    except DataError as exc:
        notes.append(f"no validation threshold: {exc}")
    results = evaluate(binary_targets(preds.label, positive_class), preds.score, thresholds, names)
    sizes = {
        s: int(np.sum(run.predictions.split == c)) for c, s in enumerate(("train", "val", "test"))
    }
    return RunMetrics(display_label(run), split, sizes, val_criterion, results, notes)


def _rules(primary: str, *, has_val: bool) -> list[str]:
    """The threshold rules computed, the primary one first."""
    rules = [DEFAULT_RULE]
    if primary not in (DEFAULT_RULE, VAL_RULE):
        rules.append(primary)
    if has_val:
        rules.append(VAL_RULE)
    rules.sort(key=lambda r: r != primary)
    return rules


def _backbones(
    runs: list[RunFile],
    rules: list[str],
    val_thresholds: list[float] | None,
    scores: list[np.ndarray],
) -> list[Backbone]:
    """One :class:`Backbone` per run, with its thresholds by rule and aligned test scores."""
    labels = unique_labels(runs)
    backbones: list[Backbone] = []
    for i, run in enumerate(runs):
        thresholds = {r: float(r) for r in rules if r != VAL_RULE}
        if val_thresholds is not None:
            thresholds[VAL_RULE] = val_thresholds[i]
        thresholds = {r: thresholds[r] for r in rules}
        backbones.append(backbone_record(run, labels[i], thresholds, scores[i]))
    return backbones


def _metric_rows(
    backbones: list[Backbone],
    rules: list[str],
    point: list[dict[str, ThresholdResult]],
    replicates: dict[Hashable, np.ndarray],
    ci: float,
) -> list[MetricRow]:
    """Every metric of every backbone at every rule, with its interval."""
    rows = []
    for rule in rules:
        for i, b in enumerate(backbones):
            res = point[i][rule]
            est = {
                m: estimate(res.values[m], replicates.get((i, rule, m)), ci) for m in METRIC_NAMES
            }
            rows.append(MetricRow(b.label, rule, res.threshold, res.confusion, est))
    return rows


def _pairwise_rows(
    backbones: list[Backbone],
    rules: list[str],
    point: list[dict[str, ThresholdResult]],
    replicates: dict[Hashable, np.ndarray],
    ci: float,
    is_pos: np.ndarray,
) -> list[PairwiseRow]:
    """Differences of every pair at every rule, with DeLong's and McNemar's tests."""
    rows = []
    for i, j in itertools.combinations(range(len(backbones)), 2):
        bi, bj = backbones[i], backbones[j]
        delong = _delong_or_nan(is_pos, bi.test_score, bj.test_score)
        for rule in rules:
            diffs = {}
            for m in METRIC_NAMES:
                d = point[i][rule].values[m] - point[j][rule].values[m]
                reps = None
                if replicates:
                    reps = replicates[(i, rule, m)] - replicates[(j, rule, m)]
                diffs[m] = estimate(d, reps, ci)
            correct_i = (bi.test_score >= bi.thresholds[rule]) == is_pos
            correct_j = (bj.test_score >= bj.thresholds[rule]) == is_pos
            mcnemar = mcnemar_exact(correct_i, correct_j)
            rows.append(PairwiseRow(rule, bi.label, bj.label, diffs, delong, mcnemar))
    return rows


def _bootstrap_statistic(
    weights: np.ndarray, is_pos: np.ndarray, backbones: list[Backbone]
) -> dict[Hashable, np.ndarray]:
    out: dict[Hashable, np.ndarray] = {}
    for i, b in enumerate(backbones):
        for rule, values in all_metrics(is_pos, b.test_score, b.thresholds, weights).items():
            for m in METRIC_NAMES:
                out[(i, rule, m)] = values[m]
    n_pos = weights @ is_pos.astype(np.int64)
    n_neg = weights.sum(axis=1) - n_pos
    out["degenerate"] = ((n_pos == 0) | (n_neg == 0)).astype(np.float64)
    return out


def _delong_or_nan(is_pos: np.ndarray, a: np.ndarray, b: np.ndarray) -> DeLongResult:
    """DeLong's test, or NaNs when the test set has fewer than two cases of a class."""
    try:
        return delong_test(is_pos, a, b)
    except ValueError:
        nan = math.nan
        return DeLongResult(nan, nan, nan, nan, nan, nan)


def _val_thresholds(
    runs: list[RunFile],
    positive_class: int,
    criterion: ThresholdCriterion,
    primary: str,
    notes: list[str],
) -> list[float] | None:
    out = []
    for run in runs:
        val = run.predictions.select("val")
        try:
            if len(val.ids) == 0:
                raise DataError("the run file has no validation predictions")
            out.append(
                choose_threshold(binary_targets(val.label, positive_class), val.score, criterion)
            )
        except DataError as exc:
            if primary == VAL_RULE:
                raise DataError(
                    f"{describe_run(run)}: {exc}; use a fixed threshold instead (--threshold 0.5)"
                ) from None
            notes.append(f"No validation-chosen threshold: {describe_run(run)}: {exc}.")
            return None
    return out
