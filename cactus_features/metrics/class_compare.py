"""Compare K-class or multi-label runs: every registered metric, paired CIs and tests.

:func:`compare_class_runs` reads each run's test predictions through
:func:`~cactus_features.metrics.align.task_and_scores`, aligns them by image id, and
computes every entry of the task's registry
(:data:`~cactus_features.metrics.multiclass.MULTICLASS_METRICS` or
:data:`~cactus_features.metrics.multilabel.MULTILABEL_METRICS`) and of its per-class
registry, on the test set and on paired bootstrap resamples (one seeded set of
resamples for every backbone, all metrics vectorised over the resamples). Pairs of
backbones get every difference with its paired interval and a paired-bootstrap
p-value (the test of macro AUC / mAP differences), and McNemar's exact test on
per-image correctness. :func:`~cactus_features.metrics.compare.compare_runs` calls it
for runs whose task is not binary.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable

import numpy as np

from cactus_features.metrics.align import (
    RunMismatchError,
    TaskScores,
    align_rows,
    describe_run,
    task_and_scores,
    unique_labels,
)
from cactus_features.metrics.class_results import (
    ClassComparison,
    ClassMetricRow,
    ClassPairwiseRow,
    PerClassRow,
)
from cactus_features.metrics.multiclass import (
    MULTICLASS_METRICS,
    PER_CLASS_METRICS,
    ClassMetric,
    PerClassMetric,
    confusion_matrix,
    multiclass_metrics,
    weighted_bincount,
)
from cactus_features.metrics.multilabel import (
    MULTILABEL_METRICS,
    PER_LABEL_METRICS,
    exact_match_correct,
    multilabel_metrics,
)
from cactus_features.metrics.runs import backbone_record, efficiency_row, estimate
from cactus_features.metrics.stats import bootstrap_p_value, mcnemar_exact, paired_bootstrap
from cactus_features.runfile import RunFile

MetricsFunction = Callable[[np.ndarray, np.ndarray, np.ndarray | None], dict[str, np.ndarray]]

TASK_REGISTRIES: dict[str, tuple[tuple[ClassMetric, ...], tuple[PerClassMetric, ...]]] = {
    "multiclass": (MULTICLASS_METRICS, PER_CLASS_METRICS),
    "multilabel": (MULTILABEL_METRICS, PER_LABEL_METRICS),
}
"""Overall and per-class metric registries of each K-class task."""


def metric_labels(task: str) -> dict[str, str]:
    """Readable name of each overall metric of a K-class task."""
    return {m.name: m.label for m in TASK_REGISTRIES[task][0]}


def metric_short_labels(task: str) -> dict[str, str]:
    """Column header of each overall metric of a K-class task (terminal table)."""
    return {m.name: m.short_label for m in TASK_REGISTRIES[task][0]}


def per_class_labels(task: str) -> dict[str, str]:
    """Readable name of each per-class metric of a K-class task."""
    return {m.name: m.label for m in TASK_REGISTRIES[task][1]}


_COMPUTE: dict[str, MetricsFunction] = {
    "multiclass": multiclass_metrics,
    "multilabel": multilabel_metrics,
}


def compare_class_runs(
    runs: list[RunFile], task: str, n_bootstrap: int = 2000, seed: int = 0, ci: float = 0.95
) -> ClassComparison:
    """Compare K-class (or multi-label) runs on their common test set.

    Args:
        runs: Loaded runs of one task, in display order.
        task: ``"multiclass"`` or ``"multilabel"``.
        n_bootstrap: Paired bootstrap resamples; 0 skips intervals and p-values
            of the differences.
        seed: Seed of the bootstrap generator.
        ci: Interval coverage.

    Returns:
        The comparison as data.

    Raises:
        RunMismatchError: If the runs' test ids, labels or class names differ.
        DataError: If a run lacks valid K-class test predictions.
    """
    tests = [task_and_scores(r) for r in runs]
    class_names = _common_class_names(runs, tests)
    order = align_rows(runs, [t.ids for t in tests], [t.y for t in tests])
    probas = []
    for t, idx in zip(tests, order, strict=True):
        aligned = np.empty_like(t.proba)
        aligned[idx] = t.proba
        probas.append(aligned)
    y = tests[0].y
    compute = _COMPUTE[task]
    overall, per_class = TASK_REGISTRIES[task]
    k = len(class_names)
    metric_names = [m.name for m in overall if m.applies(k)]
    per_class_names = [m.name for m in per_class]

    point = [compute(y, p, None) for p in probas]
    replicates: dict[Hashable, np.ndarray] = {}
    if n_bootstrap > 0:
        replicates = paired_bootstrap(
            lambda w: _bootstrap_statistic(w, y, probas, compute, task),
            n=len(y),
            n_resamples=n_bootstrap,
            seed=seed,
        )
    labels = unique_labels(runs)
    backbones = [backbone_record(run, labels[i], {}, probas[i]) for i, run in enumerate(runs)]
    rows = [
        ClassMetricRow(
            b.label,
            {m: estimate(point[i][m], replicates.get((i, m)), ci) for m in metric_names},
        )
        for i, b in enumerate(backbones)
    ]
    class_rows = [
        PerClassRow(
            b.label,
            c,
            class_names[c],
            round(float(point[i]["class_support"][c])),
            {
                m: estimate(point[i][f"class_{m}"][c], replicates.get((i, m, c)), ci)
                for m in per_class_names
            },
        )
        for i, b in enumerate(backbones)
        for c in range(k)
    ]
    correct = [_correct(task, y, p) for p in probas]
    pairs = [
        _pair(i, j, backbones, point, replicates, metric_names, correct, ci)
        for i, j in itertools.combinations(range(len(backbones)), 2)
    ]
    confusion = (
        {b.label: confusion_matrix(y, p) for b, p in zip(backbones, probas, strict=True)}
        if task == "multiclass"
        else {}
    )
    degenerate = int(np.sum(replicates.get("degenerate", np.zeros(0)))) if replicates else 0
    return ClassComparison(
        task=task,
        backbones=backbones,
        metrics=rows,
        per_class=class_rows,
        pairwise=pairs,
        efficiency=[efficiency_row(b) for b in backbones],
        confusion=confusion,
        metric_names=metric_names,
        per_class_names=per_class_names,
        class_names=class_names,
        test_ids=tests[0].ids,
        test_labels=y,
        n_bootstrap=n_bootstrap,
        seed=seed,
        ci=ci,
        degenerate_resamples=degenerate,
        notes=_absent_class_notes(task, y, class_names),
    )


def _common_class_names(runs: list[RunFile], tests: list[TaskScores]) -> list[str]:
    names = tests[0].class_names
    for run, t in zip(runs[1:], tests[1:], strict=True):
        if t.class_names != names:
            raise RunMismatchError(
                f"cannot compare {describe_run(runs[0])} with {describe_run(run)}: different "
                f"classes ({names} vs {t.class_names}); compare runs trained on the same labels"
            )
    return list(names)


def _correct(task: str, y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Per-image correctness for McNemar: top-1 (multiclass) or exact match (multilabel)."""
    if task == "multilabel":
        return exact_match_correct(y, proba)
    return np.argmax(proba, axis=1) == y


def _pair(
    i: int,
    j: int,
    backbones: list,
    point: list[dict[str, np.ndarray]],
    replicates: dict[Hashable, np.ndarray],
    metric_names: list[str],
    correct: list[np.ndarray],
    ci: float,
) -> ClassPairwiseRow:
    diffs = {}
    p_values = {}
    for m in metric_names:
        reps = replicates[(i, m)] - replicates[(j, m)] if replicates else None
        diffs[m] = estimate(float(point[i][m]) - float(point[j][m]), reps, ci)
        p_values[m] = bootstrap_p_value(reps) if reps is not None else float("nan")
    return ClassPairwiseRow(
        backbones[i].label,
        backbones[j].label,
        diffs,
        p_values,
        mcnemar_exact(correct[i], correct[j]),
    )


def _bootstrap_statistic(
    weights: np.ndarray,
    y: np.ndarray,
    probas: list[np.ndarray],
    compute: MetricsFunction,
    task: str,
) -> dict[Hashable, np.ndarray]:
    out: dict[Hashable, np.ndarray] = {}
    for i, p in enumerate(probas):
        for name, values in compute(y, p, weights).items():
            if name.startswith("class_"):
                for c in range(values.shape[-1]):
                    out[(i, name.removeprefix("class_"), c)] = values[:, c]
            else:
                out[(i, name)] = values
    if task == "multilabel":
        pos = weights @ y.astype(np.float64)
        present = (y.sum(axis=0) > 0) & (y.sum(axis=0) < len(y))
        lost = (pos == 0) | (pos == weights.sum(axis=1, keepdims=True))
    else:
        k = probas[0].shape[1]
        present = np.bincount(y, minlength=k) > 0
        lost = weighted_bincount(y, k, weights) == 0
    out["degenerate"] = np.any(lost & present, axis=1).astype(np.float64)
    return out


def _absent_class_notes(task: str, y: np.ndarray, class_names: list[str]) -> list[str]:
    """Which classes (labels) have undefined per-class metrics on this test set, and why."""
    if task == "multilabel":
        pos = np.asarray(y).sum(axis=0)
        none = [n for n, p in zip(class_names, pos, strict=True) if p == 0]
        every = [n for n, p in zip(class_names, pos, strict=True) if p == len(y)]
        notes = []
        if none:
            notes.append(
                f"{len(none)} label(s) occur in no test image ({', '.join(none)}): their AP and "
                "ROC AUC are undefined and left out of the macro mAP and macro ROC AUC."
            )
        if every:
            notes.append(
                f"{len(every)} label(s) occur in every test image ({', '.join(every)}): their "
                "ROC AUC is undefined and left out of the macro ROC AUC."
            )
        return notes
    counts = np.bincount(y, minlength=len(class_names))
    missing = [n for n, c in zip(class_names, counts, strict=True) if c == 0]
    if not missing:
        return []
    return [
        f"{len(missing)} class(es) absent from the test set ({', '.join(missing)}): their recall "
        "and ROC AUC are undefined and left out of the balanced accuracy and macro ROC AUC; "
        "their F1 is 0 where a backbone predicts them (counted in macro F1, as scikit-learn "
        "does) and undefined otherwise."
    ]
