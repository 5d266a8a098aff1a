"""The registry of frozen feature extractors: the backbone sources, composed.

Every torchvision classification model is reachable by its torchvision name
(``resnet50``, ``efficientnet_b0``, ``convnext_tiny``, ...); the EfficientNet-Lite
source adds ``efficientnet_lite0``, which torchvision does not ship; the optional
timm source owns every name under its prefix ``timm/``. A name belongs to exactly
one source, which describes, builds and loads it.

A source with a ``prefix`` owns its names by that prefix and lists them only
when asked (:func:`list_backbones`), so importing the registry does not import
it; each source removes its models' classifier its own way (:func:`strip_head`;
the generic way is :class:`~cactus_features.backbones.spec.SourceDefaults`).
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType

from torch import nn

from cactus_features.backbones.architecture import build_meta, embedding_dim, strip_classifier
from cactus_features.backbones.sources.lite import LiteSource
from cactus_features.backbones.sources.timm import TimmSource
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
    "SOURCE_KINDS",
    "BackboneSpec",
    "Listed",
    "available_backbones",
    "build_architecture",
    "build_on_meta",
    "check_backbone_name",
    "compose",
    "embedding_dim",
    "get_spec",
    "list_backbones",
    "preview",
    "source_of",
    "strip_classifier",
    "strip_head",
]

SOURCES: tuple[BackboneSource, ...] = (LiteSource(), TorchvisionSource(), TimmSource())
"""The sources, the cheapest to list first: :func:`source_of` asks them in this order."""
# What ``cactus-features backbones --source`` filters by.
SOURCE_KINDS: Mapping[str, type] = MappingProxyType(
    {"torchvision": TorchvisionSource, "lite": LiteSource, "timm": TimmSource}
)


def _prefix(source: BackboneSource) -> str:
    return source.prefix


def compose(sources: Iterable[BackboneSource]) -> Mapping[str, BackboneSource]:
    """Index the sources by the names they own (prefixed sources are left out).

    Raises:
        ValueError: If two sources claim the same name.
    """
    owner: dict[str, BackboneSource] = {}
    for source in sources:
        if _prefix(source):
            continue
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


def _prefixed(name: str) -> BackboneSource | None:
    """The prefixed source whose prefix ``name`` starts with."""
    return next((s for s in SOURCES if _prefix(s) and name.startswith(_prefix(s))), None)


def available_backbones() -> list[str]:
    """The built-in registry names, sorted: torchvision's models plus the Lite family.

    Names of prefixed sources (``timm/...``) are listed by :func:`list_backbones`.
    """
    return sorted(_index())


def list_backbones(source: str | None = None, pattern: str | None = None) -> list[str]:
    """Registry names of every source (or of one), optionally filtered, sorted.

    Args:
        source: A key of :data:`SOURCE_KINDS` (``torchvision``, ``lite``, ``timm``);
            ``None`` lists all, the optional ones only when installed.
        pattern: An fnmatch pattern on the full name (``resnet*``, ``timm/convnext_*``).

    Raises:
        ConfigError: Unknown source, or ``timm`` asked for and not installed.
    """
    if source is not None and source not in SOURCE_KINDS:
        raise ConfigError(f"--source {source!r}: use {', '.join(SOURCE_KINDS)}")
    names: list[str] = []
    for src in SOURCES:
        if source is not None and not isinstance(src, SOURCE_KINDS[source]):
            continue
        try:
            names.extend(src.names())
        except ConfigError:  # an optional source that is not installed
            if source is not None:
                raise
    if pattern:
        names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
    return sorted(names)


def check_backbone_name(name: str) -> str:
    """Return ``name`` if it is in the registry.

    Raises:
        ConfigError: For an unknown name, suggesting close matches (or, for a
            prefixed name, how to install its source).
    """
    prefixed = _prefixed(name)
    names = list(prefixed.names()) if prefixed is not None else available_backbones()
    if name in names:
        return name
    special = prefixed.unknown_hint(name) if prefixed is not None else None
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = special or (
        f"did you mean {', '.join(close)}?" if close else "see `cactus-features backbones`"
    )
    raise ConfigError(f"unknown backbone {name!r}; {hint}")


def source_of(name: str) -> BackboneSource:
    """The source that owns a registry name.

    The sources are asked in :data:`SOURCES` order, so a Lite name never imports
    torchvision; that each name has one owner is checked whenever the whole
    registry is listed (:func:`available_backbones`).

    Raises:
        ConfigError: For an unknown name.
    """
    prefixed = _prefixed(name)
    if prefixed is not None:
        check_backbone_name(name)
        return prefixed
    for i, source in enumerate(SOURCES):
        if not _prefix(source) and name in _names(i):
            return source
    check_backbone_name(name)  # raises, with suggestions
    raise AssertionError(name)  # pragma: no cover - check_backbone_name raised


@cache
def _names(index: int) -> frozenset[str]:
    """The names of ``SOURCES[index]`` (a source without a prefix)."""
    return frozenset(SOURCES[index].names())


def strip_head(name: str, model: nn.Module) -> nn.Module:
    """Make a built model return pooled features (the source's own way, if it has one)."""
    return source_of(name).strip_classifier(model)


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


@dataclass(frozen=True)
class Listed:
    """One row of the registry listing.

    Attributes:
        name: Registry name.
        dim: Embedding dimension; ``None`` where it was not computed.
        default_resolution: Input side of the pretrained weights.
        weights: Weights names (``DEFAULT`` first).
        offline: Whether the ``DEFAULT`` weights ship with an installed package.
    """

    name: str
    dim: int | None
    default_resolution: int
    weights: tuple[str, ...]
    offline: bool


def preview(name: str, *, dims: bool = True) -> Listed:
    """A listing row; sources with a ``preview`` (timm) skip building unless ``dims``."""
    quick = None if dims else source_of(name).preview(name)
    if quick is None:
        spec = get_spec(name)
        return Listed(name, spec.dim, spec.default_resolution, spec.weights, spec.offline)
    resolution, weights = quick
    return Listed(name, None, resolution, weights, False)
