"""Fail early: refuse, before any extraction, a task that no requested head can train."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from cactus_features.data.classes import MULTICLASS, MULTILABEL
from cactus_features.errors import ConfigError
from cactus_features.heads.config import HeadConfig
from cactus_features.heads.nn.models import check_takes_classes
from cactus_features.heads.prepare.multilabel import supported_text, takes_labels


def check_heads_support(
    task: str, class_names: Sequence[str], heads: Sequence[dict[str, Any]]
) -> None:
    """Raise when the heads of a study cannot train on the dataset's task.

    The multi-class check asks :func:`~cactus_features.heads.nn.models.check_takes_classes`
    of each head (linear and MLP heads with the tuned or report protocol, and the kNN probe,
    take K classes); the multi-label check asks
    :func:`~cactus_features.heads.prepare.multilabel.takes_labels` (its table
    :data:`~cactus_features.heads.prepare.multilabel.MULTILABEL_HEADS` is the one place that
    says which heads and solvers take several labels).

    Args:
        task: The dataset's task kind (``binary``, ``multiclass``, ``multilabel``).
        class_names: Its class (or label) names.
        heads: The study's head configurations (``{"head": "linear", ...}``).

    Raises:
        ConfigError: One line naming the task, the heads and what they take.
    """
    names = ", ".join(map(str, class_names[:5])) + (", ..." if len(class_names) > 5 else "")
    if task == MULTILABEL:
        refused = _refused(heads, _takes_labels)
        if refused:
            raise ConfigError(
                f"multilabel task ({len(class_names)} labels: {names}): heads "
                f"{refused} take one label per image only so far (multi-label: "
                f"{supported_text()}); nothing was extracted: drop those heads, use one label "
                "column, or run `cactus-features extract` alone"
            )
    if task == MULTICLASS:
        refused = _refused(heads, lambda c: _takes_classes(c, len(class_names)))
        if refused:
            raise ConfigError(
                f"multiclass task ({len(class_names)} classes: {names}): heads "
                f"{refused} take binary tasks only so far (linear and mlp heads with "
                "the tuned or report preset, and knn, take K classes); nothing was extracted: "
                "drop those heads, merge the classes into two, or run `cactus-features extract` "
                "alone"
            )


def _refused(heads: Sequence[dict[str, Any]], takes: Callable[[HeadConfig], bool]) -> str:
    """The refused heads as ``"linear (solver lbfgs), ..."`` (empty when none is)."""
    configs = [HeadConfig.create(**h) for h in heads]
    names = sorted({f"{c.head} (solver {c.solver})" for c in configs if not takes(c)})
    return ", ".join(names)


def _takes_labels(config: HeadConfig) -> bool:
    """Whether a head configuration trains on multi-label data."""
    return takes_labels(config.head, config.solver)


def _takes_classes(config: HeadConfig, n_classes: int) -> bool:
    """Whether a head configuration trains on ``n_classes`` classes."""
    try:
        check_takes_classes(config.head, config.solver, n_classes)
    except ConfigError:
        return False
    return True
