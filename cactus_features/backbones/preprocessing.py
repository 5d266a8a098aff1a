"""The pre-processing a frozen backbone applies, as a value that goes into cache keys.

:class:`~cactus_features.backbones.frozen.FrozenBackbone` turns ``uint8`` images
into model inputs in one fixed way: scale to 0-1, resize the whole image to
``R x R`` (the aspect ratio is not kept, nothing is cropped) with the backbone's
interpolation, antialiased when a side shrinks, and normalise with a mean and
std. :class:`Preprocessing` records exactly that, numbers included, so that a
change of any of it is a different cache entry; :data:`PREPROCESSING_VERSION`
names the code that applies it and is raised whenever that code changes what
it computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cactus_features.errors import ConfigError

PREPROCESSING_VERSION = 2
"""Version of the pre-processing code. 1: before it was recorded in cache keys (Lite
models normalised with ImageNet statistics); 2: recorded, Lite on ``(x - 127) / 128``."""

RESIZE_POLICY = "stretch"
"""The whole image is resized to ``R x R``: no crop, the aspect ratio is not kept."""
ANTIALIAS_POLICY = "shrink"
"""Antialiasing is on when a side shrinks and off when it grows (``F.interpolate``)."""
TRAIN_SPLIT_STATS = "train-split"
"""The mean/std recorded for ``dataset`` normalisation: the training split's own
statistics, which the dataset fingerprint and the split in the same key determine."""
NORMALIZATIONS = ("weights", "dataset", "none")

Stats = tuple[float, float, float]


@dataclass(frozen=True)
class Preprocessing:
    """What is applied to ``uint8`` images before the model.

    Attributes:
        mean: Normalisation mean (RGB, 0-1 scale), or :data:`TRAIN_SPLIT_STATS`.
        std: Normalisation std, like ``mean``.
        interpolation: Resize mode (``torch.nn.functional.interpolate``).
        antialias: When antialiasing is on (:data:`ANTIALIAS_POLICY`).
        resize: How the image becomes square (:data:`RESIZE_POLICY`).
        version: :data:`PREPROCESSING_VERSION` of the code that applies it.
    """

    mean: Stats | str
    std: Stats | str
    interpolation: str
    antialias: str = ANTIALIAS_POLICY
    resize: str = RESIZE_POLICY
    version: int = PREPROCESSING_VERSION

    def as_key(self) -> dict[str, Any]:
        """The JSON-ready form stored in a cache key."""

        def numbers(value: Stats | str) -> list[float] | str:
            return value if isinstance(value, str) else [float(v) for v in value]

        return {
            "version": self.version,
            "mean": numbers(self.mean),
            "std": numbers(self.std),
            "interpolation": self.interpolation,
            "antialias": self.antialias,
            "resize": self.resize,
        }


def choose_normalization(
    normalization: str, weights_stats: tuple[Stats, Stats], dataset_stats: tuple | None
) -> tuple[Stats, Stats] | tuple[str, str]:
    """The ``(mean, std)`` a normalisation mode applies.

    Args:
        normalization: ``weights`` (the weights' own statistics), ``dataset`` (the
            training split's) or ``none``.
        weights_stats: ``(mean, std)`` that belong to the backbone's weights.
        dataset_stats: ``(mean, std)`` of the training split; ``None`` before they are
            known (a cache key then records :data:`TRAIN_SPLIT_STATS`).

    Raises:
        ConfigError: For an unknown mode.
    """
    if normalization == "weights":
        mean, std = weights_stats
    elif normalization == "dataset":
        if dataset_stats is None:
            return TRAIN_SPLIT_STATS, TRAIN_SPLIT_STATS
        mean, std = dataset_stats
    elif normalization == "none":
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    else:
        raise ConfigError(
            f"--normalization {normalization!r}: use {', '.join(NORMALIZATIONS[:-1])} "
            f"or {NORMALIZATIONS[-1]}"
        )
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def stale_reason(key: dict[str, Any]) -> str | None:
    """Why a cache entry's pre-processing is not what this library applies, or ``None``.

    Args:
        key: The entry's cache key, as recorded in its file.
    """
    recorded = key.get("preprocessing")
    if not isinstance(recorded, dict):
        return (
            "stale: written without recorded preprocessing (before preprocessing version "
            f"{PREPROCESSING_VERSION}); it is never served again, extract again"
        )
    version = recorded.get("version")
    if version == PREPROCESSING_VERSION:
        return None
    if isinstance(version, int) and version > PREPROCESSING_VERSION:
        return (
            f"written with preprocessing version {version}, newer than this library's "
            f"({PREPROCESSING_VERSION}); upgrade cactus-features to use it"
        )
    return (
        f"stale: written with preprocessing version {version} (this library applies "
        f"version {PREPROCESSING_VERSION}); it is never served again, extract again"
    )
