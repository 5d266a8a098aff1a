"""The training device: CUDA when available, else the CPU."""

from __future__ import annotations

import torch

from cactus_features.errors import ConfigError


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Pick the training device: ``None`` means CUDA when available, else CPU.

    Raises:
        ConfigError: If the device string is invalid or CUDA is asked for but absent.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"invalid device {device!r}; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for but CUDA is not available; use cpu")
    return dev
