"""Run-file naming and the ``info`` block that :mod:`cactus_features.metrics` reads."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cactus_features.data.classes import BINARY, MULTILABEL
from cactus_features.features import FeatureSet
from cactus_features.heads.prepare.data import PreparedData

DEFAULT_RUN_DIR = Path("cache/runs")
"""Where runs of in-memory feature sets go when no ``out`` is given."""
COPIED_ATTRS = ("model_info", "timings", "weights_label")
"""Cache attributes copied into ``info`` when present."""


def run_stem(features: FeatureSet) -> str:
    """File-name stem of a feature set (cache stem, or a cleaned-up name)."""
    if features.path is not None:
        return features.path.stem
    return re.sub(r"[^A-Za-z0-9_.@+=-]+", "_", features.name)[:120] or "features"


def default_run_dir(features: FeatureSet, parts: Sequence[FeatureSet]) -> Path:
    """``<cache dir>/runs`` next to the features (the first part's, for a concatenation)."""
    for fs in (features, *parts):
        if fs.path is not None:
            return fs.path.parent / "runs"
    return DEFAULT_RUN_DIR


def run_path(
    features: FeatureSet,
    parts: Sequence[FeatureSet],
    tag: str,
    out: str | Path | None = None,
    overwrite: bool = False,
) -> Path:
    """Where a run is saved: ``<dir>/<features stem>__<tag>.h5``, never over another run.

    Args:
        features: The features trained on.
        parts: The sets they were concatenated from.
        tag: ``<head>-<config hash>`` (or similar).
        out: A directory, or an exact ``.h5`` file; default: :func:`default_run_dir`.
        overwrite: Reuse the path even if a file exists there.

    Returns:
        The path; when it exists and ``overwrite`` is false, the first free
        ``-2``, ``-3``, ... variant.
    """
    if out is not None and Path(out).suffix in (".h5", ".hdf5"):
        path = Path(out)
    else:
        folder = Path(out) if out is not None else default_run_dir(features, parts)
        path = folder / f"{run_stem(features)}__{tag}.h5"
    if overwrite or not path.exists():
        return path
    n = 2
    while (candidate := path.with_name(f"{path.stem}-{n}{path.suffix}")).exists():
        n += 1
    return candidate


def _features_path(features: FeatureSet, parts: Sequence[FeatureSet]) -> str | list[str] | None:
    if len(parts) > 1:
        return [str(p.path) if p.path is not None else p.name for p in parts]
    if features.path is not None:
        return str(features.path)
    part_paths = features.attrs.get("parts")
    return [str(p) for p in part_paths] if part_paths else None


def _combined_attrs(parts: Sequence[FeatureSet]) -> dict[str, Any]:
    """Efficiency figures of a concatenation: sums of the parts' (when all have them)."""
    out: dict[str, Any] = {}
    infos = [p.attrs.get("model_info") for p in parts]
    if all(isinstance(i, dict) for i in infos):
        merged: dict[str, Any] = {}
        for field in ("params", "gflops"):
            values = [i.get(field) for i in infos]  # type: ignore[union-attr]
            if all(isinstance(v, (int, float)) for v in values):
                merged[field] = sum(values)
        merged["resolution"] = [i.get("resolution") for i in infos]  # type: ignore[union-attr]
        out["model_info"] = merged
    timings = [p.attrs.get("timings") for p in parts]
    if all(isinstance(t, dict) for t in timings):
        merged = {}
        secs = [t.get("seconds") for t in timings]  # type: ignore[union-attr]
        if all(isinstance(v, (int, float)) for v in secs):
            merged["seconds"] = sum(secs)
        ips = [t.get("images_per_second") for t in timings]  # type: ignore[union-attr]
        if all(isinstance(v, (int, float)) and v > 0 for v in ips):
            merged["images_per_second"] = 1.0 / sum(1.0 / v for v in ips)
        out["timings"] = merged
    labels = [p.attrs.get("weights_label") for p in parts]
    if all(isinstance(v, str) for v in labels):
        out["weights_label"] = " + ".join(labels)  # type: ignore[arg-type]
    return out


def build_info(
    data: PreparedData,
    parts: Sequence[FeatureSet],
    *,
    best_epoch: int,
    epochs_run: int,
    train_seconds: float,
    device: torch.device,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``RunFile.info`` of a run.

    Always holds ``backbone_name``, ``features_path``, ``features_key``,
    ``class_names``, ``positive_class`` (binary; ``task`` for K classes and
    multi-label), ``class_weights`` (multi-label: ``[absent, present]`` per label),
    ``class_weight_mode``, ``class_counts_train`` (multi-label: images carrying each label),
    ``best_epoch``, ``epochs_run``, ``train_seconds``, ``dim``, ``n_train``,
    ``n_val``, ``n_test``; plus ``model_info``, ``timings`` and ``weights_label``
    copied from the cache when present (combined over the parts of a concatenation),
    and ``extra``.
    """
    fs = data.features
    info: dict[str, Any] = {
        "backbone_name": fs.name,
        "features_path": _features_path(fs, parts),
        "features_key": fs.key,
        "class_names": list(data.class_names),
        "positive_class": data.positive_index,
        "class_weights": np.asarray(data.class_weights, dtype=np.float64).tolist(),
        "class_weight_mode": data.class_weight_mode,
        "best_epoch": int(best_epoch),
        "epochs_run": int(epochs_run),
        "train_seconds": float(train_seconds),
        "dim": data.dim,
        "n_train": int(data.train.size),
        "n_val": int(data.val.size),
        "n_test": int(data.test.size),
        "class_counts_train": _train_counts(data),
        "standardized": data.standardizer is not None,
        "device": str(device),
        "torch_version": torch.__version__,
    }
    if data.task != BINARY:  # K classes or several labels: no positive class
        del info["positive_class"]
        info["task"] = data.task
    if len(parts) > 1:
        info.update(_combined_attrs(parts))
        info["parts"] = [
            {
                "backbone_name": p.name,
                "features_path": str(p.path) if p.path is not None else None,
                **{k: p.attrs[k] for k in COPIED_ATTRS if k in p.attrs},
            }
            for p in parts
        ]
    else:
        info.update({k: fs.attrs[k] for k in COPIED_ATTRS if k in fs.attrs})
    info.update(extra or {})
    return info


def _train_counts(data: PreparedData) -> list[int]:
    """Training images of each class (multi-label: carrying each label)."""
    if data.task == MULTILABEL:
        return data.targets(data.train).sum(axis=0, dtype=np.int64).tolist()
    return np.bincount(data.labels[data.train], minlength=len(data.class_names)).tolist()
