"""Figures of a backbone comparison, as matplotlib :class:`~matplotlib.figure.Figure` objects.

Every function builds a new figure with the object-oriented API (no pyplot, no
global state) and returns it; :func:`save_figure` renders it to PNG with the Agg
canvas. Curves are drawn from :class:`~cactus_features.metrics.core.CurveCounts`,
so they come from the same counts as every number in the tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from cactus_features.metrics.core import ConfusionMatrix, CurveCounts


def colors(n: int) -> list[tuple[float, float, float, float]]:
    """``n`` distinguishable colours, the same for a backbone in every figure."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def roc_figure(
    labels: Sequence[str],
    curves: Sequence[CurveCounts],
    *,
    positive_name: str,
    operating_points: Sequence[tuple[float, float]] | None = None,
    operating_label: str = "operating point",
) -> Figure:
    """ROC curves of all backbones on one plot, AUC in the legend.

    Args:
        labels: Backbone labels.
        curves: Test-set cumulative counts of each backbone.
        positive_name: Name of the positive class (stated in the title).
        operating_points: Optional ``(fpr, tpr)`` per backbone at its threshold.
        operating_label: What the operating points are (for the legend).

    Returns:
        The figure.
    """
    fig = Figure(figsize=(6.4, 6.0), layout="constrained")
    ax = fig.add_subplot()
    n_test = int(curves[0].n_pos + curves[0].n_neg) if curves else 0
    for k, (label, curve, color) in enumerate(
        zip(labels, curves, colors(len(labels)), strict=True)
    ):
        fpr, tpr = curve.roc()
        ax.plot(fpr, tpr, color=color, lw=1.8, label=f"{label} (AUC {float(curve.roc_auc()):.3f})")
        if operating_points is not None:
            x, y = operating_points[k]
            ax.plot([x], [y], "o", color=color, ms=6, mec="black", mew=0.6)
    if operating_points is not None:
        ax.plot([], [], "o", color="grey", mec="black", mew=0.6, label=operating_label)
    ax.plot([0, 1], [0, 1], ls=":", color="grey", lw=1, label="chance (AUC 0.5)")
    ax.set(
        xlim=(-0.01, 1.01),
        ylim=(-0.01, 1.01),
        aspect="equal",
        xlabel="False positive rate (1 − specificity)",
        ylabel="True positive rate (recall)",
        title=f"ROC curves on the test set (n = {n_test}, positive class: {positive_name})",
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    return fig


def precision_recall_figure(
    labels: Sequence[str], curves: Sequence[CurveCounts], *, positive_name: str
) -> Figure:
    """Precision-recall curves of all backbones, average precision in the legend.

    Args:
        labels: Backbone labels.
        curves: Test-set cumulative counts of each backbone.
        positive_name: Name of the positive class.

    Returns:
        The figure.
    """
    fig = Figure(figsize=(6.4, 6.0), layout="constrained")
    ax = fig.add_subplot()
    prevalence = float(curves[0].n_pos / (curves[0].n_pos + curves[0].n_neg)) if curves else 0.0
    n_test = int(curves[0].n_pos + curves[0].n_neg) if curves else 0
    for label, curve, color in zip(labels, curves, colors(len(labels)), strict=True):
        recall, precision = curve.precision_recall()
        x = np.concatenate([[0.0], recall])
        y = np.concatenate([[precision[0]], precision])
        ap = float(curve.average_precision())
        ax.plot(x, y, color=color, lw=1.8, drawstyle="steps-pre", label=f"{label} (AP {ap:.3f})")
    ax.axhline(
        prevalence, ls=":", color="grey", lw=1, label=f"chance (prevalence {prevalence:.3f})"
    )
    ax.set(
        xlim=(-0.01, 1.01),
        ylim=(min(prevalence, 0.5) - 0.05, 1.01),
        xlabel=f"Recall (share of {positive_name} found)",
        ylabel=f"Precision (share of predicted {positive_name} that are right)",
        title=f"Precision-recall curves on the test set (n = {n_test}, positive: {positive_name})",
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize="small")
    return fig


HISTORY_PANELS: tuple[tuple[str, str], ...] = (
    ("train_loss", "Training loss"),
    ("val_loss", "Validation loss"),
    ("val_auc", "Validation ROC AUC"),
)
"""History curves drawn by :func:`history_figure`, with their panel titles."""


def history_figure(
    labels: Sequence[str], histories: Sequence[Mapping[str, np.ndarray]], *, subject: str = ""
) -> Figure | None:
    """Training and validation curves per epoch, one panel per quantity.

    Args:
        labels: Backbone labels.
        histories: Per-epoch curves of each backbone (``train_loss``, ``val_loss``,
            ``val_auc``; missing ones are skipped).
        subject: What the curves are about, appended to the title (e.g.
            ``"positive class: cactus"``).

    Returns:
        The figure, or ``None`` when no run recorded any of these curves.
    """
    panels = [(k, t) for k, t in HISTORY_PANELS if any(len(h.get(k, ())) for h in histories)]
    if not panels:
        return None
    fig = Figure(figsize=(4.6 * len(panels), 4.4), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (key, title) in zip(axes, panels, strict=True):
        for label, hist, color in zip(labels, histories, colors(len(labels)), strict=True):
            y = np.asarray(hist.get(key, ()), dtype=np.float64)
            if len(y):
                ax.plot(np.arange(1, len(y) + 1), y, color=color, lw=1.6, marker=".", label=label)
        ax.set(xlabel="Epoch", ylabel=title, title=title)
        ax.grid(alpha=0.3)
    seen: dict[str, object] = {}  # label -> line handle, in first-seen order
    for ax in axes:
        for handle, name in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(name, handle)
    fig.legend(
        list(seen.values()),
        list(seen.keys()),
        loc="outside lower center",
        ncols=min(4, len(seen)),
        fontsize="small",
    )
    suffix = f"; {subject}" if subject else ""
    fig.suptitle(
        f"Head training curves (the same head trained on each backbone's embeddings{suffix})"
    )
    return fig


def grid_figure(
    labels: Sequence[str],
    grids: Sequence[tuple[Sequence[float], Sequence[float], Sequence[float], float | None]],
    *,
    param: str = "L2 strength",
    subject: str = "",
) -> Figure | None:
    """Validation loss and AUC over each backbone's regularisation grid (log x axis).

    Args:
        labels: Backbone labels.
        grids: Per backbone ``(strengths, val_loss, val_auc, chosen strength)``; empty
            strengths for a run without a grid (skipped).
        param: The x-axis label.
        subject: What the scores are about, appended to the title (e.g.
            ``"positive class: cactus"``).

    Returns:
        The figure, or ``None`` when no run has a grid.
    """
    if not any(len(g[0]) for g in grids):
        return None
    fig = Figure(figsize=(9.4, 4.2), layout="constrained")
    axes = fig.subplots(1, 2, squeeze=False)[0]
    panels = (("Validation log loss", 1), ("Validation ROC AUC", 2))
    for ax, (title, column) in zip(axes, panels, strict=True):
        for label, grid, color in zip(labels, grids, colors(len(labels)), strict=True):
            values = np.asarray(grid[0], dtype=np.float64)
            if not len(values):
                continue
            order = np.argsort(values)
            y = np.asarray(grid[column], dtype=np.float64)[order]
            x = np.maximum(values[order], 1e-12)  # a 0 strength on a log axis
            ax.plot(x, y, color=color, lw=1.6, marker=".", label=label)
            if grid[3] is not None:
                k = int(np.argmin(np.abs(values - grid[3])))
                ax.plot([max(values[k], 1e-12)], [grid[column][k]], "o", color=color, ms=8,
                        mfc="none")  # fmt: skip
        ax.set(xscale="log", xlabel=param, ylabel=title, title=title)
        ax.grid(alpha=0.3)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=min(4, len(names)),
               fontsize="small")  # fmt: skip
    title = "Tuned protocol: validation scores over the grid (circle: chosen strength)"
    fig.suptitle(f"{title}; {subject}" if subject else title)
    return fig


def confusion_figure(
    labels: Sequence[str], matrices: Sequence[ConfusionMatrix], *, rule_description: str
) -> Figure:
    """Test confusion matrices, one panel per backbone, with counts and class names.

    Cell colour is the share of the true class (row-normalised); the text gives
    the count and that share.

    Args:
        labels: Backbone labels.
        matrices: The confusion matrix of each backbone.
        rule_description: How the thresholds were set (for the title).

    Returns:
        The figure.
    """
    n = len(labels)
    ncols = min(n, 3)
    nrows = -(-n // ncols)
    fig = Figure(figsize=(4.2 * ncols + 0.8, 3.9 * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    image = None
    for k, ax in enumerate(axes.ravel()):
        if k >= n:
            ax.set_visible(False)
            continue
        cm = matrices[k]
        counts = cm.as_array()
        totals = counts.sum(axis=1, keepdims=True)
        share = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
        image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
        for (i, j), v in np.ndenumerate(counts):
            ax.text(
                j,
                i,
                f"{v}\n({share[i, j]:.1%})",
                ha="center",
                va="center",
                color="white" if share[i, j] > 0.6 else "black",
                fontsize="medium",
            )
        names = [cm.negative_name, cm.positive_name]
        ax.set_xticks([0, 1], names)
        ax.set_yticks([0, 1], names, rotation=90, va="center")
        ax.set(
            xlabel="Predicted class",
            ylabel="True class",
            title=f"{labels[k]}\nthreshold {cm.threshold:.3g}, n = {cm.n}",
        )
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="Share of the true class")
    fig.suptitle(
        f"Test confusion matrices (positive class: {matrices[0].positive_name}; {rule_description})"
    )
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 130) -> Path:
    """Render a figure to a PNG file with the Agg canvas.

    Args:
        fig: The figure.
        path: Destination ``.png`` path.
        dpi: Resolution.

    Returns:
        The path written.
    """
    path = Path(path)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=dpi, format="png")
    return path
