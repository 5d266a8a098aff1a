"""From a feature cache to training tensors: splits, checks, standardisation, weights."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cactus_features.data.classes import BINARY, MULTILABEL, positive_class_index
from cactus_features.errors import CacheError, ConfigError
from cactus_features.features import FeatureSet, concat_features, load_features
from cactus_features.heads.config import HeadConfig
from cactus_features.heads.nn.models import check_takes_classes
from cactus_features.heads.prepare.class_weights import (
    compute_class_weights,
    compute_label_weights,
)
from cactus_features.heads.prepare.multilabel import check_label_splits, check_takes_labels
from cactus_features.heads.prepare.standardize import Standardizer

FeaturesArg = FeatureSet | str | Path | Sequence[FeatureSet | str | Path]
"""A feature set, a cache path, or several of them (concatenated column-wise)."""


def resolve_features(features: FeaturesArg) -> tuple[FeatureSet, list[FeatureSet]]:
    """Open the features to train on.

    Args:
        features: A :class:`FeatureSet`, a cache ``.h5`` path, or a list of them.

    Returns:
        ``(feature set, parts)``: the (possibly concatenated) set and the sets it
        is made of (just itself for a single set).

    Raises:
        CacheError: If a cache is missing or the parts do not cover the same images.
    """
    if isinstance(features, FeatureSet):
        return features, [features]
    if isinstance(features, (str, Path)):
        fs = load_features(features)
        return fs, [fs]
    parts = [f if isinstance(f, FeatureSet) else load_features(f) for f in features]
    return concat_features(parts), parts


@dataclass
class SplitTensors:
    """Training and validation rows on the training device.

    Attributes:
        x_train: ``[N, D]`` float32 (standardised) inputs.
        y_train: ``[N]`` float32 targets: ``{0, 1}`` (binary), class indices (K classes);
            ``[N, L]`` float32 ``{0, 1}`` (multi-label, one column per label).
        w_train: ``[N]`` float32 class weight of each row; ``[N, L]`` (multi-label): the
            weight of each entry (label ``j``'s weight of its value).
        x_val: ``[Nv, D]``.
        y_val: ``[Nv]`` (``[Nv, L]``).
        w_val: ``[Nv]`` (``[Nv, L]``).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    w_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    w_val: torch.Tensor

    @property
    def device(self) -> torch.device:
        """Where the tensors live."""
        return self.x_train.device


@dataclass
class PreparedData:
    """One feature set ready for training.

    Attributes:
        features: The feature set.
        class_names: Class names in index order.
        rows: Indices of the rows with a split (train/val/test), in cache order.
        train: Indices of the training rows (a subset of the training split when
            :func:`prepare` was given ``train_rows``).
        val: Indices of the validation rows.
        test: Indices of the test rows.
        standardizer: Training-split statistics (``None`` when disabled).
        class_weights: Weight of each class ``[K]`` (float64); multi-label: ``[L, 2]``,
            each label's weight of an absent and of a present label.
        class_weight_mode: ``"inverse"``, ``"balanced"``, ``"none"`` or ``"explicit"``.
        n_train_split: Rows of the whole training split (when ``train`` is a subset).
        positive_index: Binary tasks: the class the head scores (the target is
            ``labels == positive_index``); ``None`` for K classes and multi-label.
    """

    features: FeatureSet
    class_names: list[str]
    rows: np.ndarray
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    standardizer: Standardizer | None
    class_weights: np.ndarray
    class_weight_mode: str
    n_train_split: int | None = None
    positive_index: int | None = 1

    def subset_info(self) -> dict[str, Any]:
        """Run ``info`` entries saying the head saw a subset of the training split (or none)."""
        if self.n_train_split is None or self.n_train_split == self.train.size:
            return {}
        return {"train_subset": {"rows": int(self.train.size), "of": self.n_train_split}}

    @property
    def task(self) -> str:
        """``"binary"``, ``"multiclass"`` or ``"multilabel"`` (the feature set's task)."""
        return self.features.task

    @property
    def labels(self) -> np.ndarray:
        """Label index of every row of the cache (``-1`` for multi-label data)."""
        return self.features.labels

    @property
    def label_matrix(self) -> np.ndarray | None:
        """Multi-label data: the ``[N, L]`` 0/1 labels of every row of the cache."""
        return self.features.label_matrix

    @property
    def n_outputs(self) -> int:
        """Logits of the head: 1 (binary, a sigmoid), ``K`` (softmax), ``L`` (a sigmoid each)."""
        return 1 if self.task == BINARY else len(self.class_names)

    def targets(self, index: np.ndarray) -> np.ndarray:
        """The saved labels of rows: class indices ``[n]``, or 0/1 ``[n, L]`` (multi-label)."""
        if self.task == MULTILABEL:
            return np.asarray(self.features.label_matrix[index], dtype=np.uint8)
        return np.asarray(self.labels[index], dtype=np.int64)

    @property
    def dim(self) -> int:
        """Input dimension."""
        return int(self.features.embeddings.shape[1])

    def inputs(self, index: np.ndarray) -> np.ndarray:
        """Standardised float32 inputs of the given rows."""
        x = np.asarray(self.features.embeddings[index], dtype=np.float32)
        return self.standardizer.transform(x) if self.standardizer is not None else x

    def tensors(self, device: torch.device) -> SplitTensors:
        """Training and validation rows on ``device``.

        Training rows are ordered by class (stable), which lets the fused CPU
        engine treat the label and class weight as constants per chunk; the
        order of rows does not change a full-batch gradient. Multi-label rows keep
        the cache order (no order makes every label constant per chunk), with
        ``[n, L]`` targets and weights.
        """
        if self.task == MULTILABEL:
            return self._label_tensors(device)
        cw = torch.as_tensor(self.class_weights, dtype=torch.float32)
        pos = self.positive_index

        def part(index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            y = torch.as_tensor(self.labels[index], dtype=torch.int64)
            x = torch.from_numpy(self.inputs(index))
            target = y if pos is None or pos == 1 else (y == pos).to(torch.int64)
            return (
                x.to(device).contiguous(),
                target.to(torch.float32).to(device),
                cw[y].to(device),
            )

        train = self.train[np.argsort(self.labels[self.train], kind="stable")]
        return SplitTensors(*part(train), *part(self.val))

    def _label_tensors(self, device: torch.device) -> SplitTensors:
        """Multi-label :meth:`tensors`: ``y [n, L]`` 0/1 and ``w [n, L]`` per-entry weights."""
        cw = torch.as_tensor(self.class_weights, dtype=torch.float32)  # [L, 2]

        def part(index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            y = torch.as_tensor(self.targets(index), dtype=torch.int64)
            x = torch.from_numpy(self.inputs(index))
            w = torch.where(y == 1, cw[:, 1], cw[:, 0])
            return (
                x.to(device).contiguous(),
                y.to(torch.float32).to(device),
                w.to(device).contiguous(),
            )

        return SplitTensors(*part(self.train), *part(self.val))


def prepare(
    features: FeatureSet,
    config: HeadConfig,
    train_rows: np.ndarray | Sequence[int] | None = None,
) -> PreparedData:
    """Check a feature set and compute what training needs from its training split.

    Multi-label sets (a ``label_matrix``) take the heads of
    :data:`~cactus_features.heads.prepare.multilabel.MULTILABEL_HEADS`, no
    ``positive_class``, and per-label class weights
    (:func:`~cactus_features.heads.prepare.class_weights.compute_label_weights`); every
    label needs images with and without it in training, and in validation when the
    head chooses on it (:func:`~cactus_features.heads.prepare.multilabel.check_label_splits`).

    Args:
        features: The feature set (with ``split`` codes 0 train, 1 val, 2 test).
        config: The head configuration (class weights, standardisation, selection).
        train_rows: Use only these rows of the training split (cache row indices);
            class weights and standardisation come from them. ``None``: all of it.

    Returns:
        The prepared data.

    Raises:
        ConfigError: If the head cannot take this many classes (or several labels), the
            class weights do not fit, or the splits cannot support the configuration.
        CacheError: If labelled rows lack labels or the embeddings are not finite.
    """
    names = list(features.class_names)
    multilabel = features.task == MULTILABEL
    if multilabel:
        check_takes_labels(config.head, config.solver, len(names))
        if config.positive_class is not None:
            raise ConfigError(
                f"{features.name}: positive_class={config.positive_class!r} applies to binary "
                f"tasks; this one is multi-label ({len(names)} labels, each scored), so drop it"
            )
        positive = None
    else:
        check_takes_classes(config.head, config.solver, len(names))
        positive = positive_class_index(names, config.positive_class) if len(names) == 2 else None
        if positive is None and config.positive_class is not None:
            raise ConfigError(
                f"{features.name}: positive_class={config.positive_class!r} applies to binary "
                f"tasks; this one has {len(names)} classes, so drop it"
            )
    split = np.asarray(features.split)
    labels = np.asarray(features.labels)
    rows = np.flatnonzero(split <= 2)
    train, val, test = (np.flatnonzero(split == c) for c in range(3))
    n_train_split = int(train.size)
    if train_rows is not None:
        train = _train_subset(features, split, train_rows)
    if multilabel:
        matrix = np.asarray(features.label_matrix)
        source = str(features.path) if features.path is not None else features.name
        check_label_splits(source, matrix, names, train, val, config.select)
    else:
        _check_class_splits(features, config, labels, rows, train, val)
    emb = features.embeddings
    if emb.ndim != 2 or emb.shape[0] != len(labels):
        raise CacheError(
            f"{features.name}: embeddings of shape {emb.shape} do not match {len(labels)} rows"
        )
    finite = np.isfinite(emb).all(axis=1)[rows]  # no copy of the rows
    if not finite.all():
        raise CacheError(
            f"{features.name}: {int((~finite).sum())} embeddings contain NaN or inf "
            f"(e.g. id {features.ids[rows[~finite][0]]!r}); re-extract them"
        )
    if multilabel:
        weights, mode = compute_label_weights(
            matrix[train], names, config.class_weight, source=features.name
        )
    else:
        weights, mode = compute_class_weights(labels[train], names, config.class_weight)
    standardizer = Standardizer.fit(emb[train], scale=config.scale) if config.standardize else None
    return PreparedData(
        features,
        names,
        rows,
        train,
        val,
        test,
        standardizer,
        weights,
        mode,
        n_train_split,
        positive,
    )


def _check_class_splits(
    features: FeatureSet,
    config: HeadConfig,
    labels: np.ndarray,
    rows: np.ndarray,
    train: np.ndarray,
    val: np.ndarray,
) -> None:
    """Single-label data: every labelled row has a class, training holds two classes,
    and validation too when the head chooses on it.

    Raises:
        CacheError: For labelled rows without a valid class.
        ConfigError: For an empty training split or splits with one class.
    """
    names = features.class_names
    bad = rows[(labels[rows] < 0) | (labels[rows] >= len(names))]
    if bad.size:
        raise CacheError(
            f"{features.name}: {bad.size} rows in train/val/test have no valid label "
            f"(e.g. id {features.ids[bad[0]]!r}); re-extract with a labelled split"
        )
    if train.size == 0:
        raise ConfigError(f"{features.name}: the training split is empty; make a split first")
    if len(np.unique(labels[train])) < 2:
        raise ConfigError(
            f"{features.name}: the training split holds only class "
            f"{names[int(labels[train][0])]!r}; a head needs both classes"
        )
    if config.solver in ("adam", "grid") and config.select != "last":
        if (val.size == 0 or len(np.unique(labels[val])) < 2) and config.solver == "grid":
            raise ConfigError(
                f"{features.name}: the tuned protocol chooses on a validation split with both "
                "classes; make one, or use --preset report --select last"
            )
        if val.size == 0 or len(np.unique(labels[val])) < 2:
            raise ConfigError(
                f"{features.name}: select={config.select!r} needs a validation split with "
                "both classes; make one or use --select last"
            )


def _train_subset(
    features: FeatureSet, split: np.ndarray, train_rows: np.ndarray | Sequence[int]
) -> np.ndarray:
    """The sorted, checked training-row subset.

    Raises:
        ConfigError: If it is empty, holds repeats, or rows outside the training split.
    """
    rows = np.asarray(train_rows)
    if rows.ndim != 1 or rows.size == 0 or not np.issubdtype(rows.dtype, np.integer):
        raise ConfigError(
            f"{features.name}: train_rows must be a non-empty 1-D array of row indices"
        )
    out = np.sort(rows.astype(np.int64))
    if np.any(out[1:] == out[:-1]):
        raise ConfigError(f"{features.name}: train_rows holds repeated rows; give each once")
    bad = out[(out < 0) | (out >= len(split))]
    if bad.size == 0:
        bad = out[split[out] != 0]
    if bad.size:
        raise ConfigError(
            f"{features.name}: train_rows holds row {int(bad[0])}, which is not in the "
            "training split; draw the subset from the training rows"
        )
    return out
