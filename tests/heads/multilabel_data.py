"""Generated multi-label feature sets for the head tests."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from cactus_features.data.split import iterative_split
from cactus_features.features import FeatureSet

LABELS = ("cloud", "field", "road", "water")
"""Label names of the generated sets."""


def multilabel_features(
    n: int = 500,
    d: int = 10,
    *,
    seed: int = 0,
    noise: float = 1.0,
    backbone: str = "mlgauss",
    prevalence: tuple[float, ...] = (0.15, 0.3, 0.5, 0.7),
) -> FeatureSet:
    """Labels from correlated Gaussian scores (label 1 follows label 0), each label
    visible along its own random direction of the embeddings; the iterative split
    (70/15/15, the default)."""
    rng = np.random.default_rng(seed)
    n_labels = len(prevalence)
    z = rng.standard_normal((n, n_labels))
    z[:, 1] += 0.8 * z[:, 0]
    cut = np.quantile(z, 1.0 - np.asarray(prevalence), axis=0).diagonal()
    y = (z > cut).astype(np.uint8)
    directions = rng.standard_normal((n_labels, d))
    x = z @ directions + noise * rng.standard_normal((n, d))
    return FeatureSet(
        path=None,
        key={"backbone": backbone, "resolution": 8},
        ids=np.array([f"img{i:04d}" for i in range(n)], dtype=object),
        labels=np.full(n, -1, dtype=np.int64),
        split=iterative_split(y),
        class_names=list(LABELS[:n_labels]),
        attrs={},
        label_matrix=y,
        _embeddings=(3.0 * x + 5.0).astype(np.float32),
    )


def binary_column(fs: FeatureSet, j: int) -> FeatureSet:
    """The binary feature set of label ``j`` alone (classes ``0`` and ``1``), same rows."""
    assert fs.label_matrix is not None
    return replace(
        fs,
        labels=fs.label_matrix[:, j].astype(np.int64),
        class_names=["0", "1"],
        label_matrix=None,
        _embeddings=fs.embeddings,
    )
