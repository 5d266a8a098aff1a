"""Which runs can be compared, and how their test predictions line up.

Runs are compared only on the same test images with the same labels and the
same class definitions; :func:`align_test` aligns their scores by image id and
refuses anything else with a :class:`RunMismatchError` that says what differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cactus_features.errors import DataError, UserError
from cactus_features.metrics.core import binary_targets, check_scores, class_pair
from cactus_features.metrics.multiclass import check_class_scores
from cactus_features.runfile import RunFile
from cactus_features.store.features import split_code


class RunMismatchError(UserError):
    """The runs cannot be compared: different test images, labels or class definitions."""


def is_random_init(info: dict[str, Any]) -> bool:
    """Whether a run's ``weights_label`` says the backbone was randomly initialised."""
    label = info.get("weights_label")
    return isinstance(label, str) and label.strip().lower().startswith("random")


def display_label(run: RunFile) -> str:
    """The backbone name, marked ``(random init)`` for randomly initialised backbones."""
    return f"{run.name} (random init)" if is_random_init(run.info) else run.name


def describe_run(run: RunFile) -> str:
    """``'name' (path)``, for messages about one run."""
    return f"'{run.name}' ({run.path})" if run.path else f"'{run.name}'"


def common_classes(runs: list[RunFile]) -> tuple[list[str], int]:
    """The class names and positive class all runs share.

    Raises:
        RunMismatchError: If two runs differ in either.
    """
    first = runs[0]
    names = list(first.info.get("class_names") or [])
    pos = int(first.info.get("positive_class", 1))
    for run in runs[1:]:
        other_names = list(run.info.get("class_names") or [])
        other_pos = int(run.info.get("positive_class", 1))
        if other_names != names or other_pos != pos:
            raise RunMismatchError(
                f"cannot compare {describe_run(first)} with {describe_run(run)}: different classes "
                f"({names}, positive {pos} vs {other_names}, positive {other_pos}); "
                "compare runs trained on the same labels with the same positive class"
            )
    return names, pos


def align_test(
    runs: list[RunFile], positive_class: int
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Align every run's test predictions to the first run's test ids.

    Returns:
        The test ids, whether each is positive, and each run's scores in that order.

    Raises:
        DataError: If a run has no or duplicated test predictions, bad scores, or the
            test split has only one class.
        RunMismatchError: If the runs' test ids or labels differ.
    """
    tests = [r.predictions.select("test") for r in runs]
    for t in tests:
        check_scores(t.score)
    order = align_rows(runs, [t.ids for t in tests], [t.label for t in tests])
    ref = tests[0]
    scores = [ref.score.astype(np.float64)]
    for t, idx in zip(tests[1:], order[1:], strict=True):
        score = np.empty(len(idx), dtype=np.float64)
        score[idx] = t.score
        scores.append(score)
    is_pos = binary_targets(ref.label, positive_class)
    if is_pos.all() or not is_pos.any():
        raise DataError(
            f"the test split has only one class ({int(is_pos.sum())} positives of {len(is_pos)}); "
            "ROC AUC and most metrics are undefined"
        )
    return ref.ids, is_pos, scores


def with_probe(labels: list[str], runs: list[RunFile]) -> list[str]:
    """Labels shared by runs of different probes (``linear``, ``mlp``, ``knn``) get the
    probe appended, e.g. ``lite0@64 [knn]`` beside ``lite0@64 [linear]``."""
    probes: dict[str, set[str]] = {}
    for lab, run in zip(labels, runs, strict=True):
        probes.setdefault(lab, set()).add(str(run.config.get("head", "")))
    return [
        f"{lab} [{run.config.get('head', '')}]" if len(probes[lab]) > 1 else lab
        for lab, run in zip(labels, runs, strict=True)
    ]


def align_rows(
    runs: list[RunFile], ids: list[np.ndarray], labels: list[np.ndarray]
) -> list[np.ndarray]:
    """Where each run's test rows go in the first run's order (checking ids and labels).

    Args:
        runs: The runs (for messages).
        ids: Each run's test ids ``[N]``.
        labels: Each run's test labels ``[N]`` or ``[N, L]``.

    Returns:
        For each run, the position of each of its rows in the first run's order
        (the identity for the first run): ``aligned[idx] = rows``.

    Raises:
        DataError: If a run has no or duplicated test ids.
        RunMismatchError: If the test ids or labels differ from the first run's.
    """
    for run, run_ids in zip(runs, ids, strict=True):
        if len(run_ids) == 0:
            raise DataError(f"{describe_run(run)}: the run file has no test predictions")
        n_unique = len(set(run_ids.tolist()))
        if n_unique != len(run_ids):
            raise DataError(
                f"{describe_run(run)}: {len(run_ids) - n_unique} test ids occur more than once; "
                "the run file is damaged"
            )
    ref_run, ref_ids, ref_label = runs[0], ids[0], np.asarray(labels[0])
    position = {id_: k for k, id_ in enumerate(ref_ids.tolist())}
    out = [np.arange(len(ref_ids), dtype=np.intp)]
    for run, run_ids, run_label in zip(runs[1:], ids[1:], labels[1:], strict=True):
        id_list = run_ids.tolist()
        only_other = sum(1 for i in id_list if i not in position)
        only_ref = len(position) - (len(id_list) - only_other)
        if only_other or only_ref:
            raise RunMismatchError(
                f"cannot compare {describe_run(ref_run)} with {describe_run(run)}: "
                "their test sets differ "
                f"({only_ref} test ids only in the first, {only_other} only in the second, "
                f"of {len(ref_ids)} and {len(id_list)}); compare runs made from the same feature "
                "split so every backbone is scored on the same test images"
            )
        idx = np.fromiter((position[i] for i in id_list), dtype=np.intp, count=len(id_list))
        label = np.empty_like(ref_label)
        label[idx] = run_label
        n_diff = int(np.sum(np.any((label != ref_label).reshape(len(idx), -1), axis=1)))
        if n_diff:
            raise RunMismatchError(
                f"cannot compare {describe_run(ref_run)} with {describe_run(run)}: "
                f"{n_diff} test images have different labels in the two runs; "
                "compare runs made from the same labelled data"
            )
        out.append(idx)
    return out


def unique_labels(runs: list[RunFile]) -> list[str]:
    """Display labels, told apart by the probe kind, then by the file stem (or position),
    where two coincide."""
    labels = with_probe([display_label(r) for r in runs], runs)
    counts: dict[str, int] = {}
    for lab in labels:
        counts[lab] = counts.get(lab, 0) + 1
    out = []
    for k, (lab, run) in enumerate(zip(labels, runs, strict=True)):
        if counts[lab] > 1:
            lab = f"{lab} [{run.path.stem if run.path else f'run {k + 1}'}]"
        out.append(lab)
    if len(set(out)) != len(out):  # same label and same file stem: fall back to positions
        out = [
            f"{lab} [run {k + 1}]" if counts[labels[k]] > 1 else lab for k, lab in enumerate(labels)
        ]
    return out


TASKS: tuple[str, ...] = ("binary", "multiclass", "multilabel")
"""The task kinds a run can record."""


@dataclass(frozen=True)
class TaskScores:
    """One split of a run's predictions in the K-class form every task shares.

    Attributes:
        task: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        ids: Image ids ``[N]``.
        y: True class index ``[N]`` (binary, multiclass) or 0/1 targets ``[N, L]``
            (multilabel).
        proba: Probabilities ``[N, K]``: of each class (rows sum to 1) or, for
            multilabel, of each label independently.
        class_names: Name of each column of ``proba``.
    """

    task: str
    ids: np.ndarray
    y: np.ndarray
    proba: np.ndarray
    class_names: list[str]


def run_task(run: RunFile) -> str:
    """The task kind a run records (format 1 files are binary).

    Read from its predictions' ``task`` (run file format 2) or its ``info["task"]``;
    a run recording neither is binary.

    Raises:
        DataError: If the recorded task is not one of :data:`TASKS`.
    """
    recorded = getattr(run.predictions, "task", None)
    task = (recorded if recorded not in (None, "binary") else None) or run.info.get("task")
    task = task or "binary"
    if task not in TASKS:
        raise DataError(
            f"{describe_run(run)}: unknown task {task!r}; expected one of {', '.join(TASKS)}"
        )
    return str(task)


def common_task(runs: list[RunFile]) -> str:
    """The task all runs share.

    Raises:
        RunMismatchError: If two runs record different tasks.
    """
    task = run_task(runs[0])
    for run in runs[1:]:
        other = run_task(run)
        if other != task:
            raise RunMismatchError(
                f"cannot compare {describe_run(runs[0])} ({task}) with {describe_run(run)} "
                f"({other}): compare runs of the same task"
            )
    return task


def task_and_scores(run: RunFile, split: str = "test") -> TaskScores:
    """A run's predictions on one split as labels and an ``[N, K]`` probability matrix.

    The one adapter between run files and the K-class metrics. Today's (format 1)
    binary run gives ``P = [1 - s, s]`` with column 1 the positive class and ``y``
    1 for positives. From run file format 2 it expects:

    * ``task`` (attribute or ``info["task"]``): ``"multiclass"`` or ``"multilabel"``;
    * ``info["class_names"]``: one name per column of the probabilities;
    * ``predictions.task`` (or ``info["task"]``) and ``info["class_names"]``;
    * ``predictions.proba``: float ``[N, K]`` probabilities (softmax rows for
      multiclass, one sigmoid per label for multilabel), rows aligned with
      ``predictions.ids`` / ``split`` (run file format 2 stores them as ``score``);
    * ``predictions.label``: int ``[N]`` true class (multiclass), or 0/1 ``[N, L]``
      (multilabel).

    Args:
        run: The run.
        split: ``"train"``, ``"val"`` or ``"test"``.

    Returns:
        The task, ids, targets, probabilities and class names of that split.

    Raises:
        DataError: If a K-class run lacks its probabilities or targets, or they are
            not valid probabilities / labels for its class names.
    """
    task = run_task(run)
    preds = run.predictions
    mask = np.asarray(preds.split) == split_code(split)
    where = describe_run(run)
    if task == "binary":
        positive_class = int(run.info.get("positive_class", 1))
        score = np.asarray(preds.score, dtype=np.float64)[mask]
        check_scores(score)
        return TaskScores(
            task,
            np.asarray(preds.ids)[mask],
            binary_targets(np.asarray(preds.label)[mask], positive_class).astype(np.int64),
            np.stack([1.0 - score, score], axis=1),
            list(class_pair(run.info.get("class_names"), positive_class)),
        )
    names = [str(n) for n in (run.info.get("class_names") or [])]
    proba = np.asarray(preds.proba)
    if proba.ndim != 2:
        raise DataError(
            f"{where}: a {task} run needs class probabilities [N, K] (run file format 2); "
            "retrain the head with this version of cactus-features"
        )
    y = np.asarray(preds.label)
    if (y.ndim == 2) != (task == "multilabel"):
        raise DataError(
            f"{where}: a {task} run needs labels "
            f"{'[N, L] (0/1)' if task == 'multilabel' else '[N] (class indices)'}, "
            f"not {y.shape}; retrain the head with this version of cactus-features"
        )
    y = y[mask].astype(np.int64)
    proba = np.asarray(proba, dtype=np.float64)[mask]
    check_class_scores(y, proba, len(names), where=where, multilabel=task == "multilabel")
    return TaskScores(task, np.asarray(preds.ids)[mask], y, proba, names)
