"""Resolving and loading backbone weights: named weights, local files, or none.

Named weights are resolved and loaded by the backbone's source; a local file
is identified by its SHA-256 and loaded by the source too; ``none`` means the
seeded random initialisation the architecture was built with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from cactus_features.backbones.registry import get_spec, source_of
from cactus_features.backbones.spec import WeightsSpec
from cactus_features.backbones.statedict import sha256_file
from cactus_features.errors import WeightsError

RANDOM_LABEL = "random init"


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


def _existing_file(weights_file: str | Path) -> Path:
    path = Path(weights_file)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file does not exist; check --weights-file")
    return path


def _named(name: str, weights: str | None, *, allow_download: bool = True) -> WeightsSpec | None:
    """The source's resolution of a weights name; ``None`` for random initialisation.

    The source is told whether resolving may download (timm fetches the file to put
    its hash in the cache key).
    """
    if weights is None or str(weights).lower() in {"none", "random"}:
        return None
    source = source_of(name)
    return source.resolve_weights(name, weights, allow_download=allow_download)


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
        path = _existing_file(weights_file)
        digest = source_of(name).load_file(model, name, path)
        return LoadedWeights(f"file:{path.name}", digest, spec.mean, spec.std, True)
    named = _named(name, weights)
    if named is None:
        return LoadedWeights(RANDOM_LABEL, "", spec.mean, spec.std, False)
    source_of(name).load_weights(model, name, named)
    return LoadedWeights(named.label, named.sha256, named.mean, named.std, True)


def describe_weights(
    name: str,
    weights: str | None,
    weights_file: str | Path | None = None,
    *,
    allow_download: bool = True,
) -> tuple[str, str]:
    """The ``(label, sha256)`` that identify weights in a cache key, without loading them.

    For torchvision weights the hash is the prefix torchvision puts in the file
    name (it checks it on download); for packaged weights it is the pinned hash;
    for local files it is the file's SHA-256; for timm weights it is the
    file's SHA-256 too (the file is fetched first when missing and
    ``allow_download``).

    Raises:
        WeightsError: Unknown weights name or missing file.
    """
    get_spec(name)
    if weights_file is not None:
        path = _existing_file(weights_file)
        return f"file:{path.name}", sha256_file(path)
    named = _named(name, weights, allow_download=allow_download)
    return (RANDOM_LABEL, "") if named is None else (named.label, named.sha256)


def weights_stats(
    name: str, weights: str | None, weights_file: str | Path | None = None
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """The ``(mean, std)`` that belong to the requested weights, without loading them.

    Named weights carry the statistics they were trained with; random
    initialisation and local files take the backbone's (its spec's), as
    :func:`load_weights` does.

    Raises:
        WeightsError: Unknown weights name.
    """
    spec = get_spec(name)
    named = None if weights_file is not None else _named(name, weights)
    return (spec.mean, spec.std) if named is None else (named.mean, named.std)


def weights_unavailable(
    name: str,
    weights: str | None,
    weights_file: str | Path | None = None,
    *,
    allow_download: bool = True,
) -> str | None:
    """Why the requested weights cannot be had here, or ``None`` when they can.

    Random initialisation, local files and weights that ship with an installed
    package are always available; torchvision weights are available when already
    in ``$TORCH_HOME`` or, with ``allow_download``, when the download succeeds
    (it is then cached).

    Returns:
        A one-line reason, or ``None``.
    """
    try:
        describe_weights(name, weights, weights_file, allow_download=allow_download)
    except WeightsError as exc:
        return str(exc)
    named = None if weights_file is not None else _named(name, weights, allow_download=False)
    if named is None:
        return None
    return source_of(name).weights_unavailable(name, named, allow_download=allow_download)
