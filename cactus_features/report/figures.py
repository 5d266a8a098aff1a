"""The figures of a report: what each one draws, its file name and its caption.

:data:`FIGURE_SPECS` lists them in report order; a new figure is one entry
there (a drawing function from :mod:`~cactus_features.report.plots`, a file
name and a caption).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from cactus_features.metrics.core import cumulative_counts
from cactus_features.metrics.results import Comparison
from cactus_features.notices import warn
from cactus_features.report.formatting import rule_description, rule_short

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class FigureSpec:
    """One report figure.

    Attributes:
        file: File name in the report folder.
        caption: Caption under the figure in ``report.md``.
        draw: Builds the figure, or returns ``None`` when there is nothing to draw.
    """

    file: str
    caption: str
    draw: Callable[[Any], Figure | None]


def _roc(c: Comparison) -> Figure:
    plots = load_plots()
    rows = c.rows()
    operating = [
        (1.0 - r.confusion.rates()["specificity"], r.confusion.rates()["recall"]) for r in rows
    ]
    return plots.roc_figure(
        [b.label for b in c.backbones],
        [cumulative_counts(c.test_is_pos, b.test_score) for b in c.backbones],
        positive_name=c.positive_name,
        operating_points=operating,
        operating_label=f"operating point ({rule_short(c.primary_rule)})",
    )


def _precision_recall(c: Comparison) -> Figure:
    plots = load_plots()
    return plots.precision_recall_figure(
        [b.label for b in c.backbones],
        [cumulative_counts(c.test_is_pos, b.test_score) for b in c.backbones],
        positive_name=c.positive_name,
    )


def _training_curves(c: Comparison) -> Figure | None:
    plots = load_plots()
    return plots.history_figure(
        [b.label for b in c.backbones],
        [b.history for b in c.backbones],
        subject=f"positive class: {c.positive_name}",
    )


def _validation_grid(c: Comparison) -> Figure | None:
    params = {p.param for p in c.protocols if p.param}
    return load_plots().grid_figure(
        [p.backbone for p in c.protocols],
        [(p.grid_values, p.grid_val_loss, p.grid_val_auc, p.chosen) for p in c.protocols],
        param="L2 strength" if params == {"l2"} else " / ".join(sorted(params)) or "strength",
        subject=f"positive class: {c.positive_name}",
    )


def _confusion_matrices(c: Comparison) -> Figure:
    plots = load_plots()
    return plots.confusion_figure(
        [b.label for b in c.backbones],
        [r.confusion for r in c.rows()],
        rule_description=rule_description(c.primary_rule, c.val_criterion),
    )


FIGURE_SPECS: dict[str, FigureSpec] = {
    "roc": FigureSpec(
        "roc.png",
        "ROC curves on the test set (AUC in the legend; dots: operating points at the "
        "primary threshold rule).",
        _roc,
    ),
    "precision_recall": FigureSpec(
        "precision_recall.png",
        "Precision-recall curves on the test set (average precision in the legend).",
        _precision_recall,
    ),
    "training_curves": FigureSpec(
        "training_curves.png",
        "Head training and validation curves per epoch.",
        _training_curves,
    ),
    "validation_grid": FigureSpec(
        "validation_grid.png",
        "Validation log loss and AUC of each backbone's head at every strength of the tuned "
        "protocol's grid (circle: the chosen strength).",
        _validation_grid,
    ),
    "confusion_matrices": FigureSpec(
        "confusion_matrices.png",
        "Test confusion matrices at the primary threshold rule.",
        _confusion_matrices,
    ),
}
"""Every report figure by key, in report order."""

FIGURES: dict[str, str] = {key: spec.file for key, spec in FIGURE_SPECS.items()}
"""File name of each figure in the report folder."""

FIGURE_CAPTIONS: dict[str, str] = {key: spec.caption for key, spec in FIGURE_SPECS.items()}
"""Caption of each figure in ``report.md``."""


def load_plots() -> ModuleType:
    """:mod:`~cactus_features.report.plots` (and so matplotlib), imported when drawing."""
    from cactus_features.report import plots

    return plots


@functools.cache
def _say_no_figures(reason: str) -> None:
    """Warn, once per process, that reports are written without figures."""
    warn(
        f"matplotlib cannot be imported ({reason}): reports are written without figures; "
        "pip install 'matplotlib>=3.7' for them"
    )


def write_figures(
    comparison: Any, out: Path, specs: Mapping[str, FigureSpec] | None = None
) -> dict[str, str]:
    """Draw and save every figure; returns ``{figure: file name}`` of those written.

    Without matplotlib nothing is drawn (said once) and the report has no figures.

    Args:
        comparison: The comparison.
        out: The report folder.
        specs: The figures to draw (default :data:`FIGURE_SPECS`, the binary ones).
    """
    try:
        plots = load_plots()
    except ImportError as exc:
        _say_no_figures(str(exc))
        return {}
    written: dict[str, str] = {}
    for key, spec in (FIGURE_SPECS if specs is None else specs).items():
        fig = spec.draw(comparison)
        if fig is not None:
            plots.save_figure(fig, out / spec.file)
            written[key] = spec.file
    return written
