"""Class weights for the weighted loss, computed on the training split.

Each training sample ``i`` is weighted by ``w[y_i]``. With ``"inverse"`` (the
default) the rarer class gets the larger weight::

    w_c = (1 / n_c) / sum_k (1 / n_k)          (weights sum to 1)

so every class contributes the same total weight ``n_c * w_c``. On the aerial
cactus training data (4,364 without cactus, 13,136 with) this gives
``w = [0.7506, 0.2494]``: the minority class 0 is weighted about 3x more.

Multi-label data (:func:`compute_label_weights`): each label is its own binary problem,
and each entry ``(i, j)`` of the ``[N, L]`` label matrix is weighted by label ``j``'s
weight of its value, ``[w_j(0), w_j(1)]`` from the binary rule on that label's column
alone (``"inverse"``: ``w_j(1) = 1 - p_j`` and ``w_j(0) = p_j`` with ``p_j`` the share
of training images carrying label ``j``; ``"balanced"``: ``n / (2 n_j(c))``; ``"none"``:
ones), so a label's probe is weighted exactly as a binary head on that label would be.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from cactus_features.errors import ConfigError


def class_counts(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Number of samples of each class.

    Args:
        labels: Label indices of the training samples.
        n_classes: Number of classes.

    Returns:
        ``int64`` counts, shape ``[n_classes]``.
    """
    return np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes)[:n_classes]


def compute_class_weights(
    labels: np.ndarray,
    class_names: Sequence[str],
    mode: str | Sequence[float] | Mapping[str, float] = "inverse",
) -> tuple[np.ndarray, str]:
    """Class weights from the training labels.

    Args:
        labels: Label indices of the *training* samples.
        class_names: Class names in index order.
        mode: ``"inverse"`` (inverse frequency, normalised to sum to 1),
            ``"balanced"`` (sklearn's ``n / (K * n_c)``), ``"none"`` (all ones),
            explicit weights in class-index order, or ``{class name: weight}``.

    Returns:
        ``(weights, mode name)``: float64 weights ``[K]`` in class-index order and
        ``"inverse"``, ``"balanced"``, ``"none"`` or ``"explicit"``.

    Raises:
        ConfigError: If a class is absent from the training split (for the
            frequency-based modes) or explicit weights do not fit the classes.
    """
    n_classes = len(class_names)
    if isinstance(mode, str):
        if mode == "none":
            return np.ones(n_classes), "none"
        counts = class_counts(labels, n_classes)
        if (counts == 0).any():
            missing = [class_names[i] for i in np.flatnonzero(counts == 0)]
            raise ConfigError(
                f"class(es) {', '.join(map(repr, missing))} have no training samples, so "
                f"class_weight={mode!r} is undefined; fix the split or give explicit weights"
            )
        if mode == "inverse":
            inv = 1.0 / counts.astype(np.float64)
            return inv / inv.sum(), "inverse"
        if mode == "balanced":
            return counts.sum() / (n_classes * counts.astype(np.float64)), "balanced"
        raise ConfigError(
            f"unknown class weight {mode!r}; use inverse, balanced, none or values like 0.75,0.25"
        )
    if isinstance(mode, Mapping):
        unknown = sorted(set(mode) - set(class_names))
        missing = [c for c in class_names if c not in mode]
        if unknown or missing:
            raise ConfigError(
                f"class weights {dict(mode)!r} must name each class exactly once "
                f"({', '.join(class_names)}); unknown: {unknown or 'none'}, missing: "
                f"{missing or 'none'}"
            )
        weights = np.array([float(mode[c]) for c in class_names])
    else:
        weights = np.asarray([float(w) for w in mode], dtype=np.float64)
        if weights.shape != (n_classes,):
            raise ConfigError(
                f"got {weights.size} class weights for {n_classes} classes "
                f"({', '.join(class_names)}); give one weight per class in that order"
            )
    if not np.isfinite(weights).all() or (weights < 0).any() or weights.sum() <= 0:
        raise ConfigError(
            f"class weights {weights.tolist()} must be finite, non-negative and not all zero"
        )
    return weights, "explicit"


def compute_label_weights(
    matrix: np.ndarray,
    label_names: Sequence[str],
    mode: str | Sequence[float] | Mapping[str, float] = "inverse",
    *,
    source: str = "features",
) -> tuple[np.ndarray, str]:
    """Per-label weights of a multi-label training split: each label by the binary rule.

    Args:
        matrix: The ``[N, L]`` 0/1 labels of the *training* images.
        label_names: The ``L`` label names.
        mode: ``"inverse"``, ``"balanced"`` or ``"none"``, applied to each label's
            column as to a binary task's labels (see :func:`compute_class_weights`).
        source: The feature set's name, for errors.

    Returns:
        ``(weights, mode name)``: float64 ``[L, 2]``, row ``j`` holding label ``j``'s
        weight of an absent (column 0) and a present (column 1) label.

    Raises:
        ConfigError: For explicit weights (a binary task's two class weights have no
            single meaning over several labels), or (frequency modes) a label present on
            every training image or on none (:func:`~cactus_features.heads.prepare.data.prepare`
            checks this first and names the label).
    """
    if not isinstance(mode, str):
        raise ConfigError(
            f"{source}: explicit class weights {mode!r} do not apply to multi-label data; "
            "use --class-weight inverse, balanced or none (each label weighted by its own share)"
        )
    y = np.asarray(matrix, dtype=np.int64)
    out = np.empty((y.shape[1], 2), dtype=np.float64)
    mode_name = mode
    for j in range(len(label_names)):
        out[j], mode_name = compute_class_weights(y[:, j], ("0", "1"), mode)
    return out, mode_name


def format_class_weights(weights: np.ndarray | Sequence[Any], names: Sequence[str] = ()) -> str:
    """Class weights for a console line: ``[0.7506, 0.2494]``; per label (``[L, 2]``, with
    the label names): ``[cloud 0.15/0.85, field 0.30/0.70]`` (absent/present)."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim == 2:
        labels = list(names) or [str(j) for j in range(len(w))]
        pairs = zip(labels, w, strict=True)
        return "[" + ", ".join(f"{n} {a:.4f}/{b:.4f}" for n, (a, b) in pairs) + "]"
    return "[" + ", ".join(f"{v:.4f}" for v in w) + "]"


def parse_class_weight(text: str) -> str | tuple[float, ...] | dict[str, float]:
    """Parse a command-line class-weight value.

    Args:
        text: ``inverse``, ``balanced``, ``none``, ``"0.75,0.25"`` (class-index
            order) or ``"no_cactus=0.75,cactus=0.25"`` (by class name).

    Returns:
        A value accepted by :func:`compute_class_weights`.

    Raises:
        ConfigError: If the text is none of these.
    """
    text = text.strip()
    if text in ("inverse", "balanced", "none"):
        return text
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        if parts and all("=" in p for p in parts):
            return {k.strip(): float(v) for k, v in (p.split("=", 1) for p in parts)}
        if parts:
            return tuple(float(p) for p in parts)
    except ValueError:
        pass
    raise ConfigError(
        f"class weight {text!r} is invalid; use inverse, balanced, none, "
        "values in class order such as 0.75,0.25, or name=value pairs"
    )
