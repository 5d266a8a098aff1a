"""Scoring unlabelled images with a saved head, and Kaggle submission files."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cactus_features.data.classes import BINARY, MULTICLASS, MULTILABEL
from cactus_features.errors import ConfigError, DataError
from cactus_features.extract.api import BackboneRequest, extract_features
from cactus_features.features import concat_features, load_features
from cactus_features.heads import predict_scores
from cactus_features.metrics.multilabel import DECISION_THRESHOLD
from cactus_features.runfile import RunFile, load_run

WRITE_KINDS = ("proba", "label")
"""What a submission holds: probabilities, or predicted labels."""


@dataclass
class Submission:
    """Scores written for unlabelled images.

    Attributes:
        path: The CSV written.
        ids: Image ids in file order.
        scores: P(positive class) per id ``[N]``, or of every class (label) ``[N, K]``.
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
    write: str = "proba",
    cache_dir: str | Path | None = None,
    device: str | None = None,
    quiet: bool = False,
) -> Submission:
    """Score every image of an unlabelled folder and write a submission CSV.

    ``write="proba"`` (the default) writes probabilities: ``id,<label column>`` (binary:
    P(positive class)); ``id,<class 1>,...,<class K>`` (K classes: one column per class,
    a softmax); ``id,<label 1>,...,<label L>`` (multi-label: one sigmoid per label).
    ``write="label"`` writes one ``id,<label column>`` column of predictions instead: the
    most probable class's name (K classes), the class of probability at least 0.5
    (binary: the positive class, else the other), or the labels of probability at least
    0.5 (the metrics' decision threshold), in label order, joined by the training
    dataset's label separator (a space when its labels were 0/1 columns; empty for an
    image with none).

    The images go through the same backbone settings as the run's training
    features (through the cache: a second call extracts nothing), then the head.

    Args:
        run: The run file (or loaded run).
        data: Folder of unlabelled images.
        out: CSV to write.
        sample_submission: A CSV whose id order the output follows (Kaggle's).
        id_column: Id column name in the output and the sample.
        score_column: Score (or label) column name; default the training CSV's label
            column (``labels`` for multi-label 0/1 columns).
        write: ``"proba"`` (probabilities) or ``"label"`` (predicted labels).
        cache_dir: Cache folder; default the folder holding the training cache.
        device: Extraction device.
        quiet: No progress bar.

    Returns:
        The submission written (its ``scores`` are the probabilities either way).

    Raises:
        ConfigError: For runs on dataset-normalised features (their statistics
            belong to the training set), runs without a cache path, or an unknown
            ``write``.
        DataError: If the sample submission's ids differ from the folder's.
    """
    if write not in WRITE_KINDS:
        raise ConfigError(f"--write {write!r}: use one of {', '.join(WRITE_KINDS)}")
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
    scores = np.asarray(scores)
    source = sources[0].attrs.get("source", {})
    task = run.predictions.task
    names = [str(c) for c in run.info.get("class_names", [])]
    label_column = source.get("label_column")
    column = score_column or (label_column if isinstance(label_column, str) else None)
    if write == "label":
        separator = source.get("label_separator") or " "
        values = predicted_labels(scores, task, names, run.predictions.positive_index, separator)
        out = write_labels(out, id_column, column or "labels", ids, values)
    elif task == BINARY:
        out = write_submission(out, id_column, [column or "score"], ids, scores)
    else:  # one probability column per class (or label)
        out = write_submission(out, id_column, names, ids, scores)
    return Submission(out, ids, scores)


def predicted_labels(
    scores: np.ndarray, task: str, class_names: list[str], positive_index: int, separator: str
) -> list[str]:
    """The predicted label of each row, as ``predict_folder(write="label")`` writes it.

    Args:
        scores: ``[N]`` P(positive class) (binary) or ``[N, K]`` probabilities.
        task: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        class_names: Class (label) names in index order.
        positive_index: Binary: the class ``scores`` is the probability of.
        separator: Multi-label: what joins the labels of a row.

    Returns:
        One string per row: a class name, or the labels at or above 0.5 joined.
    """
    if task == MULTILABEL:
        on = scores >= DECISION_THRESHOLD
        return [separator.join(n for n, o in zip(class_names, row, strict=True) if o) for row in on]
    if task == MULTICLASS:
        return [class_names[int(k)] for k in np.argmax(scores, axis=1)]
    other = 1 - positive_index
    return [class_names[positive_index if p >= 0.5 else other] for p in scores]


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
    rows = scores.reshape(len(ids), -1)
    if rows.shape[1] != len(columns):
        raise ValueError(f"{rows.shape[1]} score columns for column names {columns}")
    values = [[f"{float(v):.6f}" for v in row] for row in rows]
    return _write_rows(out, [id_column, *columns], ids, values)


def write_labels(
    out: str | Path, id_column: str, column: str, ids: list[str], labels: list[str]
) -> Path:
    """Write ``id,<label column>`` rows of predicted labels (see :func:`predicted_labels`)."""
    return _write_rows(out, [id_column, column], ids, [[v] for v in labels])


def _write_rows(out: str | Path, header: list[str], ids: list[str], rows: list[list[str]]) -> Path:
    """Write a header and one ``id, values...`` row per id (the folder is made)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for i, row in zip(ids, rows, strict=True):
            writer.writerow([i, *row])
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
