"""The figures of a K-class or multi-label report: what each one draws, its file and caption.

:data:`MULTICLASS_FIGURE_SPECS` and :data:`MULTILABEL_FIGURE_SPECS` list them in
report order (the K-class counterparts of
:data:`~cactus_features.report.figures.FIGURE_SPECS`); a new figure is one
:class:`~cactus_features.report.figures.FigureSpec` there.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

from cactus_features.metrics.class_results import ClassComparison
from cactus_features.report.figures import FigureSpec, load_plots

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

MULTICLASS_DECISION = "predicted class: the most probable one"
"""How a K-class prediction is made (figure titles, report text)."""

MULTILABEL_DECISION = "a label is predicted present when its probability is >= 0.5"
"""How a multi-label prediction is made."""


def _class_plots() -> ModuleType:
    """:mod:`~cactus_features.report.class_plots` (and so matplotlib), imported when drawing."""
    from cactus_features.report import class_plots

    return class_plots


def _confusion(c: ClassComparison) -> Figure:
    return _class_plots().class_confusion_figure(
        [b.label for b in c.backbones],
        [c.confusion[b.label] for b in c.backbones],
        c.class_names,
        decision=MULTICLASS_DECISION,
    )


def _per_label_ap(c: ClassComparison) -> Figure:
    rows = [c.classes_of(b.label) for b in c.backbones]
    ap = [[r.metrics["average_precision"] for r in rs] for rs in rows]
    return _class_plots().per_label_bars_figure(
        [b.label for b in c.backbones],
        c.class_names,
        [[e.value for e in es] for es in ap],
        [[e.low for e in es] for es in ap],
        [[e.high for e in es] for es in ap],
        quantity="Average precision (test set)",
        title=f"Per-label average precision (n = {c.n_test}; whiskers: {c.ci:.0%} CI)"
        if c.n_bootstrap
        else f"Per-label average precision (n = {c.n_test})",
        reference=(c.support / max(1, c.n_test)).tolist(),
        reference_label="prevalence (AP of a random ranking)",
    )


def _training_curves(c: ClassComparison) -> Figure | None:
    return load_plots().history_figure(
        [b.label for b in c.backbones], [b.history for b in c.backbones]
    )


_TRAINING = FigureSpec(
    "training_curves.png", "Head training and validation curves per epoch.", _training_curves
)

MULTICLASS_FIGURE_SPECS: dict[str, FigureSpec] = {
    "class_confusion": FigureSpec(
        "confusion_matrices.png",
        "Test confusion matrices: share of each true class (left) and counts (right).",
        _confusion,
    ),
    "training_curves": _TRAINING,
}
"""Every figure of a K-class report by key, in report order."""

MULTILABEL_FIGURE_SPECS: dict[str, FigureSpec] = {
    "per_label_ap": FigureSpec(
        "per_label_ap.png",
        "Average precision of each label on the test set (ticks: the label's prevalence).",
        _per_label_ap,
    ),
    "training_curves": _TRAINING,
}
"""Every figure of a multi-label report by key, in report order."""
