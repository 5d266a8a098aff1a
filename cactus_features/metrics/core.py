"""Classification metrics from saved predictions, all through one code path.

Everything is derived from confusion counts. :func:`cumulative_counts` sorts the
scores once and counts, at every distinct score used as a threshold, the true
and false positives (``predicted positive`` means ``score >= threshold``). From
these counts come

* the confusion matrix at any threshold (:meth:`CurveCounts.at`),
* accuracy, balanced accuracy, precision, recall, F1 and specificity
  (:func:`rates_from_counts`),
* the ROC curve and its area, the precision-recall curve and average precision.

Only log loss is not a function of the counts; it is the mean binary
cross-entropy of the scores. Every function accepts optional case weights
``[..., N]`` (bootstrap multiplicities), so the point estimates and the bootstrap
replicates are computed by exactly the same code.

Every reported metric is one :class:`Metric` entry of :data:`METRICS` (name,
labels, and how it is computed); the tables, CSV files and the bootstrap all
iterate that registry, so a new metric is one entry there.

Conventions (the same as scikit-learn's with ``zero_division=0``):

* precision is 0 when nothing is predicted positive;
* F1 is ``2 tp / (2 tp + fp + fn)``, i.e. 0 when ``tp`` is 0;
* recall, specificity, balanced accuracy, ROC AUC and average precision are NaN
  when a class is absent (undefined, not zero).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from cactus_features.errors import DataError

ThresholdCriterion = Literal["youden", "f1"]
"""How a threshold is chosen on the validation split: max Youden's J or max F1."""

LOG_LOSS_EPS = float(np.finfo(np.float64).eps)
"""Scores are clipped to ``[eps, 1 - eps]`` before taking logs (as scikit-learn does)."""


@dataclass(frozen=True)
class ScoredCases:
    """What a threshold-free metric is computed from.

    Attributes:
        is_pos: Whether each case is positive ``[N]``.
        score: Probability of the positive class ``[N]``.
        weights: Optional case weights ``[N]`` or ``[B, N]`` (``None``: each case once).
        curve: The cumulative counts of these cases under these weights.
    """

    is_pos: np.ndarray
    score: np.ndarray
    weights: np.ndarray | None
    curve: CurveCounts


CountsFunction = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""A threshold metric from float confusion counts ``(tp, fp, tn, fn)``."""

CasesFunction = Callable[[ScoredCases], np.ndarray]
"""A threshold-free metric from the scored cases."""


@dataclass(frozen=True)
class Metric:
    """One reported metric: its names and how it is computed.

    Exactly one of ``from_counts`` (the metric depends on the decision threshold)
    and ``from_cases`` (it does not) is given.

    Attributes:
        name: Key in every result dictionary, stem of its CSV columns.
        label: Readable name for tables and figures (``"Balanced accuracy"``).
        short_label: Column header of the terminal table (``"BalAcc"``).
        from_counts: The value from confusion counts, broadcast over their shape.
        from_cases: The value from the scored cases, with the leading shape of the weights.
        lower_is_better: Whether a smaller value is better.
    """

    name: str
    label: str
    short_label: str
    from_counts: CountsFunction | None = None
    from_cases: CasesFunction | None = None
    lower_is_better: bool = False

    def __post_init__(self) -> None:
        if (self.from_counts is None) == (self.from_cases is None):
            raise ValueError(f"metric {self.name!r}: give exactly one of from_counts, from_cases")


def _accuracy(tp: np.ndarray, fp: np.ndarray, tn: np.ndarray, fn: np.ndarray) -> np.ndarray:
    return _div(tp + tn, tp + fp + tn + fn, undefined=np.nan)


def _recall(tp: np.ndarray, fp: np.ndarray, tn: np.ndarray, fn: np.ndarray) -> np.ndarray:
    return _div(tp, tp + fn, undefined=np.nan)


def _specificity(tp: np.ndarray, fp: np.ndarray, tn: np.ndarray, fn: np.ndarray) -> np.ndarray:
    return _div(tn, tn + fp, undefined=np.nan)


def _balanced_accuracy(
    tp: np.ndarray, fp: np.ndarray, tn: np.ndarray, fn: np.ndarray
) -> np.ndarray:
    return (_recall(tp, fp, tn, fn) + _specificity(tp, fp, tn, fn)) / 2.0


def _precision(tp: np.ndarray, fp: np.ndarray, tn: np.ndarray, fn: np.ndarray) -> np.ndarray:
    return _div(tp, tp + fp, undefined=0.0)


def _f1(tp: np.ndarray, fp: np.ndarray, tn: np.ndarray, fn: np.ndarray) -> np.ndarray:
    return _div(2.0 * tp, 2.0 * tp + fp + fn, undefined=np.nan)


def _log_loss(cases: ScoredCases) -> np.ndarray:
    terms = log_loss_terms(cases.is_pos, cases.score)
    if cases.weights is None:
        return np.asarray(terms.mean() if len(terms) else np.nan)
    w = np.asarray(cases.weights, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (w @ terms) / w.sum(axis=-1)


METRICS: tuple[Metric, ...] = (
    Metric("roc_auc", "ROC AUC", "AUC", from_cases=lambda c: c.curve.roc_auc()),
    Metric(
        "average_precision",
        "Average precision",
        "AP",
        from_cases=lambda c: c.curve.average_precision(),
    ),
    Metric("accuracy", "Accuracy", "Acc", from_counts=_accuracy),
    Metric("balanced_accuracy", "Balanced accuracy", "BalAcc", from_counts=_balanced_accuracy),
    Metric("precision", "Precision", "Prec", from_counts=_precision),
    Metric("recall", "Recall", "Recall", from_counts=_recall),
    Metric("f1", "F1", "F1", from_counts=_f1),
    Metric("specificity", "Specificity", "Spec", from_counts=_specificity),
    Metric("log_loss", "Log loss", "LogLoss", from_cases=_log_loss, lower_is_better=True),
)
"""Every reported metric, in table order: the one place to add a metric."""

METRIC_NAMES: tuple[str, ...] = tuple(m.name for m in METRICS)
"""Every metric reported, in table order."""

THRESHOLD_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS if m.from_counts is not None)
"""Metrics that depend on the decision threshold (functions of the confusion counts)."""

METRIC_LABELS: dict[str, str] = {m.name: m.label for m in METRICS}
"""Readable metric names for tables and figures."""

METRIC_SHORT_LABELS: dict[str, str] = {m.name: m.short_label for m in METRICS}
"""Column headers of the terminal table."""

LOWER_IS_BETTER: frozenset[str] = frozenset(m.name for m in METRICS if m.lower_is_better)
"""Metrics where a smaller value is better."""


@dataclass(frozen=True)
class CurveCounts:
    """Cumulative confusion counts at every distinct score, highest score first.

    Predicting "positive" for ``score >= thresholds[k]`` gives ``tp[..., k]`` true
    positives and ``fp[..., k]`` false positives. Leading dimensions (if any) are
    bootstrap replicates.

    Attributes:
        thresholds: Distinct scores, descending ``[T]``.
        tp: Cumulative true positives ``[..., T]``.
        fp: Cumulative false positives ``[..., T]``.
        n_pos: Number (total weight) of positives ``[...]``.
        n_neg: Number (total weight) of negatives ``[...]``.
    """

    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    n_pos: np.ndarray
    n_neg: np.ndarray

    def at(self, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Confusion counts when ``score >= threshold`` is predicted positive.

        Args:
            threshold: The decision threshold.

        Returns:
            ``(tp, fp, tn, fn)``, each of the leading shape ``[...]``.
        """
        # number of distinct scores >= threshold (thresholds are descending)
        k = int(np.searchsorted(-self.thresholds, -float(threshold), side="right"))
        if k == 0:
            tp = np.zeros_like(self.n_pos)
            fp = np.zeros_like(self.n_neg)
        else:
            tp = self.tp[..., k - 1]
            fp = self.fp[..., k - 1]
        return tp, fp, self.n_neg - fp, self.n_pos - tp

    def roc(self) -> tuple[np.ndarray, np.ndarray]:
        """ROC curve points ``(fpr, tpr)``, starting at ``(0, 0)`` and ending at ``(1, 1)``."""
        n_pos = np.expand_dims(self.n_pos, -1)
        n_neg = np.expand_dims(self.n_neg, -1)
        fpr = _div(self.fp.astype(np.float64), n_neg, undefined=np.nan)
        tpr = _div(self.tp.astype(np.float64), n_pos, undefined=np.nan)
        return _prepend_zero(fpr), _prepend_zero(tpr)

    def precision_recall(self) -> tuple[np.ndarray, np.ndarray]:
        """Precision-recall curve points ``(recall, precision)`` at every distinct score."""
        rates = rates_from_counts(*self._all_counts())
        return rates["recall"], rates["precision"]

    def roc_auc(self) -> np.ndarray:
        """Area under the ROC curve (trapezoidal; ties count one half), ``[...]``.

        Computed from integer counts as ``sum(dfp * (tp_k + tp_{k-1})) / (2 P N)``,
        which equals the Mann-Whitney statistic and can never exceed 1.
        """
        tp = _prepend_zero(self.tp)
        fp = _prepend_zero(self.fp)
        num = np.sum(np.diff(fp, axis=-1) * (tp[..., 1:] + tp[..., :-1]), axis=-1)
        den = 2 * self.n_pos * self.n_neg
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)

    def average_precision(self) -> np.ndarray:
        """Average precision ``sum_k (R_k - R_{k-1}) P_k`` (as scikit-learn), ``[...]``.

        Under bootstrap weights the highest scores may all have weight 0 (not drawn):
        nothing is predicted positive there, and no recall is gained either. Their
        precision is taken as 0 (it is multiplied by a zero gain), so the AP of such a
        resample is scikit-learn's AP of the rows drawn, not NaN.
        """
        tp = self.tp.astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = _div(tp, tp + self.fp, undefined=0.0)
            gained = np.diff(_prepend_zero(tp), axis=-1)
            ap = np.sum(gained * precision, axis=-1) / self.n_pos
        ap = np.where(self.n_pos > 0, ap, np.nan)
        return np.minimum(ap, 1.0)  # guards the last ulp of float summation

    def _all_counts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        n_pos = np.expand_dims(self.n_pos, -1)
        n_neg = np.expand_dims(self.n_neg, -1)
        return self.tp, self.fp, n_neg - self.fp, n_pos - self.tp


def cumulative_counts(
    is_pos: np.ndarray, score: np.ndarray, weights: np.ndarray | None = None
) -> CurveCounts:
    """Count true and false positives at every distinct score (sort once, cumulate).

    Args:
        is_pos: Whether each case is of the positive class ``[N]``.
        score: Predicted probability of the positive class ``[N]``.
        weights: Optional non-negative integer case weights ``[N]`` or ``[B, N]``
            (bootstrap multiplicities); ``None`` counts every case once.

    Returns:
        The cumulative counts; leading shape ``[]`` or ``[B]``.
    """
    is_pos = np.asarray(is_pos, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    order = np.argsort(-score, kind="stable")
    s = score[order]
    pos = is_pos[order]
    last_of_group = np.append(np.flatnonzero(np.diff(s) != 0), len(s) - 1) if len(s) else []
    last_of_group = np.asarray(last_of_group, dtype=np.intp)
    if weights is None:
        w = np.ones(len(s), dtype=np.int64)
    else:
        w = np.asarray(weights)[..., order].astype(np.int64, copy=False)
    wpos = w * pos
    wneg = w * ~pos
    tp = np.cumsum(wpos, axis=-1)[..., last_of_group]
    fp = np.cumsum(wneg, axis=-1)[..., last_of_group]
    return CurveCounts(
        thresholds=s[last_of_group],
        tp=tp,
        fp=fp,
        n_pos=np.asarray(wpos.sum(axis=-1)),
        n_neg=np.asarray(wneg.sum(axis=-1)),
    )


def rates_from_counts(
    tp: np.ndarray | float, fp: np.ndarray | float, tn: np.ndarray | float, fn: np.ndarray | float
) -> dict[str, np.ndarray]:
    """Every threshold metric from confusion counts (the single source of these numbers).

    Args:
        tp: True positives.
        fp: False positives (negatives predicted positive).
        tn: True negatives.
        fn: False negatives (positives predicted negative).

    Returns:
        ``accuracy``, ``balanced_accuracy``, ``precision`` (``tp / (tp + fp)``),
        ``recall`` (``tp / (tp + fn)``), ``f1`` and ``specificity``
        (``tn / (tn + fp)``), broadcast to the shape of the counts.
    """
    tp, fp, tn, fn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, tn, fn))
    return {m.name: m.from_counts(tp, fp, tn, fn) for m in METRICS if m.from_counts is not None}


def log_loss_terms(is_pos: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Per-case binary cross-entropy ``-log p(true class)`` with clipped scores ``[N]``."""
    p = np.clip(np.asarray(score, dtype=np.float64), LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS)
    return np.where(np.asarray(is_pos, dtype=bool), -np.log(p), -np.log1p(-p))


def all_metrics(
    is_pos: np.ndarray,
    score: np.ndarray,
    thresholds: dict[str, float],
    weights: np.ndarray | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Every metric at several thresholds, optionally for many weightings at once.

    This is the function both the point estimates and the bootstrap replicates
    go through.

    Args:
        is_pos: Whether each case is positive ``[N]``.
        score: Probability of the positive class ``[N]``.
        thresholds: Decision threshold by rule name (e.g. ``{"0.5": 0.5, "val": 0.37}``).
        weights: Optional case weights ``[N]`` or ``[B, N]``.

    Returns:
        ``{rule: {metric: value}}`` for every rule and every name in
        :data:`METRIC_NAMES`, plus ``tp``, ``fp``, ``tn``, ``fn``; values have the
        leading shape of ``weights`` (scalar arrays without weights).
    """
    curve = cumulative_counts(is_pos, score, weights)
    cases = ScoredCases(is_pos, score, weights, curve)
    ranking = {m.name: m.from_cases(cases) for m in METRICS if m.from_cases is not None}
    out: dict[str, dict[str, np.ndarray]] = {}
    for rule, t in thresholds.items():
        tp, fp, tn, fn = curve.at(t)
        values = rates_from_counts(tp, fp, tn, fn)
        values.update(ranking)
        values.update(tp=tp, fp=fp, tn=tn, fn=fn)
        out[rule] = values
    return out


@dataclass(frozen=True)
class ConfusionMatrix:
    """A binary confusion matrix with its positive class stated.

    Rows are the true class and columns the predicted class, both ordered
    ``(negative, positive)``: ``[[tn, fp], [fn, tp]]``.

    Attributes:
        tp: Positives predicted positive.
        fp: Negatives predicted positive.
        tn: Negatives predicted negative.
        fn: Positives predicted negative.
        negative_name: Name of the negative class (``"not X"`` for one-vs-rest).
        positive_name: Name of the positive class.
        threshold: The decision threshold (``score >= threshold`` is positive).
    """

    tp: int
    fp: int
    tn: int
    fn: int
    negative_name: str
    positive_name: str
    threshold: float

    @property
    def n(self) -> int:
        """Number of cases."""
        return self.tp + self.fp + self.tn + self.fn

    def as_array(self) -> np.ndarray:
        """The matrix ``[[tn, fp], [fn, tp]]`` (rows true, columns predicted)."""
        return np.array([[self.tn, self.fp], [self.fn, self.tp]], dtype=np.int64)

    def rates(self) -> dict[str, float]:
        """Threshold metrics computed from exactly these four counts."""
        return {
            k: float(v) for k, v in rates_from_counts(self.tp, self.fp, self.tn, self.fn).items()
        }

    def to_text(self) -> str:
        """The matrix as a small labelled text table."""
        names = [self.negative_name, self.positive_name]
        head = [
            f"true \\ predicted (positive: {self.positive_name}, t={self.threshold:.4g})",
            *names,
        ]
        rows = [[names[i], *(str(v) for v in row)] for i, row in enumerate(self.as_array())]
        widths = [max(len(r[j]) for r in [head, *rows]) for j in range(3)]
        lines = [
            "  ".join(c.rjust(widths[j]) if j else c.ljust(widths[j]) for j, c in enumerate(r))
            for r in [head, *rows]
        ]
        return "\n".join(lines)


@dataclass(frozen=True)
class ThresholdResult:
    """Every metric of one run's predictions at one decision threshold.

    Attributes:
        rule: Name of the threshold rule (``"0.5"``, ``"val"``, or a number).
        threshold: The threshold applied (``score >= threshold`` is positive).
        confusion: The confusion matrix all threshold metrics are computed from.
        values: Metric value by name (see :data:`METRIC_NAMES`).
    """

    rule: str
    threshold: float
    confusion: ConfusionMatrix
    values: dict[str, float] = field(default_factory=dict)


def binary_targets(label: np.ndarray, positive_class: int) -> np.ndarray:
    """One-vs-rest targets: whether each label is the positive class."""
    return np.asarray(label) == int(positive_class)


def class_pair(class_names: list[str] | None, positive_class: int) -> tuple[str, str]:
    """Names ``(negative, positive)`` for a one-vs-rest binary view of the classes.

    Args:
        class_names: All class names in index order (may be empty or ``None``).
        positive_class: Index of the positive class.

    Returns:
        The other class's name for two classes, ``"not <positive>"`` otherwise.
    """
    names = list(class_names or [])
    pos = names[positive_class] if 0 <= positive_class < len(names) else f"class {positive_class}"
    if len(names) == 2:
        return names[1 - positive_class], pos
    return f"not {pos}", pos


def evaluate(
    is_pos: np.ndarray,
    score: np.ndarray,
    thresholds: dict[str, float],
    class_names: tuple[str, str] = ("negative", "positive"),
) -> dict[str, ThresholdResult]:
    """Point estimates of every metric at each threshold.

    Args:
        is_pos: Whether each case is positive ``[N]``.
        score: Probability of the positive class ``[N]``.
        thresholds: Decision threshold by rule name.
        class_names: ``(negative, positive)`` names for the confusion matrix.

    Returns:
        A :class:`ThresholdResult` per rule.
    """
    check_scores(score)
    raw = all_metrics(is_pos, score, thresholds)
    out = {}
    for rule, values in raw.items():
        cm = ConfusionMatrix(
            tp=int(values["tp"]),
            fp=int(values["fp"]),
            tn=int(values["tn"]),
            fn=int(values["fn"]),
            negative_name=class_names[0],
            positive_name=class_names[1],
            threshold=float(thresholds[rule]),
        )
        metrics = {k: float(values[k]) for k in METRIC_NAMES}
        out[rule] = ThresholdResult(rule, float(thresholds[rule]), cm, metrics)
    return out


def choose_threshold(
    is_pos: np.ndarray, score: np.ndarray, criterion: ThresholdCriterion = "youden"
) -> float:
    """Choose a decision threshold on (validation) predictions.

    Every distinct score is a candidate cut. The cut maximising the criterion is
    taken (ties: the one whose threshold is closest to 0.5), and the returned
    threshold is the midpoint between that score and the next lower distinct
    score, so the chosen split of these predictions is kept while new scores
    falling in the gap are not decided by an arbitrary boundary.

    Args:
        is_pos: Whether each case is positive ``[N]``.
        score: Probability of the positive class ``[N]``.
        criterion: ``"youden"`` maximises Youden's J = recall + specificity - 1;
            ``"f1"`` maximises F1 of the positive class.

    Returns:
        The threshold (``score >= threshold`` is predicted positive).

    Raises:
        DataError: If the predictions do not contain both classes.
        ValueError: If the criterion is unknown.
    """
    check_scores(score)
    curve = cumulative_counts(is_pos, score)
    if curve.n_pos == 0 or curve.n_neg == 0:
        raise DataError(
            "cannot choose a threshold: the validation predictions contain only one class"
        )
    rates = rates_from_counts(*curve._all_counts())
    if criterion == "youden":
        objective = rates["recall"] + rates["specificity"] - 1.0
    elif criterion == "f1":
        objective = rates["f1"]
    else:
        raise ValueError(f"unknown threshold criterion {criterion!r}; use 'youden' or 'f1'")
    lower = np.append(curve.thresholds[1:], 0.0)
    cut = (curve.thresholds + lower) / 2.0
    cut[-1] = curve.thresholds[-1]  # everything positive: keep the lowest score itself
    best = np.flatnonzero(np.isclose(objective, np.nanmax(objective), rtol=0, atol=1e-12))
    return float(cut[best[np.argmin(np.abs(cut[best] - 0.5))]])


def check_scores(score: np.ndarray) -> None:
    """Refuse scores that are not finite probabilities.

    Raises:
        DataError: If any score is NaN, infinite or outside ``[0, 1]``.
    """
    s = np.asarray(score, dtype=np.float64)
    bad = ~np.isfinite(s) | (s < 0) | (s > 1)
    if bad.any():
        raise DataError(
            f"{int(bad.sum())} of {len(s)} scores are not probabilities in [0, 1] "
            "(NaN, infinite or out of range); the run file is damaged or was written wrongly"
        )


def _div(num: np.ndarray, den: np.ndarray, *, undefined: float) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), undefined)


def _prepend_zero(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    pad = [(0, 0)] * (x.ndim - 1) + [(1, 0)]
    return np.pad(x, pad)
