"""What a comparison keeps of each run besides its metrics: its record, costs and estimates.

Shared by the binary comparison (:mod:`~cactus_features.metrics.compare`) and the
K-class one (:mod:`~cactus_features.metrics.class_compare`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cactus_features.metrics.align import is_random_init
from cactus_features.metrics.results import Backbone, EfficiencyRow, Estimate, ProtocolRow
from cactus_features.metrics.stats import percentile_interval
from cactus_features.runfile import RunFile

SPLITS: tuple[str, ...] = ("train", "val", "test")
"""Split names in the order of their codes."""


def backbone_record(
    run: RunFile, label: str, thresholds: dict[str, float], test_score: np.ndarray
) -> Backbone:
    """The :class:`Backbone` of one compared run.

    Args:
        run: The run.
        label: Its unique display label.
        thresholds: Decision threshold by rule name (empty for K-class tasks).
        test_score: Its test scores aligned to the comparison's test ids.
    """
    split = run.predictions.split
    return Backbone(
        label=label,
        name=run.name,
        path=run.path,
        weights=run.info.get("weights_label"),
        random_init=is_random_init(run.info),
        thresholds=thresholds,
        test_score=test_score,
        split_sizes={s: int(np.sum(split == c)) for c, s in enumerate(SPLITS)},
        history={k: np.asarray(v) for k, v in run.history.items()},
        info=dict(run.info),
        config=dict(run.config),
    )


def estimate(value: float, replicates: np.ndarray | None, ci: float) -> Estimate:
    """The point estimate with its percentile interval (none without replicates)."""
    if replicates is None:
        return Estimate(float(value))
    low, high = percentile_interval(replicates, ci)
    return Estimate(float(value), low, high)


def _num(d: Any, key: str) -> float | None:
    if not isinstance(d, dict):
        return None
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def efficiency_row(b: Backbone) -> EfficiencyRow:
    """The cost figures one run recorded (``None`` where absent)."""
    info = b.info
    model = info.get("model_info")
    timings = info.get("timings")
    return EfficiencyRow(
        backbone=b.label,
        weights=b.weights,
        params=_num(model, "params"),
        gflops=_num(model, "gflops"),
        resolution=_num(model, "resolution"),
        images_per_second=_num(timings, "images_per_second"),
        extract_seconds=_num(timings, "seconds"),
        train_seconds=_num(info, "train_seconds"),
        dim=_num(info, "dim"),
        epochs_run=_num(info, "epochs_run"),
        best_epoch=_num(info, "best_epoch"),
        one_off_seconds=_num(info, "one_off_seconds"),
    )


def protocol_row(b: Backbone) -> ProtocolRow:
    """The protocol row of a run from its ``info`` (``grid``, ``convergence``, ``protocol``)."""
    info = b.info
    grid = info.get("grid") if isinstance(info.get("grid"), dict) else None
    conv = info.get("convergence") if isinstance(info.get("convergence"), dict) else {}
    val_loss = _num(grid, "chosen_val_loss") if grid else None
    if val_loss is None and b.history.get("val_loss") is not None:
        epoch = _num(info, "best_epoch")
        curve = np.asarray(b.history["val_loss"], dtype=np.float64)
        if epoch is not None and 1 <= epoch <= len(curve) and np.isfinite(curve[int(epoch) - 1]):
            val_loss = float(curve[int(epoch) - 1])

    def floats(key: str) -> tuple[float, ...]:
        return tuple(float(v) for v in grid.get(key, ())) if grid else ()

    return ProtocolRow(
        backbone=b.label,
        protocol=info.get("protocol") if isinstance(info.get("protocol"), str) else None,
        param=grid.get("param") if grid else None,
        chosen=_num(grid, "chosen_value") if grid else None,
        criterion=(grid.get("criterion") if grid else info.get("select")) or None,
        val_loss=val_loss,
        val_auc=_num(grid, "chosen_val_auc") if grid else _num(info, "val_auc"),
        converged=conv.get("converged") if isinstance(conv.get("converged"), bool) else None,
        at_edge=bool(grid.get("at_edge")) if grid else False,
        warnings=tuple(str(w) for w in info.get("warnings") or ()),
        grid_values=floats("values"),
        grid_val_loss=floats("val_loss"),
        grid_val_auc=floats("val_auc"),
    )
