"""Multi-label data: which heads take it, and the checks its splits must pass.

A multi-label feature set (:attr:`~cactus_features.features.FeatureSet.label_matrix`
``[N, L]``) trains ``L`` sigmoid outputs, one binary problem per label. Every label
needs images with and without it in the training split; when the head chooses on
validation (every solver but ``select="last"``) every label needs both in the
validation split too, so that each label's validation AUC and strength choice are
defined: a label missing from validation is an error naming it, not a label quietly
left out of the selection.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cactus_features.errors import ConfigError

MULTILABEL_HEADS: dict[str, tuple[str, ...]] = {
    "linear": ("grid", "adam"),
    "mlp": ("grid", "adam"),
    "knn": ("knn",),
}
"""The solvers of each head kind that train multi-label heads: the single place to extend
(the tuned linear head: one warm-started L2 path per label, in
:mod:`cactus_features.heads.solvers.multilabel`; Adam, linear or MLP, and the tuned MLP:
one sigmoid per label through :func:`~cactus_features.heads.solvers.engine.fit_stacked`;
the kNN probe's per-label vote shares, in :mod:`cactus_features.heads.solvers.knn_votes`).
Heads and solvers absent here are refused before training (:func:`check_takes_labels`)
and, in a study, before extraction (:func:`cactus_features.study.support.check_heads_support`)."""


def takes_labels(head: str, solver: str) -> bool:
    """Whether a head kind and solver train multi-label heads (:data:`MULTILABEL_HEADS`)."""
    return solver in MULTILABEL_HEADS.get(head, ())


def supported_text() -> str:
    """The heads that take multi-label data, for messages (``linear (solver grid)``)."""
    return ", ".join(f"{h} (solver {'/'.join(s)})" for h, s in MULTILABEL_HEADS.items())


def check_takes_labels(head: str, solver: str, n_labels: int) -> None:
    """Refuse a head that cannot train on multi-label data.

    Raises:
        ConfigError: One line naming the head, the solver and what takes several labels.
    """
    if not takes_labels(head, solver):
        raise ConfigError(
            f"multi-label data ({n_labels} labels): the {head} head with solver {solver!r} "
            f"takes one label per image only so far; use {supported_text()}, e.g. "
            "--head linear with the tuned preset"
        )


def check_label_splits(
    source: str,
    matrix: np.ndarray,
    label_names: Sequence[str],
    train: np.ndarray,
    val: np.ndarray,
    select: str,
) -> None:
    """Every label has images with and without it in training (and validation, when needed).

    Args:
        source: The feature set's name (for errors).
        matrix: The ``[N, L]`` 0/1 labels of the whole cache.
        label_names: The ``L`` label names.
        train: Training row indices.
        val: Validation row indices.
        select: ``HeadConfig.select``: anything but ``"last"`` chooses on validation.

    Raises:
        ConfigError: Naming the first label that lacks positives or negatives and where.
    """
    parts = [("training", train)] + ([("validation", val)] if select != "last" else [])
    for where, rows in parts:
        if rows.size == 0:
            raise ConfigError(
                f"{source}: the {where} split is empty; make a split first"
                + ("" if where == "training" else " (or use --select last)")
            )
        counts = matrix[rows].sum(axis=0, dtype=np.int64)
        for j, name in enumerate(label_names):
            if counts[j] in (0, rows.size):
                has = "every" if counts[j] else "no"
                raise ConfigError(
                    f"{source}: label {name!r} is on {has} image of the {where} split, so its "
                    f"probe cannot be {'trained' if where == 'training' else 'chosen'}; "
                    "re-split (the multi-label split stratifies each label) or drop the label"
                )
