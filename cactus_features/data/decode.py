"""Decoding any image file to an RGB uint8 array."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from cactus_features.errors import DataError


class BadImageError(DataError):
    """An image file that cannot be decoded (zero bytes, truncated or not an image)."""


def to_rgb_array(image: Image.Image) -> np.ndarray:
    """Convert a PIL image of any mode to an ``[H, W, 3]`` uint8 RGB array.

    16-bit and 32-bit integer greyscale is scaled down to 8 bits (top byte),
    float greyscale is read as values in ``[0, 1]``, palette and alpha images are
    converted through RGBA with the alpha channel dropped.

    Args:
        image: A loaded PIL image.

    Returns:
        The pixels as ``[H, W, 3]`` uint8.
    """
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        arr = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) <= 65535 else arr.max()
        grey = np.clip(np.rint(arr / peak * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode == "F":
        arr = np.asarray(image, dtype=np.float64)
        grey = np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode == "P":
        image = image.convert("RGBA")
    if mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8)


def decode_image(path: str | Path) -> np.ndarray:
    """Read one image file fully into an ``[H, W, 3]`` uint8 RGB array.

    Args:
        path: The image file.

    Returns:
        The decoded pixels.

    Raises:
        BadImageError: If the file is empty, truncated or not an image.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            return to_rgb_array(im)
    except FileNotFoundError:
        raise BadImageError(f"{path}: file disappeared; check the data folder") from None
    except Exception as exc:
        # Damaged files raise many types besides OSError (UnidentifiedImageError,
        # SyntaxError, struct.error, EOFError, IndexError, DecompressionBombError for
        # a header claiming billions of pixels, ...): all mean "this file is bad".
        try:
            size = path.stat().st_size
        except OSError:
            size = 0
        text = (str(exc).splitlines() or [""])[0][:200]
        if not isinstance(exc, UnidentifiedImageError | OSError | ValueError | SyntaxError):
            text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        what = "zero-byte file" if size == 0 else f"cannot decode ({text})"
        raise BadImageError(
            f"{path}: {what}; replace or remove it, or pass --skip-bad-images"
        ) from None
