"""The run file: everything one head-training run produced, in one HDF5 file.

Written by :mod:`cactus_features.heads`, read by :mod:`cactus_features.metrics`.
The metrics module reads nothing else, so every reported number comes from
these saved predictions. This module is the only one that writes or reads run
files. Layout of format 1 (see ``docs/cache-format.md``)::

    /predictions/ids    str     [N]  image ids (all splits)
    /predictions/split  uint8   [N]  0 train, 1 val, 2 test
    /predictions/label  int64   [N]  true label index
    /predictions/score  float64 [N]  predicted probability of the positive class
    /history/<name>     float64 [E]  per-epoch curves (train_loss, val_loss, val_auc)
    /head/<param>       float32      head weights (state dict, '.' -> '/')
    /standardize/mean, /standardize/std  float32 [D]
    attrs: kind, format_version, config (JSON), info (JSON)

Format 2, for multi-class and multi-label runs, differs in the predictions and
two attributes::

    /predictions/label  int64   [N]     true class index (multiclass)
                        uint8   [N, K]  true 0/1 labels (multilabel)
    /predictions/proba  float64 [N, K]  probabilities: softmax over the K classes
                                        (multiclass), one sigmoid per label (multilabel)
    attrs: ... task ("multiclass" or "multilabel"), class_names (JSON, K names)

Binary runs are still written as format 1, laid out exactly as before; their positive
class is ``info["positive_class"]`` (an index). :func:`load_run` reads both formats
into one :class:`Predictions` (``task``, ``proba`` ``[N, K]`` for every task).
Adding a format: write ``_write_vN`` and ``_read_vN`` beside these, add them to
:data:`_WRITERS` and :data:`_READERS` and raise ``RUN.version`` in
:mod:`cactus_features.store.format`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from cactus_features.data.classes import BINARY, MULTICLASS, MULTILABEL
from cactus_features.errors import CacheError
from cactus_features.store.features import split_code
from cactus_features.store.format import (
    RUN,
    check_version,
    json_default,
    open_existing,
    text_attr,
)

RUN_FORMAT_VERSION = RUN.version
"""Newest run file layout this library reads and writes (2: multi-class, multi-label)."""
RUN_KIND = RUN.kind
"""The ``kind`` attribute of run files."""


@dataclass
class Predictions:
    """Saved predictions of one run over every split.

    Attributes:
        ids: Image ids ``[N]``.
        split: Split codes ``[N]`` (0 train, 1 val, 2 test).
        label: True labels: class indices ``[N]`` (binary, multiclass), or 0/1
            ``[N, K]`` (multilabel).
        score: Predicted probabilities: of the positive class ``[N]`` (binary), of
            each class ``[N, K]`` (multiclass, rows sum to 1) or of each label
            ``[N, K]`` (multilabel).
        task: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        positive_index: Binary only: the class ``score`` is the probability of.
    """

    ids: np.ndarray
    split: np.ndarray
    label: np.ndarray
    score: np.ndarray
    task: str = BINARY
    positive_index: int = 1

    @property
    def proba(self) -> np.ndarray:
        """Probabilities ``[N, K]`` for every task (binary: both classes, in class order)."""
        if self.task != BINARY:
            return np.asarray(self.score, dtype=np.float64)
        out = np.empty((len(self.score), 2), dtype=np.float64)
        out[:, self.positive_index] = self.score
        out[:, 1 - self.positive_index] = 1.0 - np.asarray(self.score, dtype=np.float64)
        return out

    def select(self, split: str) -> Predictions:
        """Return the predictions of one split (``"train"``, ``"val"`` or ``"test"``)."""
        m = self.split == split_code(split)
        return replace(
            self, ids=self.ids[m], split=self.split[m], label=self.label[m], score=self.score[m]
        )


@dataclass
class RunFile:
    """One head-training run as saved on disk.

    Attributes:
        path: Where the run file lives (``None`` before it is saved).
        config: The head configuration (head kind, epochs, lr, weight decay, seed, ...).
        info: Everything else: backbone name, feature key and path, class names,
            positive class, class weights used, best epoch, timings, efficiency
            figures copied from the feature cache (params, GFLOPs, img/s, dim).
        predictions: Predictions for every split.
        history: Per-epoch curves by name (``train_loss``, ``val_loss``, ``val_auc``).
        head_state: Head weights by state-dict name.
        standardize: ``{"mean": ..., "std": ...}`` used on the inputs (may be empty).
    """

    path: Path | None
    config: dict[str, Any]
    info: dict[str, Any]
    predictions: Predictions
    history: dict[str, np.ndarray] = field(default_factory=dict)
    head_state: dict[str, np.ndarray] = field(default_factory=dict)
    standardize: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """Readable backbone label of the run (e.g. ``resnet50@224``)."""
        return str(self.info.get("backbone_name", self.path.stem if self.path else "run"))


def save_run(run: RunFile, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write a run file atomically (temporary file, then rename).

    Binary runs are written as format 1 (unchanged), multi-class and multi-label
    runs as format 2.

    Args:
        run: The run to save.
        path: Destination ``.h5`` path.
        overwrite: Replace an existing file; otherwise refuse.

    Returns:
        The path written.

    Raises:
        CacheError: If the file exists and ``overwrite`` is false.
        ValueError: If the predictions do not fit the task and class names.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise CacheError(f"{path}: a run file already exists; choose another name or --overwrite")
    path.parent.mkdir(parents=True, exist_ok=True)
    version = 1 if run.predictions.task == BINARY else 2
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with h5py.File(tmp, "w", track_order=True) as f:
            f.attrs["kind"] = RUN.kind
            f.attrs["format_version"] = version
            _WRITERS[version](f, run)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    run.path = path
    return path


def load_run(path: str | Path) -> RunFile:
    """Read a run file written by :func:`save_run` (any format up to ``RUN_FORMAT_VERSION``).

    Args:
        path: The run ``.h5`` file.

    Returns:
        The run with predictions, history, head weights and standardisation.

    Raises:
        CacheError: If the file is missing, not a run file or of a newer format.
    """
    path = Path(path)
    missing = "no such run file; train a head first (`cactus-features train`)"
    f = open_existing(path, missing=missing)
    with f:
        version = check_version(f.attrs, RUN, path=path, advice="upgrade cactus-features")
        # files from before the version attribute existed have the format-1 layout
        return _READERS[max(version, 1)](f, path)


def _write_v1(f: h5py.File, run: RunFile) -> None:
    """Write the format-1 contents (everything but ``kind`` and ``format_version``)."""
    p = run.predictions
    g = _write_common(f, run)
    g.create_dataset("label", data=np.asarray(p.label, dtype=np.int64))
    g.create_dataset("score", data=np.asarray(p.score, dtype=np.float64))
    _write_arrays(f, run)


def _write_v2(f: h5py.File, run: RunFile) -> None:
    """Write the format-2 contents: ``[N, K]`` probabilities, the task and class names."""
    p = run.predictions
    names = [str(c) for c in run.info.get("class_names", [])]
    proba = np.asarray(p.score, dtype=np.float64)
    label_dtype = np.uint8 if p.task == MULTILABEL else np.int64
    label = np.asarray(p.label, dtype=label_dtype)
    want_label = (len(p.ids), len(names)) if p.task == MULTILABEL else (len(p.ids),)
    if p.task not in (MULTICLASS, MULTILABEL) or proba.shape != (len(p.ids), len(names)):
        raise ValueError(
            f"format 2 takes multiclass or multilabel [N, K] scores; got task {p.task!r}, "
            f"scores {proba.shape} for {len(p.ids)} ids and {len(names)} class names"
        )
    if label.shape != want_label:
        raise ValueError(f"labels of shape {label.shape} do not fit {p.task} {want_label}")
    f.attrs["task"] = p.task
    f.attrs["class_names"] = json.dumps(names)
    g = _write_common(f, run)
    g.create_dataset("label", data=label)
    g.create_dataset("proba", data=proba)
    _write_arrays(f, run)


def _write_common(f: h5py.File, run: RunFile) -> h5py.Group:
    """Write ``config``, ``info``, the ids and the split; return the predictions group."""
    p = run.predictions
    f.attrs["config"] = json.dumps(run.config, sort_keys=True, default=json_default)
    f.attrs["info"] = json.dumps(run.info, sort_keys=True, default=json_default)
    g = f.create_group("predictions")
    g.create_dataset("ids", data=np.asarray(p.ids, dtype=object), dtype=h5py.string_dtype())
    g.create_dataset("split", data=np.asarray(p.split, dtype=np.uint8))
    return g


def _write_arrays(f: h5py.File, run: RunFile) -> None:
    """Write the history, head weights and standardisation groups."""
    h = f.create_group("history")
    for k, v in run.history.items():
        h.create_dataset(k, data=np.asarray(v, dtype=np.float64))
    w = f.create_group("head")
    for k, v in run.head_state.items():
        w.create_dataset(k.replace(".", "/"), data=np.asarray(v))
    s = f.create_group("standardize")
    for k, v in run.standardize.items():
        s.create_dataset(k, data=np.asarray(v, dtype=np.float32))


def _read_v1(f: h5py.File, path: Path) -> RunFile:
    """Read a format-1 (binary) run file."""
    g = f["predictions"]
    info = json.loads(f.attrs["info"])
    preds = Predictions(
        ids=np.asarray(g["ids"].asstr()[...], dtype=object),
        split=np.asarray(g["split"][...], dtype=np.uint8),
        label=np.asarray(g["label"][...], dtype=np.int64),
        score=np.asarray(g["score"][...], dtype=np.float64),
        positive_index=int(info.get("positive_class", 1)),
    )
    return _read_rest(f, path, info, preds)


def _read_v2(f: h5py.File, path: Path) -> RunFile:
    """Read a format-2 (multi-class or multi-label) run file."""
    g = f["predictions"]
    info = json.loads(f.attrs["info"])
    task = str(text_attr(f.attrs, "task"))
    names = json.loads(text_attr(f.attrs, "class_names"))
    ids = np.asarray(g["ids"].asstr()[...], dtype=object)
    proba = np.asarray(g["proba"][...], dtype=np.float64)
    label = np.asarray(g["label"][...])
    want_label = (len(ids), len(names)) if task == MULTILABEL else (len(ids),)
    if (
        task not in (MULTICLASS, MULTILABEL)
        or proba.shape != (len(ids), len(names))
        or label.shape != want_label
    ):
        raise CacheError(
            f"{path}: damaged run file (task {task!r}, {len(ids)} ids, {len(names)} classes, "
            f"probabilities {proba.shape}, labels {label.shape}); train the head again"
        )
    info["class_names"] = names
    preds = Predictions(
        ids=ids,
        split=np.asarray(g["split"][...], dtype=np.uint8),
        label=label.astype(np.uint8 if task == MULTILABEL else np.int64),
        score=proba,
        task=task,
    )
    return _read_rest(f, path, info, preds)


def _read_rest(f: h5py.File, path: Path, info: dict[str, Any], preds: Predictions) -> RunFile:
    """The parts every format shares: config, history, head weights, standardisation."""
    history = {k: np.asarray(v[...]) for k, v in f["history"].items()}
    head_state: dict[str, np.ndarray] = {}
    f["head"].visititems(
        lambda name, obj: (
            head_state.__setitem__(name.replace("/", "."), np.asarray(obj[...]))
            if isinstance(obj, h5py.Dataset)
            else None
        )
    )
    standardize = {k: np.asarray(v[...]) for k, v in f["standardize"].items()}
    return RunFile(
        path=path,
        config=json.loads(f.attrs["config"]),
        info=info,
        predictions=preds,
        history=history,
        head_state=head_state,
        standardize=standardize,
    )


_READERS: dict[int, Callable[[h5py.File, Path], RunFile]] = {1: _read_v1, 2: _read_v2}
"""Reader of each run format version; :func:`load_run` dispatches on ``format_version``."""
_WRITERS: dict[int, Callable[[h5py.File, RunFile], None]] = {1: _write_v1, 2: _write_v2}
"""Writer of each format: :func:`save_run` writes binary runs as 1, the others as 2."""
