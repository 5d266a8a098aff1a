"""Scoring unlabelled images with a saved head, and Kaggle submission files."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cactus_features.errors import ConfigError, DataError
from cactus_features.extract.api import BackboneRequest, extract_features
from cactus_features.features import concat_features, load_features
from cactus_features.heads import predict_scores
from cactus_features.runfile import RunFile, load_run


@dataclass
class Submission:
    """Scores written for unlabelled images.

    Attributes:
        path: The CSV written.
        ids: Image ids in file order.
        scores: P(positive class) per id ``[N]``, or of every class ``[N, K]``.
    """

    path: Path
    ids: list[str]
    scores: np.ndarray


def _feature_paths(run: RunFile) -> list[Path]:
    paths = run.info.get("features_path")
    if not paths:
        raise ConfigError(f"{run.path}: the run does not name the cache it was trained on")
    return [Path(p) for p in (paths if isinstance(paths, list) else [paths])]


def predict_folder(
    run: RunFile | str | Path,
    data: str | Path,
    out: str | Path,
    *,
    sample_submission: str | Path | None = None,
    id_column: str = "id",
    score_column: str | None = None,
    cache_dir: str | Path | None = None,
    device: str | None = None,
    quiet: bool = False,
) -> Submission:
    """Score every image of an unlabelled folder and write ``id,<label column>`` rows
    (for a K-class run, ``id,<class 1>,...,<class K>``: one probability column per class).

    The images go through the same backbone settings as the run's training
    features (through the cache: a second call extracts nothing), then the head.

    Args:
        run: The run file (or loaded run).
        data: Folder of unlabelled images.
        out: CSV to write.
        sample_submission: A CSV whose id order the output follows (Kaggle's).
        id_column: Id column name in the output and the sample.
        score_column: Score column name; default the training CSV's label column.
        cache_dir: Cache folder; default the folder holding the training cache.
        device: Extraction device.
        quiet: No progress bar.

    Returns:
        The submission written.

    Raises:
        ConfigError: For runs on dataset-normalised features (their statistics
            belong to the training set) or runs without a cache path.
        DataError: If the sample submission's ids differ from the folder's.
    """
    run = run if isinstance(run, RunFile) else load_run(run)
    sources = [load_features(p) for p in _feature_paths(run)]
    sets = []
    for fs in sources:
        key = fs.key
        if key.get("normalization") == "dataset":
            raise ConfigError(
                f"{fs.path}: features normalised with dataset statistics cannot score new images "
                "yet; extract with --normalization weights for prediction"
            )
        weights = None if key["weights"] == "random init" else key["weights"]
        weights_file = fs.attrs.get("model_info", {}).get("weights_file") or None
        if str(key["weights"]).startswith("file:") and not (
            weights_file and Path(weights_file).is_file()
        ):
            raise ConfigError(
                f"{fs.path}: was extracted with the weights file {key['weights'][5:]}, which is "
                "no longer where it was; put it back to score new images"
            )
        (new,) = extract_features(
            data,
            BackboneRequest(
                key["backbone"],
                weights or "none",
                weights_file,
                key["resolution"],
                key.get("features", "last"),
            ),
            layout="unlabelled",
            normalization=key["normalization"],
            precision=key["precision"],
            dtype=key.get("dtype", "float32"),
            cache_dir=cache_dir or fs.path.parent.parent,
            device=device,
            quiet=quiet,
        )
        sets.append(new)
    merged = concat_features(sets)
    scores = predict_scores(run, merged.embeddings)
    ids = [str(i) for i in merged.ids]
    if sample_submission is not None:
        ids, scores = _in_sample_order(Path(sample_submission), id_column, ids, scores)
    if np.ndim(scores) == 2:  # K classes: one probability column per class
        columns = [str(c) for c in run.info.get("class_names", [])]
    else:
        columns = [
            score_column or sources[0].attrs.get("source", {}).get("label_column") or "score"
        ]
    out = write_submission(out, id_column, columns, ids, np.asarray(scores))
    return Submission(out, ids, np.asarray(scores))


def write_submission(
    out: str | Path, id_column: str, columns: list[str], ids: list[str], scores: np.ndarray
) -> Path:
    """Write ``id,<score columns>`` rows: one score column (binary) or one per class.

    Args:
        out: CSV to write (its folder is made).
        id_column: Id column name.
        columns: Score column names: one for ``[N]`` scores, ``K`` for ``[N, K]``.
        ids: Image ids in file order.
        scores: ``[N]`` or ``[N, K]`` probabilities.

    Returns:
        The path written.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = scores.reshape(len(ids), -1)
    if rows.shape[1] != len(columns):
        raise ValueError(f"{rows.shape[1]} score columns for column names {columns}")
    with open(out, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([id_column, *columns])
        for i, row in zip(ids, rows, strict=True):
            writer.writerow([i, *(f"{float(v):.6f}" for v in row)])
    return out


def _in_sample_order(
    sample: Path, id_column: str, ids: list[str], scores: np.ndarray
) -> tuple[list[str], np.ndarray]:
    if not sample.is_file():
        raise DataError(f"{sample}: sample submission does not exist")
    with open(sample, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if id_column not in (reader.fieldnames or []):
            raise DataError(f"{sample}: no column {id_column!r}; name it with --id-column")
        order = [r[id_column] for r in reader]
    lookup = {i: n for n, i in enumerate(ids)}
    missing = [i for i in order if i not in lookup]
    extra = set(ids) - set(order)
    if missing or extra:
        raise DataError(
            f"{sample}: {len(missing)} ids have no image and {len(extra)} images have no id "
            f"(first: {(missing or sorted(extra))[0]!r}); "
            "use the sample submission that belongs to this folder"
        )
    idx = np.array([lookup[i] for i in order], dtype=np.int64)
    return order, np.asarray(scores)[idx]
