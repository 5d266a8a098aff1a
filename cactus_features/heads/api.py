"""Public entry points: :func:`train_head`, :func:`train_with_config` and :func:`predict_scores`.

A head's options are the fields of :class:`~cactus_features.heads.config.HeadConfig`,
passed by name with the same defaults; the path of a call is
configuration -> :func:`~cactus_features.heads.prepare.data.prepare` -> a solver
(:mod:`cactus_features.heads.solvers`) -> :func:`~cactus_features.heads.run.assemble_run`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cactus_features.errors import CacheError
from cactus_features.heads.config import HeadConfig, protocol_label
from cactus_features.heads.device import resolve_device
from cactus_features.heads.nn.models import head_from_state
from cactus_features.heads.prepare.class_weights import format_class_weights
from cactus_features.heads.prepare.data import FeaturesArg, prepare, resolve_features
from cactus_features.heads.prepare.standardize import Standardizer
from cactus_features.heads.run import (
    TrainResult,
    assemble_run,
    console_logger,
    epoch_progress,
    score_rows,
)
from cactus_features.heads.solvers import solver_for
from cactus_features.heads.solvers.knn import predict_knn
from cactus_features.runfile import RunFile

__all__ = ["TrainResult", "predict_scores", "train_head", "train_with_config"]


def train_head(
    features: FeaturesArg,
    head: str = "linear",
    *,
    preset: str | None = None,
    device: str | torch.device | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
    quiet: bool = True,
    save: bool = True,
    train_rows: np.ndarray | Sequence[int] | None = None,
    **options: Any,
) -> TrainResult:
    """Train one head on cached features and save the run file.

    Args:
        features: A :class:`~cactus_features.features.FeatureSet`, a cache ``.h5``
            path, or a list of them (trained on their column-wise concatenation).
        head: ``"linear"``, ``"mlp"`` or ``"knn"`` (the kNN probe: no weights, ``k``
            chosen on validation).
        preset: ``"tuned"`` (the default unless ``solver`` is given; the config's
            ``preset`` field): a grid of L2
            strengths, each fitted to convergence, the best by validation log loss;
            ``"report"``: the seed study's recipe (Adam, lr 5e-4, 500 full-batch epochs,
            inverse class weights, standardised); ``""``: none (the
            :class:`~cactus_features.heads.config.HeadConfig` defaults). Options given
            beside a preset override its fields (:data:`~cactus_features.heads.config.PRESETS`).
        device: ``None`` picks CUDA when available, else CPU.
        out: Run directory or exact ``.h5`` path; default ``<cache dir>/runs/``.
        overwrite: Replace an existing run file of the same name instead of adding
            a ``-2``, ``-3``, ... suffix.
        quiet: Print nothing (else the class weights and progress are printed).
        save: Write the run file.
        train_rows: Train on these cache rows only (indices into the cache, all in the
            training split; e.g. a label-efficiency subsample); validation and test
            rows are unchanged. ``None``: the whole training split.
        **options: Any other :class:`~cactus_features.heads.config.HeadConfig` field,
            with its name and default there: ``epochs`` (Adam epochs; L-BFGS
            iteration limit), ``lr``, ``weight_decay``, ``batch_size`` (``None``: full
            batch), ``seed``, ``class_weight`` (``"inverse"``, ``"balanced"``,
            ``"none"``, a list in class order or a ``{class name: weight}`` mapping),
            ``standardize``, ``scale`` (``"feature"`` or ``"global"``), ``solver``
            (``"grid"``, ``"adam"`` or ``"lbfgs"``), ``l2_grid`` (the grid's strengths),
            ``C`` and ``tol`` (L-BFGS), ``select`` (``"val_auc"``, ``"val_loss"`` or
            ``"last"``), ``hidden`` and ``dropout`` (MLP), ``positive_class`` (binary
            tasks: the class name the scores are the probability of; ``None``: a label
            ``1``/``true``/``yes``, ``X`` of ``X`` and ``no_X``, else the second class).
            More than two classes: a softmax head, linear or MLP, tuned or Adam
            (``preset="report"``), or the kNN probe's class vote shares. Multi-label data (a
            cache with a label matrix): one sigmoid per label; with the tuned linear head each
            label's probe is fitted and chosen on validation exactly as a binary head on that
            label alone (:mod:`cactus_features.heads.solvers.multilabel`); no ``positive_class``.

    Returns:
        The trained head's run, curves, predictions and class weights.

    Raises:
        ConfigError: On an unknown or invalid option, or splits that cannot support it.
        CacheError: If the features cannot be read or hold invalid rows.
    """
    config = HeadConfig.create(head, preset=preset, **options)
    return train_with_config(
        features,
        config,
        device=device,
        out=out,
        overwrite=overwrite,
        quiet=quiet,
        save=save,
        train_rows=train_rows,
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
    train_rows: np.ndarray | Sequence[int] | None = None,
) -> TrainResult:
    """:func:`train_head` with a ready :class:`HeadConfig` (same behaviour)."""
    fs, parts = resolve_features(features)
    data = prepare(fs, config, train_rows=train_rows)
    dev = resolve_device(device)
    log = console_logger(quiet)
    weights = format_class_weights(data.class_weights, data.class_names)
    log(
        f"{fs.name}: {config.head} head ({protocol_label(config.to_dict())}) on "
        f"{data.train.size} train / "
        f"{data.val.size} val rows, D={data.dim}, {dev}; class weights "
        f"{weights} ({data.class_weight_mode})"
    )
    progress = epoch_progress(log, config.epochs) if not quiet else None
    fit = solver_for(config.solver).fit(data, [config], dev, progress)
    return assemble_run(
        data,
        parts,
        config,
        fit,
        0,
        device=dev,
        tag=f"{config.head}-{config.short_hash()}",
        out=out,
        overwrite=overwrite,
        save=save,
        log=log,
        extra=data.subset_info(),
    )


def predict_scores(
    run: RunFile, embeddings: np.ndarray, device: str | torch.device | None = "cpu"
) -> np.ndarray:
    """Score new embeddings with a saved head (e.g. for a Kaggle submission).

    Rebuilds the head from ``run.head_state`` (the selected epoch's weights),
    applies the run's standardisation and returns P(positive class). A kNN run
    (no weights) re-reads its training rows from the cache it names
    (:func:`~cactus_features.heads.solvers.knn.predict_knn`).

    Args:
        run: A run from :func:`~cactus_features.runfile.load_run` or :func:`train_head`.
        embeddings: Raw embeddings ``[N, D]`` from the same backbone configuration
            (for a concatenated run, the same concatenation).
        device: Where to compute (``None``: CUDA when available).

    Returns:
        float64 probabilities of class ``run.info["positive_class"]``, shape ``[N]``;
        of every class (a softmax), ``[N, K]``, for a K-class run; of each label (a
        sigmoid each), ``[N, L]``, for a multi-label run. The run's task
        (``run.predictions.task``) says which.

    Raises:
        CacheError: If the embedding dimension does not match the head (or a kNN
            run's cache is gone or changed).
    """
    if run.config.get("head") == "knn":
        return predict_knn(run, embeddings, resolve_device(device))
    module = head_from_state(run.head_state)
    first = next(iter(module.parameters()))
    emb = np.asarray(embeddings)
    if emb.ndim != 2 or emb.shape[1] != first.shape[1]:
        raise CacheError(
            f"embeddings of shape {emb.shape} do not fit this head (input dim {first.shape[1]}); "
            f"use features of {run.name}"
        )
    return score_rows(
        module,
        Standardizer.from_state(run.standardize),
        emb,
        resolve_device(device),
        task=run.predictions.task,
    )
