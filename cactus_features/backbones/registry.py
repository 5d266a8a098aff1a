"""The registry of frozen feature extractors: the backbone sources, composed.

Every torchvision classification model is reachable by its torchvision name
(``resnet50``, ``efficientnet_b0``, ``convnext_tiny``, ...); the EfficientNet-Lite
source adds ``efficientnet_lite0``, which torchvision does not ship. A name
belongs to exactly one source, which describes, builds and loads it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from functools import cache
from types import MappingProxyType

from torch import nn

from cactus_features.backbones.architecture import build_meta, embedding_dim, strip_classifier
from cactus_features.backbones.sources.lite import LiteSource
from cactus_features.backbones.sources.torchvision import TorchvisionSource
from cactus_features.backbones.spec import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    BackboneSource,
    BackboneSpec,
)
from cactus_features.errors import ConfigError

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SOURCES",
    "BackboneSpec",
    "available_backbones",
    "build_architecture",
    "build_on_meta",
    "check_backbone_name",
    "compose",
    "embedding_dim",
    "get_spec",
    "source_of",
    "strip_classifier",
]

SOURCES: tuple[BackboneSource, ...] = (LiteSource(), TorchvisionSource())
"""The sources, the cheapest to list first: :func:`source_of` asks them in this order."""


def compose(sources: Iterable[BackboneSource]) -> Mapping[str, BackboneSource]:
    """Index the sources by the names they own.

    Raises:
        ValueError: If two sources claim the same name.
    """
    owner: dict[str, BackboneSource] = {}
    for source in sources:
        for name in source.names():
            if name in owner:
                raise ValueError(
                    f"backbone {name!r} is claimed by both {type(owner[name]).__name__} "
                    f"and {type(source).__name__}"
                )
            owner[name] = source
    return MappingProxyType(owner)


@cache
def _index() -> Mapping[str, BackboneSource]:
    return compose(SOURCES)


def available_backbones() -> list[str]:
    """All registry names, sorted: torchvision's classification models plus the Lite family."""
    return sorted(_index())


def check_backbone_name(name: str) -> str:
    """Return ``name`` if it is in the registry.

    Raises:
        ConfigError: For an unknown name, suggesting close matches.
    """
    names = available_backbones()
    if name in names:
        return name
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else "see `cactus-features backbones`"
    raise ConfigError(f"unknown backbone {name!r}; {hint}")


def source_of(name: str) -> BackboneSource:
    """The source that owns a registry name.

    The sources are asked in :data:`SOURCES` order, so a Lite name never imports
    torchvision; that each name has one owner is checked whenever the whole
    registry is listed (:func:`available_backbones`).

    Raises:
        ConfigError: For an unknown name.
    """
    for i, source in enumerate(SOURCES):
        if name in _names(i):
            return source
    check_backbone_name(name)  # raises, with suggestions
    raise AssertionError(name)  # pragma: no cover - check_backbone_name raised


@cache
def _names(index: int) -> frozenset[str]:
    """The names of ``SOURCES[index]``."""
    return frozenset(SOURCES[index].names())


def build_architecture(name: str) -> nn.Module:
    """Build the untrained architecture of a registry entry (classifier still attached)."""
    return source_of(name).build(name)


def build_on_meta(name: str) -> nn.Module:
    """Build the architecture without allocating weights (``meta`` device).

    A few builders compute values from tensors while initialising; those are
    built on the CPU instead.
    """
    source = source_of(name)
    return build_meta(lambda: source.build(name))


@cache
def get_spec(name: str) -> BackboneSpec:
    """Describe a registry entry (dimension, resolutions, weights) without real weights.

    The model is instantiated on the ``meta`` device, which costs no memory.
    """
    return source_of(name).spec(name)
