"""A trained head as a run: scores of every split, the ``info`` block, the run file.

:func:`assemble_run` turns head ``k`` of a solver's
:class:`~cactus_features.heads.solvers.base.Fit` into a :class:`TrainResult`
(and its saved run file); :func:`~cactus_features.heads.train_head` and
:func:`~cactus_features.heads.sweep_heads` both end here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cactus_features.data.classes import BINARY, MULTICLASS, MULTILABEL, TASKS
from cactus_features.features import FeatureSet
from cactus_features.heads.config import HeadConfig, protocol_label
from cactus_features.heads.convergence import (
    adam_convergence,
    convergence_warnings,
    report_warnings,
)
from cactus_features.heads.nn.models import head_from_state
from cactus_features.heads.prepare.data import PreparedData
from cactus_features.heads.prepare.standardize import Standardizer
from cactus_features.heads.run_info import build_info, run_path
from cactus_features.heads.solvers.base import Fit, Progress
from cactus_features.notices import warn_if_collapsed
from cactus_features.runfile import Predictions, RunFile, save_run

PREDICT_BATCH = 8192
"""Rows per forward pass when scoring."""

Log = Callable[[str], None]
"""Prints one console line (or nothing, when quiet)."""


@dataclass
class TrainResult:
    """One trained head.

    Attributes:
        path: The saved run file (``None`` when not saved).
        run: The run as saved (config, info, predictions, curves, weights).
        history: Per-epoch ``train_loss``, ``val_loss`` and ``val_auc``.
        predictions: Scores (P(positive class); of every class or label ``[N, K]``) of
            every train/val/test row, from the selected epoch's weights.
        class_weights: The class weights used, in class-index order.
        best_epoch: The selected epoch (1-based).
        seconds: Training-loop wall time (without one-off kernel compilation or loading,
            which is ``run.info["one_off_seconds"]``).
        val_auc: Validation AUC at the selected epoch (NaN without validation rows).
        config: The head configuration.
    """

    path: Path | None
    run: RunFile
    history: dict[str, np.ndarray]
    predictions: Predictions
    class_weights: np.ndarray
    best_epoch: int
    seconds: float
    val_auc: float
    config: HeadConfig


def assemble_run(
    data: PreparedData,
    parts: Sequence[FeatureSet],
    config: HeadConfig,
    fit: Fit,
    k: int,
    *,
    device: torch.device,
    tag: str,
    out: str | Path | None,
    overwrite: bool,
    save: bool,
    log: Log,
    extra: dict[str, Any] | None = None,
) -> TrainResult:
    """Score every split with head ``k``'s selected weights, build the run and save it.

    Args:
        data: The prepared features the head was trained on.
        parts: The feature sets they were concatenated from (or just the one set).
        config: Head ``k``'s configuration.
        fit: The solver's result.
        k: Which of its heads becomes the run.
        device: Where it was trained (scores are computed there too).
        tag: The run file name's tag (``<head>-<config hash>`` or similar).
        out: Run directory or exact ``.h5`` path (default ``<cache dir>/runs/``).
        overwrite: Replace a run file of the same name.
        save: Write the run file.
        log: Console logger.
        extra: More ``info`` entries (after the solver's).

    Returns:
        The run and its parts.

    Warns:
        CollapsedFeaturesWarning: For each part whose cache records collapsed features.
    """
    if fit.note:
        log(f"  {fit.note}")
    state, history = fit.weights(k), fit.head_history(k)
    best_epoch, val_auc = int(fit.best_epoch[k]), float(fit.best_val_auc[k])
    fs = data.features
    if fit.scores is not None:
        scores = np.asarray(fit.scores(k), dtype=np.float64)
    else:
        module = head_from_state(state)
        scores = score_rows(
            module, data.standardizer, fs.embeddings[data.rows], device, task=data.task
        )
    predictions = Predictions(
        ids=np.asarray(fs.ids[data.rows], dtype=object),
        split=np.asarray(fs.split[data.rows], dtype=np.uint8),
        label=data.targets(data.rows),
        score=scores,
        task=data.task,
        positive_index=1 if data.positive_index is None else data.positive_index,
    )
    solver_info = dict(fit.info)
    if "convergence" not in solver_info:
        solver_info["convergence"] = adam_convergence(history["train_loss"])
    warnings = convergence_warnings(
        solver_info, best_epoch=best_epoch, epochs_run=fit.epochs_run, solver=config.solver
    )
    report_warnings(data.features.name, warnings)
    info = build_info(
        data,
        parts,
        best_epoch=best_epoch,
        epochs_run=fit.epochs_run,
        train_seconds=fit.seconds,
        device=device,
        extra={
            "val_auc": val_auc,
            "select": config.select,
            "protocol": protocol_label(config.to_dict()),
            "preset": config.preset,
            "one_off_seconds": float(fit.one_off_seconds),
            **solver_info,
            "warnings": warnings,
            **(extra or {}),
        },
    )
    run = RunFile(
        path=None,
        config=config.to_dict(),
        info=info,
        predictions=predictions,
        history=history,
        head_state=state,
        standardize=data.standardizer.state() if data.standardizer is not None else {},
    )
    path = None
    if save:
        path = save_run(run, run_path(fs, parts, tag, out, overwrite), overwrite=overwrite)
    log(
        f"  best epoch {best_epoch}/{fit.epochs_run}, val AUC {val_auc:.4f}, "
        f"{fit.seconds:.2f}s" + (f" -> {path}" if path else "")
    )
    for part in parts:
        warn_if_collapsed(part.name, part.attrs, part.key, what=f" (head val AUC {val_auc:.3f})")
    return TrainResult(
        path=path,
        run=run,
        history=history,
        predictions=predictions,
        class_weights=data.class_weights.copy(),
        best_epoch=best_epoch,
        seconds=fit.seconds,
        val_auc=val_auc,
        config=config,
    )


def score_rows(
    module: torch.nn.Module,
    standardizer: Standardizer | None,
    embeddings: np.ndarray,
    device: torch.device | None = None,
    *,
    task: str,
) -> np.ndarray:
    """Probabilities of raw embedding rows under a head module, as the task reads its logits.

    Args:
        module: The head (eval mode).
        standardizer: Statistics to apply first, or ``None``.
        embeddings: Raw embeddings ``[N, D]``.
        device: Where to run the head (default CPU).
        task: ``"binary"`` (one logit: P(positive class)), ``"multiclass"`` (a softmax
            over the ``K`` logits) or ``"multilabel"`` (a sigmoid of each of the ``L``).

    Returns:
        float64 scores ``[N]`` (binary), or ``[N, K]`` / ``[N, L]``.

    Raises:
        ValueError: For an unknown task, or a head whose outputs do not fit it.
    """
    dev = torch.device(device or "cpu")
    module = module.to(dev).eval()
    n_out = int(list(module.parameters())[-1].shape[0])
    if task not in TASKS or (task == BINARY) != (n_out == 1):
        raise ValueError(f"a head with {n_out} outputs does not fit task {task!r}")
    multi = task != BINARY
    out = np.empty((len(embeddings), n_out) if multi else len(embeddings), dtype=np.float64)
    with torch.no_grad():
        for a in range(0, len(embeddings), PREDICT_BATCH):
            x = np.asarray(embeddings[a : a + PREDICT_BATCH], dtype=np.float32)
            if standardizer is not None:
                x = standardizer.transform(x)
            logits = module(torch.from_numpy(x).to(dev)).double()
            if task == MULTICLASS:
                out[a : a + len(x)] = torch.softmax(logits, dim=1).cpu().numpy()
            elif task == MULTILABEL:
                out[a : a + len(x)] = torch.sigmoid(logits).cpu().numpy()
            else:
                out[a : a + len(x)] = torch.sigmoid(logits[:, 0]).cpu().numpy()
    return out


def console_logger(quiet: bool) -> Log:
    """A logger that prints each line (flushed), or nothing when ``quiet``."""
    if quiet:
        return lambda msg: None
    return lambda msg: print(msg, flush=True)


def epoch_progress(log: Log, epochs: int) -> Progress:
    """Progress reports of head 0 as console lines (epoch, losses, AUC, elapsed time)."""
    start = time.perf_counter()

    def report(epoch: int, values: dict[str, float]) -> None:
        log(
            f"  epoch {epoch:>{len(str(epochs))}}/{epochs}: train_loss {values['train_loss']:.4f}"
            f"  val_loss {values['val_loss']:.4f}  val_auc {values['val_auc']:.4f}"
            f"  ({time.perf_counter() - start:.1f}s)"
        )

    return report
