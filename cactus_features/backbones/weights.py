"""Resolving and loading backbone weights: torchvision names, local files, or none."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torchvision.models import get_model_weights

from cactus_features.backbones.lite0 import (
    LITE0_SHA256,
    load_lite0_weights,
    packaged_weights_path,
    read_state_dict,
    sha256_file,
)
from cactus_features.backbones.registry import IMAGENET_MEAN, IMAGENET_STD, get_spec
from cactus_features.errors import WeightsError


@dataclass(frozen=True)
class LoadedWeights:
    """Which weights a backbone carries, for the cache key and for reports.

    Attributes:
        label: ``"random init"``, a torchvision weights name (``IMAGENET1K_V2``) or
            ``"file:<name>"``.
        sha256: Hash of the weights file, ``""`` for random initialisation.
        mean: Normalisation mean that belongs to the weights.
        std: Normalisation std that belongs to the weights.
        pretrained: Whether the weights are trained (not random).
    """

    label: str
    sha256: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    pretrained: bool


def _hub_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def load_weights(
    model: nn.Module,
    name: str,
    weights: str | None,
    weights_file: str | Path | None = None,
) -> LoadedWeights:
    """Load the requested weights into ``model`` (its classifier still attached).

    Args:
        model: The untrained architecture from the registry.
        name: Registry name of the backbone.
        weights: ``"none"``/``None`` for random initialisation, or a weights name
            (``DEFAULT``, ``IMAGENET1K_V2``, ...). Ignored when ``weights_file`` is given.
        weights_file: A local state dict, loaded with ``weights_only=True``.

    Returns:
        What was loaded.

    Raises:
        WeightsError: Unknown weights name, failed download, or a file that does
            not fit the architecture.
    """
    spec = get_spec(name)
    if weights_file is not None:
        return _load_file(model, name, Path(weights_file))
    if weights is None or str(weights).lower() in {"none", "random"}:
        return LoadedWeights("random init", "", IMAGENET_MEAN, IMAGENET_STD, False)
    if name == "efficientnet_lite0":
        if weights.upper() not in {"DEFAULT", "IMAGENET1K"}:
            raise WeightsError(
                f"efficientnet_lite0 has weights DEFAULT (IMAGENET1K), not {weights!r}"
            )
        path = packaged_weights_path()
        load_lite0_weights(model, path, expected_sha256=LITE0_SHA256)
        return LoadedWeights("IMAGENET1K", LITE0_SHA256, IMAGENET_MEAN, IMAGENET_STD, True)
    enum = get_model_weights(name)
    try:
        entry = enum[weights.upper()] if weights.upper() != "DEFAULT" else enum.DEFAULT
    except KeyError:
        raise WeightsError(
            f"{name} has no weights {weights!r}; choose one of {', '.join(spec.weights)} or none"
        ) from None
    file_name = os.path.basename(entry.url)
    try:
        state = entry.get_state_dict(progress=False, check_hash=True)
    except Exception as exc:  # network, hash or disk errors all end the same way
        raise WeightsError(
            f"could not get {name} weights {entry.name} ({type(exc).__name__}: {exc}). "
            f"On a machine with internet download {entry.url} and either copy it to "
            f"{_hub_dir() / file_name} or pass --weights-file PATH"
        ) from None
    model.load_state_dict(state, strict=True)
    keywords = getattr(entry.transforms, "keywords", {})
    mean = tuple(keywords.get("mean", IMAGENET_MEAN))
    std = tuple(keywords.get("std", IMAGENET_STD))
    digest = file_name.rsplit("-", 1)[-1].split(".")[0]
    return LoadedWeights(entry.name, digest, mean, std, True)  # type: ignore[arg-type]


def _load_file(model: nn.Module, name: str, path: Path) -> LoadedWeights:
    if not path.is_file():
        raise WeightsError(f"{path}: weights file does not exist; check --weights-file")
    if name == "efficientnet_lite0":
        digest = load_lite0_weights(model, path, expected_sha256=None)
        return LoadedWeights(f"file:{path.name}", digest, IMAGENET_MEAN, IMAGENET_STD, True)
    digest = sha256_file(path)
    state = read_state_dict(path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise WeightsError(
            f"{path}: does not fit {name} ({first}); is it the weights of another architecture?"
        ) from None
    return LoadedWeights(f"file:{path.name}", digest, IMAGENET_MEAN, IMAGENET_STD, True)


def describe_weights(
    name: str, weights: str | None, weights_file: str | Path | None = None
) -> tuple[str, str]:
    """The ``(label, sha256)`` that identify weights in a cache key, without loading them.

    For torchvision weights the hash is the prefix torchvision puts in the file
    name (it checks it on download); for local files it is the file's SHA-256.

    Raises:
        WeightsError: Unknown weights name or missing file.
    """
    spec = get_spec(name)
    if weights_file is not None:
        path = Path(weights_file)
        if not path.is_file():
            raise WeightsError(f"{path}: weights file does not exist; check --weights-file")
        return f"file:{path.name}", sha256_file(path)
    if weights is None or str(weights).lower() in {"none", "random"}:
        return "random init", ""
    if name == "efficientnet_lite0":
        if weights.upper() not in {"DEFAULT", "IMAGENET1K"}:
            raise WeightsError(
                f"efficientnet_lite0 has weights DEFAULT (IMAGENET1K), not {weights!r}"
            )
        return "IMAGENET1K", LITE0_SHA256
    enum = get_model_weights(name)
    try:
        entry = enum[weights.upper()] if weights.upper() != "DEFAULT" else enum.DEFAULT
    except KeyError:
        raise WeightsError(
            f"{name} has no weights {weights!r}; choose one of {', '.join(spec.weights)} or none"
        ) from None
    return entry.name, os.path.basename(entry.url).rsplit("-", 1)[-1].split(".")[0]


def weights_unavailable(
    name: str,
    weights: str | None,
    weights_file: str | Path | None = None,
    *,
    allow_download: bool = True,
) -> str | None:
    """Why the requested weights cannot be had here, or ``None`` when they can.

    Random initialisation, local files and the packaged Lite0 weights are always
    available; torchvision weights are available when already in ``$TORCH_HOME``
    or, with ``allow_download``, when the download succeeds (it is then cached).

    Returns:
        A one-line reason, or ``None``.
    """
    try:
        label, _ = describe_weights(name, weights, weights_file)
    except WeightsError as exc:
        return str(exc)
    if weights_file is not None or label == "random init" or name == "efficientnet_lite0":
        if name == "efficientnet_lite0" and weights_file is None and label != "random init":
            try:
                packaged_weights_path()
            except WeightsError as exc:
                return str(exc)
        return None
    entry = get_model_weights(name)[label]
    cached = _hub_dir() / os.path.basename(entry.url)
    if cached.is_file():
        return None
    if not allow_download:
        return f"{name} {label} weights are not in {cached.parent} and downloads are off"
    try:
        entry.get_state_dict(progress=False, check_hash=True)
    except Exception as exc:
        return f"{name} {label} weights could not be downloaded ({type(exc).__name__})"
    return None
