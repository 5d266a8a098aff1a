"""The library's warnings: their categories, how they are raised, the collapse advice.

Every warning cactus-features gives is a :class:`CactusFeaturesWarning` raised
once per event with :func:`warn`, a real :func:`warnings.warn` attributed to the
caller's code (the first frame outside this package), never also a log line.
The command line shows each as one ``warning: ...`` line on stderr
(:mod:`cactus_features.cli.display`), with or without ``--quiet``.

Python's default filter shows a warning once per calling line and message; use
``warnings.simplefilter("always", CactusFeaturesWarning)`` to see every repeat.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_PACKAGE_DIR = str(Path(__file__).resolve().parent)

RANDOM_WEIGHTS = "random init"
"""The weights label of a randomly initialised backbone in cache keys."""


class CactusFeaturesWarning(UserWarning):
    """Base class of every warning cactus-features emits."""


class CollapsedFeaturesWarning(CactusFeaturesWarning):
    """The features are (almost) constant: a head on them will be at chance."""


class ConvergenceWarning(CactusFeaturesWarning):
    """A head's fit did not converge, its choice sits at the edge of the grid, or its
    selected epoch is the last one."""


def warn(message: str, category: type[CactusFeaturesWarning] = CactusFeaturesWarning) -> None:
    """Raise one warning, attributed to the first calling frame outside the package.

    Args:
        message: One line (no trailing period needed).
        category: A :class:`CactusFeaturesWarning` subclass.
    """
    warnings.warn(message, category, stacklevel=_outside_level())


def _outside_level() -> int:
    """The ``stacklevel`` of the first frame (above :func:`warn`) outside this package."""
    frame = sys._getframe(2)  # the caller of warn()
    level = 2
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    return level


def collapse_cause(key: Mapping[str, Any]) -> str:
    """The likely cause of collapsed features, from the entry's cache key, and what to do.

    Args:
        key: The cache key (``weights``, ``resolution``, ``backbone``).
    """
    if key.get("weights") == RANDOM_WEIGHTS:
        return (
            "likely cause: random weights (--weights none); a randomly initialised "
            "EfficientNet collapses at any resolution, use pretrained weights "
            "(--weights DEFAULT)"
        )
    return (
        f"likely cause: low resolution ({key.get('resolution')} px); extract at a higher "
        "--resolution (e.g. 128, or leave it out for the backbone's pretrained one)"
    )


def collapse_message(name: str, health: Mapping[str, Any], key: Mapping[str, Any]) -> str:
    """One line saying the features are collapsed, how badly, and the likely cause.

    Built from the stored numbers (not the stored text), so cache files written by
    older versions get the same advice.

    Args:
        name: What is collapsed, e.g. ``efficientnet_lite0@32`` or ``... (cache hit)``.
        health: The entry's ``health`` attributes.
        key: The entry's cache key.
    """
    return (
        f"{name}: COLLAPSED FEATURES: {health.get('constant_share', 1.0):.0%} of dimensions "
        f"are constant, {health.get('zero_share', 1.0):.0%} of values are zero (mean |x| "
        f"{health.get('mean_abs', 0.0):.2g}); a head trained on them will be at chance; "
        f"{collapse_cause(key)}"
    )


def is_collapsed(attrs: Mapping[str, Any]) -> bool:
    """Whether a cache entry's attributes record collapsed features."""
    return bool(attrs.get("health", {}).get("collapsed"))


def warn_if_collapsed(
    name: str, attrs: Mapping[str, Any], key: Mapping[str, Any], *, what: str = ""
) -> bool:
    """Raise a :class:`CollapsedFeaturesWarning` when ``attrs`` record collapsed features.

    Args:
        name: The entry's readable name.
        attrs: Its attributes (``health``).
        key: Its cache key.
        what: Added after the name, e.g. ``" (cache hit)"``.

    Returns:
        Whether it warned.
    """
    if not is_collapsed(attrs):
        return False
    warn(collapse_message(name + what, attrs["health"], key), CollapsedFeaturesWarning)
    return True
