"""Synthetic feature sets and minimal cache files for the head tests."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from cactus_features.features import FeatureSet

MODEL_INFO = {"params": 1000, "gflops": 0.5, "resolution": 32}
TIMINGS = {"seconds": 2.0, "images_per_second": 500.0}


def make_features(
    n: int = 400,
    d: int = 16,
    *,
    seed: int = 0,
    pos_frac: float = 0.75,
    signal: float = 1.5,
    noise: float = 1.0,
    n_unlabelled: int = 0,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    backbone: str = "synthetic",
    n_classes: int = 2,
) -> FeatureSet:
    """An in-memory feature set with a planted linear signal.

    Labels: ``round(pos_frac * n)`` positives; embeddings ``noise * N(0, 1)`` plus
    ``signal`` along a fixed direction for positives; splits drawn per class so
    each split holds both classes; ``n_unlabelled`` extra rows with split 255.
    """
    rng = np.random.default_rng(seed)
    labels = np.zeros(n, dtype=np.int64)
    labels[: round(pos_frac * n)] = 1
    if n_classes > 2:
        labels = np.arange(n) % n_classes
    rng.shuffle(labels)
    direction = rng.standard_normal(d)
    direction /= np.linalg.norm(direction)
    x = noise * rng.standard_normal((n, d)) + signal * np.outer(labels == 1, direction)
    x = (3.0 * x + 5.0).astype(np.float32)  # not standardised
    split = np.zeros(n, dtype=np.uint8)
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        a = round(fractions[0] * len(idx))
        b = a + round(fractions[1] * len(idx))
        split[idx[a:b]] = 1
        split[idx[b:]] = 2
    ids = np.array([f"img{i:05d}" for i in range(n)], dtype=object)
    if n_unlabelled:
        x = np.concatenate([x, rng.standard_normal((n_unlabelled, d)).astype(np.float32)])
        labels = np.concatenate([labels, np.full(n_unlabelled, -1)])
        split = np.concatenate([split, np.full(n_unlabelled, 255, dtype=np.uint8)])
        ids = np.concatenate([ids, [f"test{i:05d}" for i in range(n_unlabelled)]])
    names = [str(c) for c in range(max(2, n_classes))]
    return FeatureSet(
        path=None,
        key={"backbone": backbone, "resolution": 32},
        ids=ids,
        labels=labels,
        split=split,
        class_names=names,
        attrs={},
        _embeddings=x,
    )


def write_cache(path: Path, fs: FeatureSet, *, with_attrs: bool = True) -> Path:
    """Write ``fs`` as a minimal complete cache file that ``load_features`` accepts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.attrs["kind"] = "cactus-features/embeddings"
        f.attrs["format_version"] = 1
        f.attrs["complete"] = True
        f.attrs["key"] = json.dumps(fs.key)
        f.attrs["class_names"] = json.dumps(fs.class_names)
        if with_attrs:
            f.attrs["model_info"] = json.dumps(MODEL_INFO)
            f.attrs["timings"] = json.dumps(TIMINGS)
            f.attrs["weights_label"] = "random init"
        f.create_dataset("embeddings", data=fs.embeddings)
        f.create_dataset("ids", data=fs.ids.astype(str).astype(object), dtype=h5py.string_dtype())
        f.create_dataset("labels", data=fs.labels)
        f.create_dataset("split", data=fs.split)
    return path
