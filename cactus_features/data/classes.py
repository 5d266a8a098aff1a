"""What kind of classification task a labelling is, and which class a binary task calls positive."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

import numpy as np

from cactus_features.errors import ConfigError

BINARY = "binary"
MULTICLASS = "multiclass"
MULTILABEL = "multilabel"
UNLABELLED_TASK = "unlabelled"
TASKS = (BINARY, MULTICLASS, MULTILABEL)
"""The task kinds of labelled data: one of two classes, one of K > 2, any subset of L labels."""

POSITIVE_WORDS = frozenset({"1", "true", "yes"})
"""Class names (case-insensitive) that mean "the positive class" on their own."""
_NEGATED = re.compile(r"^(?:no|not|non)[_\- ](.+)$", re.IGNORECASE)


def sorted_class_names(distinct: Iterable[str]) -> list[str]:
    """Class names in index order: sorted, numerically when every name is a number (2 < 10)."""
    names = sorted(set(distinct))
    try:
        numbers = [float(s) for s in names]
    except ValueError:
        return names
    # NaN has no order, so a "nan" label sorts as text.
    if any(math.isnan(x) for x in numbers):
        return names
    return [s for _, s in sorted(zip(numbers, names, strict=True))]


def task_kind(class_names: Sequence[str], label_matrix: np.ndarray | None = None) -> str:
    """The task kind of a labelling.

    Args:
        class_names: Class names (the label names, for multi-label data).
        label_matrix: The ``[N, L]`` 0/1 label matrix of multi-label data, else ``None``.

    Returns:
        ``"multilabel"`` when there is a label matrix, ``"unlabelled"`` with no class
        names, ``"binary"`` for two classes, ``"multiclass"`` for more.
    """
    if label_matrix is not None:
        return MULTILABEL
    if not class_names:
        return UNLABELLED_TASK
    return MULTICLASS if len(class_names) > 2 else BINARY


def positive_class_index(class_names: Sequence[str], requested: str | None = None) -> int:
    """The index of the positive class of a binary task.

    The rule, first match wins:

    1. ``requested`` (``--positive-class NAME``): the class of that name (exact, else
       the one class equal to it ignoring case);
    2. the one class named ``1``, ``true`` or ``yes`` (any case);
    3. for classes ``X`` and ``no_X`` / ``not_X`` / ``non_X`` (``_``, ``-`` or a space
       after the prefix, any case), the class ``X``;
    4. otherwise the second class (index 1), so ``0``/``1`` labels keep ``1``.

    Args:
        class_names: The two class names in index order.
        requested: The class the user named, or ``None``.

    Returns:
        ``0`` or ``1``.

    Raises:
        ConfigError: If there are not exactly two classes, or ``requested`` names none
            of them.
    """
    names = [str(c) for c in class_names]
    if len(names) != 2:
        raise ConfigError(
            f"a positive class needs a binary task; got {len(names)} classes "
            f"({', '.join(map(repr, names))})"
        )
    if requested is not None:
        want = str(requested).strip()
        if want in names:
            return names.index(want)
        folded = [n for n, c in enumerate(names) if c.casefold() == want.casefold()]
        if len(folded) == 1:
            return folded[0]
        raise ConfigError(
            f"--positive-class {requested!r}: not a class; choose {names[0]!r} or {names[1]!r}"
        )
    words = [n for n, c in enumerate(names) if c.strip().casefold() in POSITIVE_WORDS]
    if len(words) == 1:
        return words[0]
    for n, c in enumerate(names):
        match = _NEGATED.match(c.strip())
        if match and match.group(1).casefold() == names[1 - n].strip().casefold():
            return 1 - n
    return 1
