"""Public entry points: :func:`train_head` and :func:`predict_scores`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cactus_features.errors import CacheError
from cactus_features.heads.config import HeadConfig, resolve_device
from cactus_features.heads.data import FeaturesArg, PreparedData, prepare, resolve_features
from cactus_features.heads.engine import fit_stacked
from cactus_features.heads.lbfgs import fit_logistic_lbfgs
from cactus_features.heads.models import (
    LAST_PREFIX,
    head_from_state,
    layer_sizes,
    output_dim,
    stacked_state,
)
from cactus_features.heads.runs import build_info, run_path
from cactus_features.heads.standardize import Standardizer
from cactus_features.runfile import Predictions, RunFile, save_run

PREDICT_BATCH = 8192
"""Rows per forward pass when scoring."""


@dataclass
class TrainResult:
    """One trained head.

    Attributes:
        path: The saved run file (``None`` when not saved).
        run: The run as saved (config, info, predictions, curves, weights).
        history: Per-epoch ``train_loss``, ``val_loss`` and ``val_auc``.
        predictions: Scores (P(positive class)) of every train/val/test row, from
            the selected epoch's weights.
        class_weights: The class weights used, in class-index order.
        best_epoch: The selected epoch (1-based).
        seconds: Training-loop wall time.
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


def train_head(
    features: FeaturesArg,
    head: str = "linear",
    epochs: int = 500,
    lr: float = 5e-4,
    weight_decay: float = 0.0,
    batch_size: int | None = None,
    seed: int = 0,
    class_weight: Any = "inverse",
    standardize: bool = True,
    solver: str = "adam",
    C: float = 1.0,
    select: str = "val_auc",
    device: str | torch.device | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
    quiet: bool = True,
    save: bool = True,
    **head_kwargs: Any,
) -> TrainResult:
    """Train one head on cached features and save the run file.

    Args:
        features: A :class:`~cactus_features.features.FeatureSet`, a cache ``.h5``
            path, or a list of them (trained on their column-wise concatenation).
        head: ``"linear"`` or ``"mlp"``.
        epochs: Adam epochs (L-BFGS: iteration limit).
        lr: Adam learning rate.
        weight_decay: Adam L2 weight decay.
        batch_size: Mini-batch size; ``None`` trains full-batch.
        seed: Seed of the initial weights, dropout and batch order.
        class_weight: ``"inverse"`` (default), ``"balanced"``, ``"none"``, a list
            in class order or a ``{class name: weight}`` mapping.
        standardize: Standardise with training-split mean and std (saved in the run).
        solver: ``"adam"`` or ``"lbfgs"`` (linear head, sklearn's objective with ``C``).
        C: Inverse L2 strength for L-BFGS.
        select: Keep the epoch with the best ``"val_auc"``, lowest ``"val_loss"``, or the
            ``"last"``.
        device: ``None`` picks CUDA when available, else CPU.
        out: Run directory or exact ``.h5`` path; default ``<cache dir>/runs/``.
        overwrite: Replace an existing run file of the same name instead of adding
            a ``-2``, ``-3``, ... suffix.
        quiet: Print nothing (else the class weights and progress are printed).
        save: Write the run file.
        **head_kwargs: More :class:`HeadConfig` fields: ``hidden`` and ``dropout``
            (MLP), ``tol`` (L-BFGS).

    Returns:
        The trained head's run, curves, predictions and class weights.

    Raises:
        ConfigError: On invalid options or splits that cannot support them.
        CacheError: If the features cannot be read or hold invalid rows.
    """
    config = HeadConfig.create(
        head,
        epochs=epochs,
        lr=lr,
        weight_decay=weight_decay,
        batch_size=batch_size,
        seed=seed,
        class_weight=class_weight,
        standardize=standardize,
        solver=solver,
        C=C,
        select=select,
        **head_kwargs,
    )
    return train_with_config(
        features, config, device=device, out=out, overwrite=overwrite, quiet=quiet, save=save
    )


def train_with_config(
    features: FeaturesArg,
    config: HeadConfig,
    *,
    device: str | torch.device | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
    quiet: bool = True,
    save: bool = True,
) -> TrainResult:
    """:func:`train_head` with a ready :class:`HeadConfig` (same behaviour)."""
    fs, parts = resolve_features(features)
    data = prepare(fs, config)
    dev = resolve_device(device)
    log = console_logger(quiet)
    log(
        f"{fs.name}: {config.head} head ({config.solver}) on {data.train.size} train / "
        f"{data.val.size} val rows, D={data.dim}, {dev}; class weights "
        f"{_fmt_weights(data)} ({data.class_weight_mode})"
    )
    tensors = data.tensors(dev)
    n_hidden = len(config.hidden)
    if config.solver == "lbfgs":
        lb = fit_logistic_lbfgs(
            tensors.x_train,
            tensors.y_train,
            tensors.w_train,
            C=config.C,
            max_iter=config.epochs,
            tol=config.tol,
            x_val=tensors.x_val,
            y_val=tensors.y_val,
            w_val=tensors.w_val,
        )
        state = {
            "linear.weight": lb.weight.float().cpu().numpy()[None, :],
            "linear.bias": np.array([lb.bias], dtype=np.float32),
        }
        state.update({LAST_PREFIX + k: v.copy() for k, v in list(state.items())})
        history = lb.history
        best_epoch = epochs_run = lb.iterations
        seconds = lb.seconds
        val_auc = float(history["val_auc"][-1]) if lb.iterations else float("nan")
        extra: dict[str, Any] = {"solver": "lbfgs", "lbfgs_converged": lb.converged}
        log(f"  L-BFGS: {lb.iterations} iterations, converged={lb.converged}")
    else:
        fit = fit_stacked(
            tensors,
            layer_sizes(data.dim, config.hidden, output_dim(len(data.class_names))),
            [config.lr],
            [config.weight_decay],
            [config.seed],
            epochs=config.epochs,
            batch_size=config.batch_size,
            dropout=config.dropout,
            select=config.select,
            progress=_progress(log, config.epochs) if not quiet else None,
        )
        state = stacked_state(fit.best, 0, n_hidden)
        state.update(stacked_state(fit.last, 0, n_hidden, prefix=LAST_PREFIX))
        history = {k: v[:, 0].copy() for k, v in fit.history.items()}
        best_epoch, epochs_run, seconds = int(fit.best_epoch[0]), config.epochs, fit.seconds
        val_auc = float(fit.best_val_auc[0]) if data.val.size else float("nan")
        extra = {"solver": "adam", "engine": fit.engine, "kernel": fit.kernel}
    del tensors
    return finish_run(
        data,
        parts,
        config,
        state,
        history,
        best_epoch=best_epoch,
        epochs_run=epochs_run,
        seconds=seconds,
        val_auc=val_auc,
        device=dev,
        tag=f"{config.head}-{config.short_hash()}",
        out=out,
        overwrite=overwrite,
        save=save,
        extra=extra,
        log=log,
    )


def finish_run(
    data: PreparedData,
    parts: list,
    config: HeadConfig,
    state: dict[str, np.ndarray],
    history: dict[str, np.ndarray],
    *,
    best_epoch: int,
    epochs_run: int,
    seconds: float,
    val_auc: float,
    device: torch.device,
    tag: str,
    out: str | Path | None,
    overwrite: bool,
    save: bool,
    extra: dict[str, Any],
    log: Callable[[str], None],
) -> TrainResult:
    """Score every split with the selected weights, build the run and save it."""
    module = head_from_state(state)
    scores = score_rows(module, data.standardizer, data.features.embeddings[data.rows], device)
    fs = data.features
    predictions = Predictions(
        ids=np.asarray(fs.ids[data.rows], dtype=object),
        split=np.asarray(fs.split[data.rows], dtype=np.uint8),
        label=np.asarray(fs.labels[data.rows], dtype=np.int64),
        score=scores,
    )
    info = build_info(
        data,
        parts,
        best_epoch=best_epoch,
        epochs_run=epochs_run,
        train_seconds=seconds,
        device=device,
        extra={"val_auc": val_auc, "select": config.select, **extra},
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
        f"  best epoch {best_epoch}/{epochs_run}, val AUC {val_auc:.4f}, "
        f"{seconds:.2f}s" + (f" -> {path}" if path else "")
    )
    return TrainResult(
        path=path,
        run=run,
        history=history,
        predictions=predictions,
        class_weights=data.class_weights.copy(),
        best_epoch=best_epoch,
        seconds=seconds,
        val_auc=val_auc,
        config=config,
    )


def score_rows(
    module: torch.nn.Module,
    standardizer: Standardizer | None,
    embeddings: np.ndarray,
    device: torch.device | None = None,
) -> np.ndarray:
    """P(positive class) of raw embedding rows under a head module.

    Args:
        module: The head (eval mode).
        standardizer: Statistics to apply first, or ``None``.
        embeddings: Raw embeddings ``[N, D]``.
        device: Where to run the head (default CPU).

    Returns:
        float64 scores ``[N]``.
    """
    dev = torch.device(device or "cpu")
    module = module.to(dev).eval()
    out = np.empty(len(embeddings), dtype=np.float64)
    with torch.no_grad():
        for a in range(0, len(embeddings), PREDICT_BATCH):
            x = np.asarray(embeddings[a : a + PREDICT_BATCH], dtype=np.float32)
            if standardizer is not None:
                x = standardizer.transform(x)
            logits = module(torch.from_numpy(x).to(dev))[:, 0]
            out[a : a + len(x)] = torch.sigmoid(logits.double()).cpu().numpy()
    return out


def predict_scores(
    run: RunFile, embeddings: np.ndarray, device: str | torch.device | None = "cpu"
) -> np.ndarray:
    """Score new embeddings with a saved head (e.g. for a Kaggle submission).

    Rebuilds the head from ``run.head_state`` (the selected epoch's weights),
    applies the run's standardisation and returns P(positive class).

    Args:
        run: A run from :func:`~cactus_features.runfile.load_run` or :func:`train_head`.
        embeddings: Raw embeddings ``[N, D]`` from the same backbone configuration
            (for a concatenated run, the same concatenation).
        device: Where to compute (``None``: CUDA when available).

    Returns:
        float64 probabilities of class ``run.info["positive_class"]``, shape ``[N]``.

    Raises:
        CacheError: If the embedding dimension does not match the head.
    """
    module = head_from_state(run.head_state)
    first = next(iter(module.parameters()))
    emb = np.asarray(embeddings)
    if emb.ndim != 2 or emb.shape[1] != first.shape[1]:
        raise CacheError(
            f"embeddings of shape {emb.shape} do not fit this head (input dim {first.shape[1]}); "
            f"use features of {run.name}"
        )
    return score_rows(module, Standardizer.from_state(run.standardize), emb, resolve_device(device))


def console_logger(quiet: bool) -> Callable[[str], None]:
    if quiet:
        return lambda msg: None
    return lambda msg: print(msg, flush=True)


def _progress(log: Callable[[str], None], epochs: int) -> Callable[[int, dict[str, float]], None]:
    start = time.perf_counter()

    def report(epoch: int, values: dict[str, float]) -> None:
        log(
            f"  epoch {epoch:>{len(str(epochs))}}/{epochs}: train_loss {values['train_loss']:.4f}"
            f"  val_loss {values['val_loss']:.4f}  val_auc {values['val_auc']:.4f}"
            f"  ({time.perf_counter() - start:.1f}s)"
        )

    return report


def _fmt_weights(data: PreparedData) -> str:
    return "[" + ", ".join(f"{w:.4f}" for w in data.class_weights) + "]"
