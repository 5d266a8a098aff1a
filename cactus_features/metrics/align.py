"""Which runs can be compared, and how their test predictions line up.

Runs are compared only on the same test images with the same labels and the
same class definitions; :func:`align_test` aligns their scores by image id and
refuses anything else with a :class:`RunMismatchError` that says what differs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cactus_features.errors import DataError, UserError
from cactus_features.metrics.core import binary_targets, check_scores
from cactus_features.runfile import RunFile


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
    for run, t in zip(runs, tests, strict=True):
        if len(t.ids) == 0:
            raise DataError(f"{describe_run(run)}: the run file has no test predictions")
        n_unique = len(set(t.ids.tolist()))
        if n_unique != len(t.ids):
            raise DataError(
                f"{describe_run(run)}: {len(t.ids) - n_unique} test ids occur more than once; "
                "the run file is damaged"
            )
        check_scores(t.score)
    ref_run, ref = runs[0], tests[0]
    position = {id_: k for k, id_ in enumerate(ref.ids.tolist())}
    scores = [ref.score.astype(np.float64)]
    for run, t in zip(runs[1:], tests[1:], strict=True):
        ids = t.ids.tolist()
        only_other = sum(1 for i in ids if i not in position)
        only_ref = len(position) - (len(ids) - only_other)
        if only_other or only_ref:
            raise RunMismatchError(
                f"cannot compare {describe_run(ref_run)} with {describe_run(run)}: "
                "their test sets differ "
                f"({only_ref} test ids only in the first, {only_other} only in the second, "
                f"of {len(ref.ids)} and {len(ids)}); compare runs made from the same feature "
                "split so every backbone is scored on the same test images"
            )
        idx = np.fromiter((position[i] for i in ids), dtype=np.intp, count=len(ids))
        label = np.empty_like(ref.label)
        label[idx] = t.label
        n_diff = int(np.sum(label != ref.label))
        if n_diff:
            raise RunMismatchError(
                f"cannot compare {describe_run(ref_run)} with {describe_run(run)}: "
                f"{n_diff} test images have different labels in the two runs; "
                "compare runs made from the same labelled data"
            )
        score = np.empty(len(ids), dtype=np.float64)
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
