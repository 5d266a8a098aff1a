"""Label-efficiency curves: the default probe trained on growing shares of the training split.

For each backbone and seed, the training rows of each class are shuffled once
(a generator seeded with the seed); the subsample at fraction ``f`` takes the
first ``max(min_per_class, round(f * n_c))`` rows of class ``c``. So subsamples
are stratified (each class keeps its share), nested across fractions (the 5 %
subset holds the 2 % one) and reproducible (same seed, same rows), and the
100 % subsample is the whole training split. The validation and test splits are
never touched: each head is trained through :func:`~cactus_features.heads.train_head`
with ``train_rows`` (its defaults, whatever they are, select on validation) and
scored on the full test split.

Multi-label data has no single class to stratify by: each seed shuffles the
training rows once and the subsample at ``f`` is the first ``max(round(f * n), m)``
of them, ``m`` the shortest prefix holding ``min_per_class`` positives and
negatives of every label (still nested and reproducible).

Per (backbone, fraction) the reported values are the mean over seeds of the
task's curve metrics (:data:`CURVE_METRICS`) on the test split: binary, the ROC
AUC and the accuracy at each run's validation-chosen threshold (max Youden's J,
as ``compare``'s default rule); K classes, the macro one-vs-rest ROC AUC and the
top-1 accuracy; multi-label, the macro mAP and the macro ROC AUC (each computed
by the registries of :mod:`~cactus_features.metrics.multiclass` and
:mod:`~cactus_features.metrics.multilabel`, as in ``compare``). Its interval is a paired
percentile bootstrap of the test set (:func:`~cactus_features.metrics.stats.paired_bootstrap`):
every resample re-weights the same test images for every backbone, fraction and
seed, and the mean over seeds is recomputed on it. It covers the test-set
sampling; the spread over seeds (which training rows were drawn) is reported
beside it as the seeds' minimum and maximum.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cactus_features.data.classes import BINARY, MULTICLASS, MULTILABEL, positive_class_index
from cactus_features.errors import ConfigError
from cactus_features.features import FeatureSet
from cactus_features.heads import train_head
from cactus_features.heads.prepare.data import FeaturesArg, resolve_features
from cactus_features.metrics.core import all_metrics, choose_threshold
from cactus_features.metrics.multiclass import MULTICLASS_METRICS, MulticlassCases
from cactus_features.metrics.multilabel import MULTILABEL_METRICS, MultilabelCases
from cactus_features.metrics.results import Estimate
from cactus_features.metrics.stats import paired_bootstrap, percentile_interval

FRACTIONS = (0.01, 0.02, 0.05, 0.10, 0.25, 0.50, 1.0)
"""Default shares of the training split."""
SEEDS = (0, 1, 2)
"""Default subsampling seeds."""
MIN_PER_CLASS = 2
"""Fewest training rows of each class in any subsample."""
CURVE_METRICS: dict[str, tuple[str, ...]] = {
    BINARY: ("roc_auc", "accuracy"),
    MULTICLASS: ("macro_roc_auc", "accuracy"),
    MULTILABEL: ("macro_map", "macro_roc_auc"),
}
"""The metrics of the curves of each task (names in
:data:`~cactus_features.metrics.core.METRIC_NAMES`, ``MULTICLASS_METRICS`` and
``MULTILABEL_METRICS``)."""
THRESHOLD_RULE = "val"
"""Binary accuracy is taken at each run's validation-chosen threshold (max Youden's J)."""
_CLASS_METRICS = {MULTICLASS: MULTICLASS_METRICS, MULTILABEL: MULTILABEL_METRICS}


def class_counts(n_per_class: Sequence[int], fraction: float, min_per_class: int) -> list[int]:
    """Rows of each class in the subsample at ``fraction`` (capped at what the class has)."""
    return [min(n, max(min_per_class, round(fraction * n))) for n in n_per_class]


def nested_subsets(
    labels: np.ndarray,
    train: np.ndarray,
    fractions: Sequence[float],
    seed: int,
    min_per_class: int = MIN_PER_CLASS,
) -> dict[float, np.ndarray]:
    """Stratified training-row subsamples, nested across fractions, for one seed.

    Args:
        labels: Label index of every cache row.
        train: The training split's row indices.
        fractions: Shares of the training split, each in ``(0, 1]``.
        seed: Seeds the per-class shuffles.
        min_per_class: Fewest rows of each class in any subsample.

    Returns:
        ``{fraction: sorted row indices}``.

    Raises:
        ConfigError: On a fraction outside ``(0, 1]`` or a class with fewer than
            ``min_per_class`` training rows.
    """
    check_fractions(fractions)
    train = np.asarray(train)
    classes = np.unique(labels[train])
    rng = np.random.default_rng(seed)
    orders = [rng.permutation(train[labels[train] == c]) for c in classes]
    sizes = [len(o) for o in orders]
    if min(sizes) < min_per_class:
        raise ConfigError(
            f"class {int(classes[int(np.argmin(sizes))])} has {min(sizes)} training rows, "
            f"fewer than min_per_class={min_per_class}; lower it or label more images"
        )
    out = {}
    for f in fractions:
        counts = class_counts(sizes, f, min_per_class)
        out[f] = np.sort(np.concatenate([o[:n] for o, n in zip(orders, counts, strict=True)]))
    return out


def nested_prefix_subsets(
    label_matrix: np.ndarray,
    train: np.ndarray,
    fractions: Sequence[float],
    seed: int,
    min_per_class: int = MIN_PER_CLASS,
    names: Sequence[str] = (),
) -> dict[float, np.ndarray]:
    """Multi-label training-row subsamples: prefixes of one seeded shuffle, for one seed.

    The subsample at ``f`` is the first ``max(round(f * n), m)`` shuffled training
    rows, ``m`` the shortest prefix with ``min_per_class`` positives and negatives of
    every label; so subsamples are nested across fractions and reproducible.

    Args:
        label_matrix: ``[N, L]`` 0/1 labels of every cache row.
        train: The training split's row indices.
        fractions: Shares of the training split, each in ``(0, 1]``.
        seed: Seeds the shuffle.
        min_per_class: Fewest positives and negatives of each label in any subsample.
        names: Label names (for the error message).

    Returns:
        ``{fraction: sorted row indices}``.

    Raises:
        ConfigError: On a fraction outside ``(0, 1]`` or a label with fewer than
            ``min_per_class`` positives or negatives in the whole training split.
    """
    check_fractions(fractions)
    order = np.random.default_rng(seed).permutation(np.asarray(train))
    y = np.asarray(label_matrix, dtype=bool)[order]
    pos, neg = np.cumsum(y, axis=0), np.cumsum(~y, axis=0)
    enough = (pos >= min_per_class) & (neg >= min_per_class)
    if not enough[-1].all():
        bad = int(np.flatnonzero(~enough[-1])[0])
        name = names[bad] if bad < len(names) else str(bad)
        raise ConfigError(
            f"label {name!r} has fewer than min_per_class={min_per_class} positive or negative "
            "training rows; lower it or label more images"
        )
    shortest = int(np.flatnonzero(enough.all(axis=1))[0]) + 1
    return {
        f: np.sort(order[: max(shortest, min(len(order), round(f * len(order))))])
        for f in fractions
    }


def check_fractions(fractions: Sequence[float]) -> None:
    """Raise :class:`ConfigError` unless every fraction is in ``(0, 1]`` and they are unique."""
    if not fractions:
        raise ConfigError("give at least one training fraction, e.g. 0.01,0.1,1")
    bad = [f for f in fractions if not 0.0 < float(f) <= 1.0]
    if bad:
        raise ConfigError(f"training fraction {bad[0]!r} is invalid; use values in (0, 1]")
    if len(set(fractions)) != len(fractions):
        raise ConfigError(f"training fractions {list(fractions)} repeat a value")


@dataclass(frozen=True)
class CurvePoint:
    """One backbone at one training fraction, over the seeds.

    Attributes:
        backbone: The backbone's label.
        fraction: Share of the training split.
        n_train: Training rows of each seed's subsample (the same for every seed).
        n_per_class: Training rows of each class (multi-label: positives of each label).
        metrics: Mean over seeds of each curve metric on the test split, with its
            bootstrap interval.
        by_seed: Each seed's value of each curve metric.
        train_seconds: Head-training time summed over the seeds.
    """

    backbone: str
    fraction: float
    n_train: int
    n_per_class: tuple[int, ...]
    metrics: dict[str, Estimate]
    by_seed: dict[str, tuple[float, ...]]
    train_seconds: float


@dataclass
class LabelEfficiencyResult:
    """The curves of every backbone.

    Attributes:
        points: One per (backbone, fraction), backbones in input order, fractions ascending.
        fractions: The fractions.
        seeds: The subsampling seeds.
        n_test: Test images.
        n_bootstrap: Bootstrap resamples (0: no intervals).
        ci: Interval coverage.
        min_per_class: Fewest training rows per class.
        head: The head kind trained.
        options: The other :func:`train_head` options given (empty: its defaults).
        seconds: Wall time of the whole computation.
        class_names: Class names in index order.
        task: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
    """

    points: list[CurvePoint]
    fractions: tuple[float, ...]
    seeds: tuple[int, ...]
    n_test: int
    n_bootstrap: int
    ci: float
    min_per_class: int
    head: str
    options: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    class_names: tuple[str, ...] = ()
    task: str = BINARY

    @property
    def metrics(self) -> tuple[str, ...]:
        """The curve metrics of the task (:data:`CURVE_METRICS`)."""
        return CURVE_METRICS[self.task]

    @property
    def backbones(self) -> list[str]:
        """Backbone labels in input order."""
        return list(dict.fromkeys(p.backbone for p in self.points))

    def curve(self, backbone: str) -> list[CurvePoint]:
        """One backbone's points, fractions ascending."""
        return [p for p in self.points if p.backbone == backbone]


@dataclass
class _Scored:
    """Test scores (``[Nt]`` binary, ``[Nt, K]`` otherwise) and binary thresholds of one
    (backbone, fraction) over the seeds."""

    scores: list[np.ndarray] = field(default_factory=list)
    thresholds: list[float] = field(default_factory=list)
    seconds: float = 0.0
    counts: tuple[int, ...] = ()
    rows: int = 0


def label_efficiency(
    features: Sequence[FeaturesArg],
    fractions: Sequence[float] = FRACTIONS,
    seeds: Sequence[int] = SEEDS,
    *,
    n_bootstrap: int = 2000,
    ci: float = 0.95,
    bootstrap_seed: int = 0,
    min_per_class: int = MIN_PER_CLASS,
    head: str = "linear",
    device: str | None = None,
    progress: Callable[[str], None] | None = None,
    **options: Any,
) -> LabelEfficiencyResult:
    """Train the probe on nested stratified subsamples and score the full test split.

    Args:
        features: One entry per backbone: a :class:`FeatureSet`, a cache path, or a
            list of them (a concatenation), all of the same images and split.
        fractions: Shares of the training split, in ``(0, 1]``.
        seeds: Subsampling seeds (at least one; three or more for a spread).
        n_bootstrap: Test-set bootstrap resamples (0: no intervals).
        ci: Interval coverage.
        bootstrap_seed: Seed of the bootstrap generator.
        min_per_class: Fewest training rows of each class in any subsample.
        head: The head kind (:func:`train_head`'s ``head``).
        device: Training device (``None``: CUDA when available).
        progress: Called with one line per trained head.
        **options: More :func:`train_head` options (default: its defaults).

    Returns:
        The curves.

    Raises:
        ConfigError: On invalid fractions or seeds, or backbones whose test splits differ.
    """
    start = time.perf_counter()
    check_fractions(fractions)
    fractions = tuple(sorted(float(f) for f in fractions))
    seeds = tuple(int(s) for s in seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds {list(seeds)} must be one or more distinct integers")
    sets = [resolve_features(f)[0] for f in features]
    if not sets:
        raise ConfigError("give at least one feature cache")
    task = sets[0].task
    positive = (
        positive_class_index(list(sets[0].class_names), options.get("positive_class"))
        if task == BINARY
        else None
    )
    test_ids, targets = _test_split(sets, positive)
    scored: dict[tuple[int, float], _Scored] = {}
    labels_of = _labels(sets)
    for b, fs in enumerate(sets):
        for seed in seeds:
            for f, rows in _subsets(fs, fractions, seed, min_per_class).items():
                result = train_head(
                    fs, head=head, device=device, save=False, train_rows=rows, **options
                )
                cell = scored.setdefault((b, f), _Scored())
                _score(cell, fs, result.predictions, test_ids, positive)
                cell.seconds += result.seconds
                cell.counts, cell.rows = _counts(fs, rows), int(rows.size)
                if progress is not None:
                    progress(
                        f"{fs.name}: {f:.0%} ({rows.size} rows), seed {seed}: "
                        f"val AUC {result.val_auc:.4f} in {result.seconds:.2f}s"
                    )
    points = _points(scored, labels_of, fractions, task, targets, n_bootstrap, ci, bootstrap_seed)
    return LabelEfficiencyResult(
        points=points,
        fractions=fractions,
        seeds=seeds,
        n_test=len(test_ids),
        n_bootstrap=n_bootstrap,
        ci=ci,
        min_per_class=min_per_class,
        head=head,
        options=dict(options),
        seconds=time.perf_counter() - start,
        class_names=tuple(sets[0].class_names),
        task=task,
    )


def _subsets(
    fs: FeatureSet, fractions: Sequence[float], seed: int, min_per_class: int
) -> dict[float, np.ndarray]:
    """The nested training subsamples of one seed: stratified by class, or (multi-label)
    prefixes of a shuffle."""
    train = np.flatnonzero(np.asarray(fs.split) == 0)
    if fs.label_matrix is not None:
        return nested_prefix_subsets(
            fs.label_matrix, train, fractions, seed, min_per_class, list(fs.class_names)
        )
    return nested_subsets(np.asarray(fs.labels), train, fractions, seed, min_per_class)


def _counts(fs: FeatureSet, rows: np.ndarray) -> tuple[int, ...]:
    """Training rows of each class (multi-label: positives of each label) of a subsample."""
    if fs.label_matrix is not None:
        return tuple(int(c) for c in np.asarray(fs.label_matrix)[rows].sum(axis=0))
    return tuple(int(c) for c in np.bincount(fs.labels[rows], minlength=len(fs.class_names)))


def _score(
    cell: _Scored, fs: FeatureSet, preds: Any, test_ids: np.ndarray, positive: int | None
) -> None:
    """Add one run's test scores (and, binary, its validation-chosen threshold) to a cell."""
    position = {i: n for n, i in enumerate(preds.ids.tolist())}
    te = np.fromiter((position[i] for i in test_ids), dtype=np.intp)
    cell.scores.append(preds.score[te])
    if positive is not None:
        val = np.flatnonzero(np.asarray(fs.split) == 1)
        va = np.fromiter((position[i] for i in fs.ids[val]), dtype=np.intp)
        cell.thresholds.append(
            choose_threshold(np.asarray(fs.labels)[val] == positive, preds.score[va])
        )


def _labels(sets: Sequence[FeatureSet]) -> list[str]:
    """Backbone labels, with the cache file stem added where two names coincide."""
    names = [fs.name for fs in sets]
    return [
        f"{n} [{fs.path.stem if fs.path else k + 1}]" if names.count(n) > 1 else n
        for k, (n, fs) in enumerate(zip(names, sets, strict=True))
    ]


def _test_split(sets: Sequence[FeatureSet], positive: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The shared test ids (first set's order) and their targets: whether each is
    positive (binary), its class (K classes) or its 0/1 labels ``[Nt, L]`` (multi-label).

    Raises:
        ConfigError: If the sets' test images or labels differ, or a class is missing.
    """
    first = sets[0]

    def targets(fs: FeatureSet) -> tuple[np.ndarray, np.ndarray]:
        t = np.asarray(fs.split) == 2
        y = np.asarray(fs.label_matrix if fs.label_matrix is not None else fs.labels)[t]
        return fs.ids[t], y

    ids, y = targets(first)
    for fs in sets[1:]:
        other_ids, other_y = targets(fs)
        order = {i: n for n, i in enumerate(other_ids.tolist())}
        same = len(order) == len(ids) and all(i in order for i in ids.tolist())
        if not same or not np.array_equal(other_y[[order[i] for i in ids.tolist()]], y):
            raise ConfigError(
                f"{first.name} and {fs.name} have different test images or labels; "
                "extract every backbone from the same data with the same split"
            )
    if positive is not None:
        y = y == positive
        if y.all() or not y.any():
            raise ConfigError(f"{first.name}: the test split needs both classes")
    elif len(ids) == 0:
        raise ConfigError(f"{first.name}: the test split is empty; make a split with one")
    return ids, y


def _points(
    scored: dict[tuple[int, float], _Scored],
    names: list[str],
    fractions: tuple[float, ...],
    task: str,
    targets: np.ndarray,
    n_bootstrap: int,
    ci: float,
    seed: int,
) -> list[CurvePoint]:
    """Point estimates, seed values and bootstrap intervals of every cell."""
    metrics = CURVE_METRICS[task]

    def seed_values(cell: _Scored, weights: np.ndarray | None) -> dict[str, np.ndarray]:
        if task == BINARY:
            per_seed = [
                all_metrics(targets, s, {THRESHOLD_RULE: t}, weights)[THRESHOLD_RULE]
                for s, t in zip(cell.scores, cell.thresholds, strict=True)
            ]
        else:
            per_seed = [_class_values(task, targets, s, weights, metrics) for s in cell.scores]
        return {m: np.stack([np.asarray(v[m], np.float64) for v in per_seed]) for m in metrics}

    def statistic(weights: np.ndarray) -> dict[Hashable, np.ndarray]:
        out: dict[Hashable, np.ndarray] = {}
        for key, cell in scored.items():
            for m, v in seed_values(cell, weights).items():
                out[(key, m)] = v.mean(axis=0)
        return out

    reps = paired_bootstrap(statistic, len(targets), n_bootstrap, seed) if n_bootstrap else {}
    points = []
    for b, name in enumerate(names):
        for f in fractions:
            cell = scored[(b, f)]
            values = seed_values(cell, None)
            estimates = {}
            for m in metrics:
                low, high = percentile_interval(reps[((b, f), m)], ci) if reps else (np.nan,) * 2
                estimates[m] = Estimate(float(values[m].mean()), low, high)
            points.append(
                CurvePoint(
                    backbone=name,
                    fraction=f,
                    n_train=cell.rows,
                    n_per_class=tuple(int(c) for c in cell.counts),
                    metrics=estimates,
                    by_seed={m: tuple(float(x) for x in values[m]) for m in metrics},
                    train_seconds=cell.seconds,
                )
            )
    return points


def _class_values(
    task: str,
    targets: np.ndarray,
    proba: np.ndarray,
    weights: np.ndarray | None,
    names: Sequence[str],
) -> dict[str, np.ndarray]:
    """The named K-class or multi-label metrics of one run's test probabilities."""
    cases: Any = (
        MulticlassCases(np.asarray(targets, np.int64), np.asarray(proba), weights)
        if task == MULTICLASS
        else MultilabelCases(np.asarray(targets, bool), np.asarray(proba), weights)
    )
    return {m.name: m.compute(cases) for m in _CLASS_METRICS[task] if m.name in names}


def study_label_efficiency(
    features: Sequence[FeaturesArg], options: dict[str, Any]
) -> LabelEfficiencyResult:
    """:func:`label_efficiency` with a study TOML's ``[label_efficiency]`` table.

    Args:
        features: The study's feature sets.
        options: :func:`label_efficiency` keywords; ``seeds`` may be a count
            (seeds ``0..N-1``) or a list.

    Returns:
        The curves.

    Raises:
        ConfigError: On an invalid value (unknown keys reach :func:`train_head`,
            which names them).
    """
    opts = dict(options)
    seeds = opts.pop("seeds", SEEDS)
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ConfigError(f"label_efficiency seeds = {seeds} is invalid; give 1 or more")
        seeds = tuple(range(seeds))
    return label_efficiency(features, opts.pop("fractions", FRACTIONS), seeds, **opts)
