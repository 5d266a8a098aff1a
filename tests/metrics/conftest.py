"""Synthetic run files for the metrics tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cactus_features.runfile import Predictions, RunFile, save_run

CLASS_NAMES = ["no_cactus", "cactus"]


def synthetic_run(
    name: str = "resnet50@224",
    *,
    n_train: int = 60,
    n_val: int = 80,
    n_test: int = 200,
    separation: float = 1.5,
    noise_seed: int = 0,
    data_seed: int = 123,
    prevalence: float = 0.6,
    positive_class: int = 1,
    class_names: list[str] | None = None,
    weights_label: str | None = "IMAGENET1K_V2",
    shuffle_seed: int | None = None,
    info: dict[str, Any] | None = None,
    history: bool = True,
) -> RunFile:
    """A run whose labels depend only on ``data_seed`` and whose scores on ``noise_seed``.

    Runs built with the same ``data_seed`` (and sizes) share ids, splits and labels,
    like heads trained on different backbones' embeddings of one dataset.
    """
    class_names = list(class_names or CLASS_NAMES)
    data = np.random.default_rng(data_seed)
    n = n_train + n_val + n_test
    ids = np.array([f"img_{k:05d}.jpg" for k in range(n)], dtype=object)
    split = np.repeat(np.array([0, 1, 2], dtype=np.uint8), [n_train, n_val, n_test])
    is_pos = data.random(n) < prevalence
    label = np.where(is_pos, positive_class, 1 - positive_class).astype(np.int64)
    noise = np.random.default_rng(noise_seed)
    logit = separation * (2.0 * is_pos - 1.0) + noise.normal(0.0, 1.0, n)
    score = np.round(1.0 / (1.0 + np.exp(-logit)), 3)  # rounding creates ties
    if shuffle_seed is not None:
        perm = np.random.default_rng(shuffle_seed).permutation(n)
        ids, split, label, score = ids[perm], split[perm], label[perm], score[perm]
    run_info: dict[str, Any] = {
        "backbone_name": name,
        "features_path": f"cache/{name}.h5",
        "features_key": {"backbone": name},
        "class_names": class_names,
        "positive_class": positive_class,
        "class_weights": [1.0, 1.0],
        "class_weight_mode": "none",
        "best_epoch": 4,
        "epochs_run": 6,
        "train_seconds": 1.25,
        "dim": 512,
        "n_train": n_train,
        "n_val": n_val,
        "n_test": n_test,
        "model_info": {"params": 25_557_032, "gflops": 4.09, "resolution": 224},
        "timings": {"seconds": 12.5, "images_per_second": 1400.0},
    }
    if weights_label is not None:
        run_info["weights_label"] = weights_label
    run_info.update(info or {})
    hist = {}
    if history:
        e = np.arange(6)
        hist = {
            "train_loss": 0.7 * np.exp(-0.3 * e) + 0.01 * noise_seed,
            "val_loss": 0.72 * np.exp(-0.25 * e) + 0.05,
            "val_auc": 0.8 + 0.02 * e,
        }
    return RunFile(
        path=None,
        config={"head": "linear", "epochs": 6, "lr": 1e-3, "seed": 0},
        info=run_info,
        predictions=Predictions(ids=ids, split=split, label=label, score=score),
        history=hist,
    )


@pytest.fixture
def make_run(tmp_path: Path) -> Callable[..., Path]:
    """Save a :func:`synthetic_run` under ``tmp_path`` and return its path."""
    counter = iter(range(10_000))

    def _make(name: str = "resnet50@224", *, filename: str | None = None, **kw: Any) -> Path:
        run = synthetic_run(name, **kw)
        fname = filename or f"run{next(counter)}_{name.replace('@', '_')}.h5"
        return save_run(run, tmp_path / "runs" / fname)

    return _make


@pytest.fixture
def new_run() -> Callable[..., RunFile]:
    """The :func:`synthetic_run` factory (an unsaved :class:`RunFile`)."""
    return synthetic_run


def synthetic_class_run(
    name: str = "resnet50@224",
    *,
    k: int = 5,
    task: str = "multiclass",
    n_train: int = 60,
    n_val: int = 60,
    n_test: int = 300,
    separation: float = 2.0,
    noise_seed: int = 0,
    data_seed: int = 123,
    absent: Sequence[int] = (),
    class_names: list[str] | None = None,
    weights_label: str | None = "IMAGENET1K_V2",
) -> RunFile:
    """A K-class (or multi-label) run: labels depend on ``data_seed``, scores on ``noise_seed``.

    Multiclass: class ``c`` has frequency proportional to ``c + 1``; probabilities are
    the softmax of ``separation * onehot(y) + N(0, 1)``; classes in ``absent`` do not
    occur in the test split. Multilabel: label ``c`` occurs with probability
    ``0.15 + 0.6 c / k``; each probability is the sigmoid of
    ``separation * (2 y - 1) + N(0, 1)``.
    """
    data = np.random.default_rng(data_seed)
    n = n_train + n_val + n_test
    ids = np.array([f"img_{j:05d}.jpg" for j in range(n)], dtype=object)
    split = np.repeat(np.array([0, 1, 2], dtype=np.uint8), [n_train, n_val, n_test])
    noise = np.random.default_rng(noise_seed)
    names = list(class_names or [f"class_{c}" for c in range(k)])
    if task == "multilabel":
        prevalence = 0.15 + 0.6 * np.arange(k) / k
        label_matrix = (data.random((n, k)) < prevalence).astype(np.int64)
        logit = separation * (2.0 * label_matrix - 1.0) + noise.normal(0.0, 1.0, (n, k))
        proba = 1.0 / (1.0 + np.exp(-logit))
        label = label_matrix
    else:
        freq = np.arange(1, k + 1, dtype=np.float64)
        label = data.choice(k, size=n, p=freq / freq.sum()).astype(np.int64)
        keep = np.setdiff1d(np.arange(k), np.asarray(absent, dtype=np.int64))
        test = split == 2
        moved = test & np.isin(label, absent)
        label[moved] = data.choice(keep, size=int(moved.sum()))
        logit = separation * np.eye(k)[label] + noise.normal(0.0, 1.0, (n, k))
        e = np.exp(logit - logit.max(axis=1, keepdims=True))
        proba = e / e.sum(axis=1, keepdims=True)
    run_info: dict[str, Any] = {
        "backbone_name": name,
        "task": task,
        "class_names": names,
        "best_epoch": 4,
        "epochs_run": 6,
        "train_seconds": 1.25,
        "dim": 512,
        "model_info": {"params": 25_557_032, "gflops": 4.09, "resolution": 224},
        "timings": {"seconds": 12.5, "images_per_second": 1400.0},
    }
    if weights_label is not None:
        run_info["weights_label"] = weights_label
    return RunFile(
        path=None,
        config={"head": "linear", "epochs": 6, "lr": 1e-3, "seed": 0},
        info=run_info,
        predictions=Predictions(ids=ids, split=split, label=label, score=proba, task=task),
        history={"train_loss": 0.7 * np.exp(-0.3 * np.arange(6))},
    )


@pytest.fixture
def new_class_run() -> Callable[..., RunFile]:
    """The :func:`synthetic_class_run` factory (in-memory K-class / multi-label runs)."""
    return synthetic_class_run
