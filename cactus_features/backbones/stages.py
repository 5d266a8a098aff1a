"""Which layer the embedding is pooled from: the last stage (default), an earlier one, or several.

A *stage* is one child of a model's ``features`` sequence (EfficientNet, the Lite
family, MobileNet, ConvNeXt, VGG, DenseNet, ...) or one of ResNet's ``layer1`` to
``layer4``. The feature selection is a short string:

* ``last``: the model's own pooled output (the classifier's input), the default;
* ``stage-K``: the globally average-pooled output of stage ``-K`` counted from the
  end (``stage-1`` is the last stage; for EfficientNet that is the 1x1 head
  convolution, so ``stage-2`` is the last MBConv stage);
* ``concatN``: the pooled outputs of the last ``N`` stages, concatenated.

At small inputs the last stage of an ImageNet model works on a 1x1 or 2x2 map (at
32 px Lite0's last stage is all zeros); an earlier stage still sees a spatial
layout. The selection is part of the cache key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cactus_features.errors import ConfigError

LAST = "last"
_PATTERN = re.compile(r"^(?:last|stage-(?P<k>[1-9]\d*)|concat(?P<n>[1-9]\d*))$")


@dataclass(frozen=True)
class FeatureSelection:
    """A parsed feature selection.

    Attributes:
        text: The canonical string (``last``, ``stage-2``, ``concat3``).
        stages: Negative indices of the pooled stages (``()`` for ``last``).
    """

    text: str
    stages: tuple[int, ...]

    @classmethod
    def parse(cls, text: str | None) -> FeatureSelection:
        """Parse ``last``, ``stage-K`` or ``concatN``.

        Raises:
            ConfigError: For anything else.
        """
        text = LAST if text is None else str(text).strip()
        found = _PATTERN.match(text)
        if found is None:
            raise ConfigError(
                f"features {text!r}: use last, stage-K (the K-th stage from the end, "
                "stage-1 = last) or concatN (the last N stages' pooled outputs)"
            )
        if found["k"]:
            return cls(text, (-int(found["k"]),))
        if found["n"]:
            return cls(text, tuple(range(-int(found["n"]), 0)))
        return cls(LAST, ())


def _stem_and_stages(model: nn.Module) -> tuple[list[nn.Module], list[str]]:
    """The modules the model runs in order up to its last stage, and the stages' names.

    The stages are the last ``len(names)`` modules of the list.

    Raises:
        ConfigError: For a model without recognised stages.
    """
    from torchvision.models import ResNet  # here: a default (last-stage) request needs none

    features = getattr(model, "features", None)
    if isinstance(features, nn.Sequential):
        return list(features), [f"features.{i}" for i in range(len(features))]
    if isinstance(model, ResNet):
        stem = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool)
        layers = [model.layer1, model.layer2, model.layer3, model.layer4]
        return [stem, *layers], [f"layer{i}" for i in range(1, 5)]
    raise ConfigError(
        f"{type(model).__name__}: no stages to select features from (models with a "
        "`features` sequence, or ResNets); use features last"
    )


def stage_names(model: nn.Module) -> list[str]:
    """The module names of the model's stages, in order.

    Raises:
        ConfigError: For a model without recognised stages.
    """
    return _stem_and_stages(model)[1]


class PooledStages(nn.Module):
    """The modules up to the deepest chosen stage, run in order; the chosen stages' outputs
    average-pooled and concatenated (plain modules, so BatchNorm folding still applies)."""

    def __init__(self, blocks: list[nn.Module], picks: list[int]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks[: max(picks) + 1])
        self.picks = tuple(picks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` -> ``[B, sum of the stages' channels]``."""
        pooled = []
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in self.picks:
                pooled.append(F.adaptive_avg_pool2d(x, 1).flatten(1))
        return torch.cat(pooled, 1)


def select_features(model: nn.Module, selection: FeatureSelection) -> nn.Module:
    """``model`` itself for ``last``, else a :class:`PooledStages` of the chosen stages.

    Raises:
        ConfigError: If the model has no recognised stages, or fewer than asked for.
    """
    if not selection.stages:
        return model
    blocks, names = _stem_and_stages(model)
    if -min(selection.stages) > len(names):
        raise ConfigError(
            f"features {selection.text!r}: {type(model).__name__} has {len(names)} stages"
        )
    return PooledStages(blocks, [len(blocks) + i for i in selection.stages])
