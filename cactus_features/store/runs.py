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

Adding a format (e.g. format 2 with scores ``[N, K]``, class names and the task
kind): write ``_write_v2`` and ``_read_v2`` beside the format-1 pair below, add
``2: _read_v2`` to :data:`_READERS`, raise ``RUN.version`` in
:mod:`cactus_features.store.format` to 2 and make :data:`_WRITE` point at
``_write_v2``. :func:`load_run` keeps reading format-1 files through ``_read_v1``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from cactus_features.errors import CacheError
from cactus_features.store.features import split_code
from cactus_features.store.format import RUN, check_version, json_default, open_existing

RUN_FORMAT_VERSION = RUN.version
"""Version of the run file layout written by this library."""
RUN_KIND = RUN.kind
"""The ``kind`` attribute of run files."""


@dataclass
class Predictions:
    """Saved predictions of one run over every split.

    Attributes:
        ids: Image ids ``[N]``.
        split: Split codes ``[N]`` (0 train, 1 val, 2 test).
        label: True label indices ``[N]``.
        score: Predicted probability of the positive class ``[N]``.
    """

    ids: np.ndarray
    split: np.ndarray
    label: np.ndarray
    score: np.ndarray

    def select(self, split: str) -> Predictions:
        """Return the predictions of one split (``"train"``, ``"val"`` or ``"test"``)."""
        m = self.split == split_code(split)
        return Predictions(self.ids[m], self.split[m], self.label[m], self.score[m])


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

    Args:
        run: The run to save.
        path: Destination ``.h5`` path.
        overwrite: Replace an existing file; otherwise refuse.

    Returns:
        The path written.

    Raises:
        CacheError: If the file exists and ``overwrite`` is false.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise CacheError(f"{path}: a run file already exists; choose another name or --overwrite")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    with h5py.File(tmp, "w", track_order=True) as f:
        f.attrs["kind"] = RUN.kind
        f.attrs["format_version"] = RUN.version
        _WRITE(f, run)
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
    f.attrs["config"] = json.dumps(run.config, sort_keys=True, default=json_default)
    f.attrs["info"] = json.dumps(run.info, sort_keys=True, default=json_default)
    g = f.create_group("predictions")
    g.create_dataset("ids", data=np.asarray(p.ids, dtype=object), dtype=h5py.string_dtype())
    g.create_dataset("split", data=np.asarray(p.split, dtype=np.uint8))
    g.create_dataset("label", data=np.asarray(p.label, dtype=np.int64))
    g.create_dataset("score", data=np.asarray(p.score, dtype=np.float64))
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
    """Read a format-1 run file."""
    g = f["predictions"]
    preds = Predictions(
        ids=np.asarray(g["ids"].asstr()[...], dtype=object),
        split=np.asarray(g["split"][...], dtype=np.uint8),
        label=np.asarray(g["label"][...], dtype=np.int64),
        score=np.asarray(g["score"][...], dtype=np.float64),
    )
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
        info=json.loads(f.attrs["info"]),
        predictions=preds,
        history=history,
        head_state=head_state,
        standardize=standardize,
    )


_READERS: dict[int, Callable[[h5py.File, Path], RunFile]] = {1: _read_v1}
"""Reader of each run format version; :func:`load_run` dispatches on ``format_version``."""
_WRITE: Callable[[h5py.File, RunFile], None] = _write_v1
"""Writer of the format :func:`save_run` writes (``RUN_FORMAT_VERSION``)."""
