"""Figures of a K-class or multi-label comparison (matplotlib object-oriented API, no pyplot).

* :func:`class_confusion_figure` — each backbone's K x K test confusion matrix,
  row-normalised and as counts, readable from K = 2 to K = 50 and more: cell
  numbers only while they fit (K <= :data:`MAX_ANNOTATED`), tick labels thinned
  and shrunk for large K, a colour bar on every panel.
* :func:`per_label_bars_figure` — one value per class (label) and backbone as
  grouped horizontal bars with interval whiskers (per-label AP of a multi-label
  comparison).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from cactus_features.report.plots import colors

MAX_ANNOTATED = 12
"""Largest K whose confusion cells carry their numbers."""

MAX_TICK_LABELS = 25
"""At most this many class names per axis; every n-th is shown beyond it."""


def _class_ticks(ax, names: Sequence[str]) -> None:
    """Class names on both axes: all of them up to :data:`MAX_TICK_LABELS`, then every n-th."""
    k = len(names)
    step = max(1, math.ceil(k / MAX_TICK_LABELS))
    ticks = list(range(0, k, step))
    size = "medium" if k <= 10 else "small" if k <= 20 else "x-small"
    labels = [names[i] for i in ticks]
    ax.set_xticks(ticks, labels, rotation=90 if k > 6 else 0, fontsize=size)
    ax.set_yticks(ticks, labels, fontsize=size)


def class_confusion_figure(
    labels: Sequence[str],
    counts: Sequence[np.ndarray],
    class_names: Sequence[str],
    *,
    decision: str,
) -> Figure:
    """Confusion matrices of every backbone: row-normalised (left) and counts (right).

    Args:
        labels: Backbone labels.
        counts: Each backbone's ``[K, K]`` counts (rows true, columns predicted).
        class_names: The ``K`` class names.
        decision: How the predicted class is chosen (for the title).

    Returns:
        The figure: one row of two panels per backbone.
    """
    k = len(class_names)
    annotate = k <= MAX_ANNOTATED
    side = 4.2 if k <= 10 else 5.2 if k <= 25 else 6.4
    n = len(labels)
    fig = Figure(figsize=(2 * side + 1.6, side * n + 0.8), layout="constrained")
    axes = fig.subplots(n, 2, squeeze=False)
    for row, (label, cm) in enumerate(zip(labels, counts, strict=True)):
        cm = np.asarray(cm)
        totals = cm.sum(axis=1, keepdims=True)
        share = np.divide(cm, totals, out=np.zeros(cm.shape), where=totals > 0)
        panels = (
            (share, "Share of the true class", Normalize(0.0, 1.0), "row-normalised"),
            (cm, "Images", Normalize(0.0, max(1.0, float(cm.max()))), "counts"),
        )
        for ax, (values, bar_label, norm, kind) in zip(axes[row], panels, strict=True):
            image = ax.imshow(values, cmap="Blues", norm=norm, interpolation="nearest")
            fig.colorbar(image, ax=ax, shrink=0.8, label=bar_label)
            if annotate:
                for (i, j), v in np.ndenumerate(values):
                    text = f"{v:.0%}" if kind == "row-normalised" else f"{int(v)}"
                    ax.text(
                        j,
                        i,
                        text,
                        ha="center",
                        va="center",
                        fontsize="small" if k <= 6 else "x-small",
                        color="white" if norm(v) > 0.6 else "black",
                    )
            _class_ticks(ax, class_names)
            ax.set(
                xlabel="Predicted class",
                ylabel="True class",
                title=f"{label}: {kind} (n = {int(cm.sum())})",
            )
    fig.suptitle(f"Test confusion matrices, {k} classes ({decision})")
    return fig


def per_label_bars_figure(
    labels: Sequence[str],
    class_names: Sequence[str],
    values: Sequence[Sequence[float]],
    lows: Sequence[Sequence[float]],
    highs: Sequence[Sequence[float]],
    *,
    quantity: str,
    title: str,
    reference: Sequence[float] | None = None,
    reference_label: str = "",
) -> Figure:
    """Grouped horizontal bars: one value per class (label) and backbone, with whiskers.

    Args:
        labels: Backbone labels.
        class_names: Class (label) names, top to bottom.
        values: ``values[b][c]`` for backbone ``b`` and class ``c`` (NaN: no bar).
        lows: Lower interval ends (NaN: no whisker).
        highs: Upper interval ends.
        quantity: The axis label (``"Average precision"``).
        title: Figure title.
        reference: Optional per-class reference drawn as a black tick (e.g. the
            label's prevalence, the AP of a random ranking).
        reference_label: Legend entry of the reference.

    Returns:
        The figure.
    """
    k, n = len(class_names), len(labels)
    height = max(3.0, 0.28 * k * max(1.0, n / 2) + 1.5)
    fig = Figure(figsize=(7.5, height), layout="constrained")
    ax = fig.add_subplot()
    bar = 0.8 / n
    centres = np.arange(k)
    for b, (label, color) in enumerate(zip(labels, colors(n), strict=True)):
        v = np.asarray(values[b], dtype=np.float64)
        lo = np.asarray(lows[b], dtype=np.float64)
        hi = np.asarray(highs[b], dtype=np.float64)
        y = centres - 0.4 + bar * (b + 0.5)
        err = np.where(np.isfinite(lo) & np.isfinite(hi), [v - lo, hi - v], 0.0)
        ax.barh(y, np.nan_to_num(v), height=bar, color=color, label=label)
        ax.errorbar(v, y, xerr=err, fmt="none", ecolor="black", elinewidth=0.8, capsize=1.5)
    if reference is not None:
        ax.scatter(reference, centres, marker="|", s=120, color="black", label=reference_label)
    size = "medium" if k <= 15 else "small" if k <= 30 else "x-small"
    ax.set_yticks(centres, list(class_names), fontsize=size)
    ax.set_ylim(k - 0.5, -0.5)  # first class on top
    ax.set(xlim=(0.0, 1.02), xlabel=quantity, title=title)
    ax.grid(axis="x", alpha=0.3)
    handles, names = ax.get_legend_handles_labels()
    fig.legend(
        handles, names, loc="outside lower center", ncols=min(3, len(names)), fontsize="small"
    )
    return fig
