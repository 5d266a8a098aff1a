"""Every torchvision classification model, by its torchvision name.

Names, builders and weights come from ``torchvision.models`` (``list_models``,
``get_model_builder``, ``get_model_weights``); named weights are downloaded
into ``$TORCH_HOME`` and checked against the hash in their file name.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from cactus_features.backbones.architecture import build_meta, embedding_dim
from cactus_features.backbones.spec import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    BackboneSpec,
    SourceDefaults,
    WeightsSpec,
)
from cactus_features.backbones.statedict import load_strict, read_state_dict, sha256_file
from cactus_features.errors import WeightsError

if TYPE_CHECKING:  # pragma: no cover
    import torchvision


def _models() -> ModuleType:
    """``torchvision.models``, imported on first use.

    Importing torchvision takes seconds (its detection ops load torch's compiler
    stack), which the names of other sources never need.
    """
    import torchvision.models

    return torchvision.models


def _hub_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _weights_names(name: str) -> tuple[str, ...]:
    """The model's weights names, ``DEFAULT`` first."""
    enum = _models().get_model_weights(name)
    return ("DEFAULT", *[w for w in enum.__members__ if w != "DEFAULT"])


def _entry(name: str, label: str) -> torchvision.models.WeightsEnum:
    """The torchvision weights entry of a resolved label."""
    return _models().get_model_weights(name)[label]


class TorchvisionSource(SourceDefaults):
    """The torchvision classification models (``resnet50``, ``vit_b_16``, ...)."""

    label: ClassVar[str] = "torchvision"

    def names(self) -> tuple[str, ...]:
        """All of ``torchvision.models``' classification models."""
        models = _models()
        return tuple(models.list_models(module=models))

    def build(self, name: str) -> nn.Module:
        """The untrained torchvision model."""
        return _models().get_model_builder(name)(weights=None)

    def spec(self, name: str) -> BackboneSpec:
        """Resolutions from the ``DEFAULT`` weights' transforms and metadata.

        The pre-processing resizes bilinearly with ImageNet statistics for random
        initialisation and local files, whatever torchvision's own transforms use.
        """
        model = build_meta(lambda: self.build(name))
        enum = _models().get_model_weights(name)
        default = enum.DEFAULT
        keywords = getattr(default.transforms, "keywords", {})
        crop = int(keywords.get("crop_size", 224))
        min_size = default.meta.get("min_size", (32, 32))
        fixed = isinstance(getattr(model, "image_size", None), int)
        if fixed:
            crop = int(model.image_size)
        return BackboneSpec(
            name,
            embedding_dim(model),
            crop,
            int(min(min_size)),
            fixed,
            _weights_names(name),
            self.label,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            interpolation="bilinear",
            offline=False,
        )

    def resolve_weights(
        self, name: str, weights: str, *, allow_download: bool = True
    ) -> WeightsSpec:
        """A member of the model's weights enum; its hash is the file name's suffix."""
        enum = _models().get_model_weights(name)
        try:
            entry = enum[weights.upper()] if weights.upper() != "DEFAULT" else enum.DEFAULT
        except KeyError:
            raise WeightsError(
                f"{name} has no weights {weights!r}; "
                f"choose one of {', '.join(_weights_names(name))} or none"
            ) from None
        keywords = getattr(entry.transforms, "keywords", {})
        digest = os.path.basename(entry.url).rsplit("-", 1)[-1].split(".")[0]
        mean = tuple(keywords.get("mean", IMAGENET_MEAN))
        std = tuple(keywords.get("std", IMAGENET_STD))
        return WeightsSpec(entry.name, digest, mean, std, offline=False)  # type: ignore[arg-type]

    def load_weights(self, model: nn.Module, name: str, weights: WeightsSpec) -> None:
        """Download (or take from ``$TORCH_HOME``), check the hash and load strictly."""
        entry = _entry(name, weights.label)
        try:
            state = entry.get_state_dict(progress=False, check_hash=True)
        except Exception as exc:  # network, hash or disk errors all end the same way
            raise WeightsError(
                f"could not get {name} weights {entry.name} ({type(exc).__name__}: {exc}). "
                f"On a machine with internet download {entry.url} and either copy it to "
                f"{_hub_dir() / os.path.basename(entry.url)} or pass --weights-file PATH"
            ) from None
        model.load_state_dict(state, strict=True)

    def load_file(self, model: nn.Module, name: str, path: Path) -> str:
        """A state dict in torchvision's naming, loaded strictly."""
        digest = sha256_file(path)
        hint = "; is it the weights of another architecture?"
        load_strict(model, read_state_dict(path), path, name, hint)
        return digest

    def weights_unavailable(
        self, name: str, weights: WeightsSpec, *, allow_download: bool
    ) -> str | None:
        """Available when in ``$TORCH_HOME``, or when downloads are on and one succeeds."""
        entry = _entry(name, weights.label)
        cached = _hub_dir() / os.path.basename(entry.url)
        if cached.is_file():
            return None
        if not allow_download:
            return (
                f"{name} {weights.label} weights are not in {cached.parent} and downloads are off"
            )
        try:
            entry.get_state_dict(progress=False, check_hash=True)
        except Exception as exc:
            return f"{name} {weights.label} weights could not be downloaded ({type(exc).__name__})"
        return None
