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

Per (backbone, fraction) the reported value is the mean over seeds of the test
ROC AUC and of the test accuracy at each run's validation-chosen threshold
(max Youden's J, as ``compare``'s default rule). Its interval is a paired
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

from cactus_features.errors import ConfigError
from cactus_features.features import FeatureSet
from cactus_features.heads import train_head
from cactus_features.heads.prepare.data import FeaturesArg, resolve_features
from cactus_features.metrics.core import all_metrics, choose_threshold
from cactus_features.metrics.results import Estimate
from cactus_features.metrics.stats import paired_bootstrap, percentile_interval

FRACTIONS = (0.01, 0.02, 0.05, 0.10, 0.25, 0.50, 1.0)
"""Default shares of the training split."""
SEEDS = (0, 1, 2)
"""Default subsampling seeds."""
MIN_PER_CLASS = 2
"""Fewest training rows of each class in any subsample."""
CURVE_METRICS = ("roc_auc", "accuracy")
"""The metrics of the curves (names in :data:`~cactus_features.metrics.core.METRIC_NAMES`)."""
THRESHOLD_RULE = "val"
"""Accuracy is taken at each run's validation-chosen threshold (max Youden's J)."""


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
        n_per_class: Training rows of each class.
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

    @property
    def backbones(self) -> list[str]:
        """Backbone labels in input order."""
        return list(dict.fromkeys(p.backbone for p in self.points))

    def curve(self, backbone: str) -> list[CurvePoint]:
        """One backbone's points, fractions ascending."""
        return [p for p in self.points if p.backbone == backbone]


@dataclass
class _Scored:
    """Test scores and thresholds of one (backbone, fraction) over the seeds."""

    scores: list[np.ndarray] = field(default_factory=list)
    thresholds: list[float] = field(default_factory=list)
    seconds: float = 0.0
    counts: tuple[int, ...] = ()


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
    test_ids, is_pos = _test_split(sets)
    scored: dict[tuple[int, float], _Scored] = {}
    labels_of = _labels(sets)
    for b, fs in enumerate(sets):
        labels = np.asarray(fs.labels)
        split = np.asarray(fs.split)
        train, val = np.flatnonzero(split == 0), np.flatnonzero(split == 1)
        for seed in seeds:
            subsets = nested_subsets(labels, train, fractions, seed, min_per_class)
            for f in fractions:
                rows = subsets[f]
                result = train_head(
                    fs, head=head, device=device, save=False, train_rows=rows, **options
                )
                preds = result.predictions
                position = {i: n for n, i in enumerate(preds.ids.tolist())}
                te = np.fromiter((position[i] for i in test_ids), dtype=np.intp)
                va = np.fromiter((position[i] for i in fs.ids[val]), dtype=np.intp)
                cell = scored.setdefault((b, f), _Scored())
                cell.scores.append(preds.score[te])
                cell.thresholds.append(choose_threshold(labels[val] == 1, preds.score[va]))
                cell.seconds += result.seconds
                cell.counts = tuple(np.bincount(labels[rows], minlength=len(fs.class_names)))
                if progress is not None:
                    progress(
                        f"{fs.name}: {f:.0%} ({rows.size} rows), seed {seed}: "
                        f"val AUC {result.val_auc:.4f} in {result.seconds:.2f}s"
                    )
    points = _points(scored, labels_of, fractions, is_pos, n_bootstrap, ci, bootstrap_seed)
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
    )


def _labels(sets: Sequence[FeatureSet]) -> list[str]:
    """Backbone labels, with the cache file stem added where two names coincide."""
    names = [fs.name for fs in sets]
    return [
        f"{n} [{fs.path.stem if fs.path else k + 1}]" if names.count(n) > 1 else n
        for k, (n, fs) in enumerate(zip(names, sets, strict=True))
    ]


def _test_split(sets: Sequence[FeatureSet]) -> tuple[np.ndarray, np.ndarray]:
    """The shared test ids (first set's order) and whether each is positive.

    Raises:
        ConfigError: If the sets' test images or labels differ, or a class is missing.
    """
    first = sets[0]
    test = np.asarray(first.split) == 2
    ids, labels = first.ids[test], np.asarray(first.labels)[test]
    for fs in sets[1:]:
        t = np.asarray(fs.split) == 2
        other = dict(zip(fs.ids[t].tolist(), np.asarray(fs.labels)[t].tolist(), strict=True))
        if len(other) != len(ids) or any(
            other.get(i) != lab for i, lab in zip(ids, labels, strict=True)
        ):
            raise ConfigError(
                f"{first.name} and {fs.name} have different test images or labels; "
                "extract every backbone from the same data with the same split"
            )
    is_pos = labels == 1
    if is_pos.all() or not is_pos.any():
        raise ConfigError(f"{first.name}: the test split needs both classes")
    return ids, is_pos


def _points(
    scored: dict[tuple[int, float], _Scored],
    names: list[str],
    fractions: tuple[float, ...],
    is_pos: np.ndarray,
    n_bootstrap: int,
    ci: float,
    seed: int,
) -> list[CurvePoint]:
    """Point estimates, seed values and bootstrap intervals of every cell."""

    def seed_values(cell: _Scored, weights: np.ndarray | None) -> dict[str, np.ndarray]:
        per_seed = [
            all_metrics(is_pos, s, {THRESHOLD_RULE: t}, weights)[THRESHOLD_RULE]
            for s, t in zip(cell.scores, cell.thresholds, strict=True)
        ]
        return {
            m: np.stack([np.asarray(v[m], np.float64) for v in per_seed]) for m in CURVE_METRICS
        }

    def statistic(weights: np.ndarray) -> dict[Hashable, np.ndarray]:
        out: dict[Hashable, np.ndarray] = {}
        for key, cell in scored.items():
            for m, v in seed_values(cell, weights).items():
                out[(key, m)] = v.mean(axis=0)
        return out

    reps = paired_bootstrap(statistic, len(is_pos), n_bootstrap, seed) if n_bootstrap else {}
    points = []
    for b, name in enumerate(names):
        for f in fractions:
            cell = scored[(b, f)]
            values = seed_values(cell, None)
            metrics = {}
            for m in CURVE_METRICS:
                low, high = percentile_interval(reps[((b, f), m)], ci) if reps else (np.nan,) * 2
                metrics[m] = Estimate(float(values[m].mean()), low, high)
            points.append(
                CurvePoint(
                    backbone=name,
                    fraction=f,
                    n_train=int(sum(cell.counts)),
                    n_per_class=tuple(int(c) for c in cell.counts),
                    metrics=metrics,
                    by_seed={m: tuple(float(x) for x in values[m]) for m in CURVE_METRICS},
                    train_seconds=cell.seconds,
                )
            )
    return points


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
