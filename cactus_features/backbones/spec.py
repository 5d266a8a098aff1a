"""What a backbone source tells the registry: specs of backbones and of their weights.

A *source* (torchvision, the EfficientNet-Lite family, ...) owns a set of
registry names. For each name it gives a :class:`BackboneSpec` (embedding
dimension, input sizes, normalisation, interpolation, weights names), resolves
a weights name to a :class:`WeightsSpec` (the identity that goes into cache
keys) and loads weights into the architecture it builds. The registry composes
the sources; nothing outside a source compares backbone names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

from torch import nn

from cactus_features.backbones.architecture import strip_classifier

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BackboneSpec:
    """What the registry knows about one backbone, without building it.

    Attributes:
        name: Registry name.
        dim: Embedding dimension of the pooled features.
        default_resolution: Input side length the pretrained weights were trained at.
        min_resolution: Smallest input side the architecture accepts.
        fixed_resolution: Whether only ``default_resolution`` is accepted (ViT).
        weights: Names of the available pretrained weights (``DEFAULT`` first).
        source: ``"torchvision"`` or ``"cactus-features"``.
        mean: Normalisation mean (RGB, 0-1 scale) when no named weights are loaded
            (random initialisation, a local file); named weights carry their own.
        std: Normalisation std, like ``mean``.
        interpolation: Resize mode of the pre-processing (``torch.nn.functional.interpolate``).
        offline: Whether its ``DEFAULT`` weights ship with an installed package, so
            they work without a download.
    """

    name: str
    dim: int
    default_resolution: int
    min_resolution: int
    fixed_resolution: bool
    weights: tuple[str, ...]
    source: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str
    offline: bool


@dataclass(frozen=True)
class WeightsSpec:
    """One named pretrained weights of a backbone, resolved by its source.

    Attributes:
        label: Canonical weights name (``IMAGENET1K_V2``), as it appears in cache keys.
        sha256: Identity of the weights in cache keys (a full or prefix hash).
        mean: Normalisation mean the weights were trained with.
        std: Normalisation std the weights were trained with.
        offline: Whether the weights ship with an installed package (never downloaded).
    """

    label: str
    sha256: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    offline: bool


class BackboneSource(Protocol):
    """A family of backbones the registry can list, describe, build and load.

    Errors a user can fix are raised as ``WeightsError`` with a message that says
    how; the registry has already checked that ``name`` belongs to the source.
    """

    def names(self) -> tuple[str, ...]:
        """Registry names this source owns."""
        ...

    def build(self, name: str) -> nn.Module:
        """The untrained architecture, classifier still attached."""
        ...

    def spec(self, name: str) -> BackboneSpec:
        """Describe ``name`` without allocating real weights."""
        ...

    prefix: str
    """The name prefix the source owns (``timm/``); empty: it lists its names."""

    def resolve_weights(
        self, name: str, weights: str, *, allow_download: bool = True
    ) -> WeightsSpec:
        """Resolve a weights name (``DEFAULT``, case-insensitive) without loading it
        (a source that needs the file's hash may fetch it, when ``allow_download``)."""
        ...

    def load_weights(self, model: nn.Module, name: str, weights: WeightsSpec) -> None:
        """Load resolved named weights into ``model`` (classifier attached)."""
        ...

    def load_file(self, model: nn.Module, name: str, path: Path) -> str:
        """Load a local state dict (an existing file) into ``model``; returns its SHA-256."""
        ...

    def weights_unavailable(
        self, name: str, weights: WeightsSpec, *, allow_download: bool
    ) -> str | None:
        """Why resolved named weights cannot be had here, or ``None`` when they can."""
        ...

    def strip_classifier(self, model: nn.Module) -> nn.Module:
        """Make a built model return pooled features, in place."""
        ...

    def unknown_hint(self, name: str) -> str | None:
        """A hint for a name under the source's prefix that it does not know."""
        ...

    def preview(self, name: str) -> tuple[int, tuple[str, ...]] | None:
        """Default resolution and weights names without building (``None``: build)."""
        ...


class SourceDefaults:
    """The optional parts of a :class:`BackboneSource`, as most sources have them: no
    prefix, the generic classifier removal, no special hint, describe by building."""

    prefix: ClassVar[str] = ""

    def strip_classifier(self, model: nn.Module) -> nn.Module:
        """The last ``nn.Linear`` becomes the identity (:func:`architecture.strip_classifier`)."""
        return strip_classifier(model)

    def unknown_hint(self, name: str) -> str | None:
        """No hint beyond the close matches."""
        return None

    def preview(self, name: str) -> tuple[int, tuple[str, ...]] | None:
        """``None``: the listing builds the model on the meta device."""
        return None
