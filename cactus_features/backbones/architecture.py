"""Generic surgery on built classification models: classifier removal, embedding width.

These work on every torchvision-style classification model, whichever source
built it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from cactus_features.errors import ConfigError


def strip_classifier(model: nn.Module) -> nn.Module:
    """Replace the final classification layer with the identity, in place.

    The last ``nn.Linear`` of the model is the classifier in every torchvision
    classification model except SqueezeNet, whose 1x1-conv classifier is
    replaced by global average pooling.

    Returns:
        The same model, now returning pooled embeddings.
    """
    from torchvision import models

    if isinstance(model, models.SqueezeNet):
        model.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        return model
    if isinstance(model, models.GoogLeNet | models.Inception3):
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
    from torchvision import models

    if isinstance(model, models.SqueezeNet):
        return int(model.classifier[1].in_channels)
    last = None
    for module in model.modules():
        if isinstance(module, nn.Linear):
            last = module
    if last is None:
        raise ConfigError(f"{type(model).__name__}: found no classifier layer")
    return int(last.in_features)


def build_meta(build: Callable[[], nn.Module]) -> nn.Module:
    """Call ``build`` without allocating weights (``meta`` device).

    A few builders compute values from tensors while initialising; those are
    built on the CPU instead.
    """
    try:
        with torch.device("meta"):
            return build()
    except NotImplementedError:
        return build()
