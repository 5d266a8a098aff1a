"""The registry of frozen feature extractors.

Every torchvision classification model is reachable by its torchvision name
(``resnet50``, ``efficientnet_b0``, ``convnext_tiny``, ...) through
``torchvision.models.list_models``; extra entries (``efficientnet_lite0``) add
models torchvision does not ship. Each entry builds a model whose classifier is
replaced by the identity, so its output is the pooled embedding.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import torch
import torchvision
from torch import nn
from torchvision.models import get_model_builder, get_model_weights, list_models

from cactus_features.backbones.lite0 import build_lite0_architecture
from cactus_features.errors import ConfigError

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
    """

    name: str
    dim: int
    default_resolution: int
    min_resolution: int
    fixed_resolution: bool
    weights: tuple[str, ...]
    source: str


# Models torchvision does not ship, by name: a builder of the untrained architecture.
_EXTRA: dict[str, Callable[[], nn.Module]] = {"efficientnet_lite0": build_lite0_architecture}
_EXTRA_WEIGHTS: dict[str, tuple[str, ...]] = {"efficientnet_lite0": ("DEFAULT", "IMAGENET1K")}


def available_backbones() -> list[str]:
    """All registry names, sorted: torchvision's classification models plus extras."""
    return sorted(set(list_models(module=torchvision.models)) | set(_EXTRA))


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


def build_architecture(name: str) -> nn.Module:
    """Build the untrained architecture of a registry entry (classifier still attached)."""
    name = check_backbone_name(name)
    if name in _EXTRA:
        return _EXTRA[name]()
    return get_model_builder(name)(weights=None)


def strip_classifier(model: nn.Module) -> nn.Module:
    """Replace the final classification layer with the identity, in place.

    The last ``nn.Linear`` of the model is the classifier in every torchvision
    classification model except SqueezeNet, whose 1x1-conv classifier is
    replaced by global average pooling.

    Returns:
        The same model, now returning pooled embeddings.
    """
    if isinstance(model, torchvision.models.SqueezeNet):
        model.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        return model
    if isinstance(model, torchvision.models.GoogLeNet | torchvision.models.Inception3):
        model.aux_logits = False
        for aux in ("aux1", "aux2", "AuxLogits"):
            if hasattr(model, aux):
                setattr(model, aux, None)
    last_name = None
    for module_name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last_name = module_name
    if last_name is None:
        raise ConfigError(f"{type(model).__name__}: found no classifier layer to remove")
    parent_name, _, child_name = last_name.rpartition(".")
    last_parent = model.get_submodule(parent_name)
    setattr(last_parent, child_name, nn.Identity())
    return model


def embedding_dim(model: nn.Module) -> int:
    """Dimension of the pooled features: the input width of the final classifier."""
    if isinstance(model, torchvision.models.SqueezeNet):
        return int(model.classifier[1].in_channels)
    last = None
    for module in model.modules():
        if isinstance(module, nn.Linear):
            last = module
    if last is None:
        raise ConfigError(f"{type(model).__name__}: found no classifier layer")
    return int(last.in_features)


def build_on_meta(name: str) -> nn.Module:
    """Build the architecture without allocating weights (``meta`` device).

    A few builders compute values from tensors while initialising; those are
    built on the CPU instead.
    """
    try:
        with torch.device("meta"):
            return build_architecture(name)
    except NotImplementedError:
        return build_architecture(name)


@cache
def get_spec(name: str) -> BackboneSpec:
    """Describe a registry entry (dimension, resolutions, weights) without real weights.

    The model is instantiated on the ``meta`` device, which costs no memory.
    """
    name = check_backbone_name(name)
    model = build_on_meta(name)
    dim = embedding_dim(model)
    if name in _EXTRA:
        return BackboneSpec(name, dim, 224, 32, False, _EXTRA_WEIGHTS[name], "cactus-features")
    enum = get_model_weights(name)
    default = enum.DEFAULT
    keywords = getattr(default.transforms, "keywords", {})
    crop = int(keywords.get("crop_size", 224))
    min_size = default.meta.get("min_size", (32, 32))
    fixed = isinstance(getattr(model, "image_size", None), int)
    if fixed:
        crop = int(model.image_size)
    names = ("DEFAULT", *[w for w in enum.__members__ if w != "DEFAULT"])
    return BackboneSpec(name, dim, crop, int(min(min_size)), fixed, names, "torchvision")
