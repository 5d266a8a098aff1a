"""Reading and hashing local weights files, and loading them strictly."""

from __future__ import annotations

import hashlib
from functools import partial
from pathlib import Path

import torch
from torch import nn

from cactus_features.errors import WeightsError


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


def load_strict(
    model: nn.Module, state: dict[str, torch.Tensor], path: str | Path, what: str, hint: str = ""
) -> None:
    """Load ``state`` (read from ``path``) into ``model`` with every key matching.

    Raises:
        WeightsError: ``"{path}: does not fit {what} (<first line>){hint}"`` when keys
            or shapes differ.
    """
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise WeightsError(f"{path}: does not fit {what} ({first}){hint}") from None
