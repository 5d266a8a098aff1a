"""One pass over the image files before any model work: fingerprint, validation, statistics."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cactus_features.data.decode import BadImageError, decode_image
from cactus_features.data.table import ImageTable
from cactus_features.errors import ConfigError, DataError

FINGERPRINT_MODES = ("content", "size")


def default_workers() -> int:
    """Decoder threads: one per core (PIL releases the GIL while decoding)."""
    return max(1, min(8, os.cpu_count() or 1))


def dataset_fingerprint(table: ImageTable, mode: str = "content") -> str:
    """Hash of the dataset's ids, labels and files.

    Args:
        table: The dataset.
        mode: ``content`` hashes every file's bytes (any edit is seen); ``size``
            hashes file sizes only (fast for huge datasets, misses same-size edits).

    Returns:
        A hex BLAKE2b digest (32 characters).
    """
    if mode not in FINGERPRINT_MODES:
        raise ConfigError(f"--fingerprint {mode!r}: use {' or '.join(FINGERPRINT_MODES)}")
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{mode}\n{','.join(table.class_names)}\n".encode())

    def file_part(path: Path) -> bytes:
        if mode == "size":
            return str(path.stat().st_size).encode()
        return hashlib.blake2b(path.read_bytes(), digest_size=16).digest()

    with ThreadPoolExecutor(default_workers()) as pool:
        parts = pool.map(file_part, table.paths, chunksize=64)
        for i, label, part in zip(table.ids, table.labels, parts, strict=True):
            digest.update(f"{i}\t{int(label)}\t".encode())
            digest.update(part)
    return digest.hexdigest()


@dataclass
class ScanResult:
    """What one decode pass over every image found.

    Attributes:
        sizes: ``(H, W)`` of each image.
        pixel_sum: Per-image per-channel sum of pixel values on the 0-1 scale ``[N, 3]``.
        pixel_sumsq: Per-image per-channel sum of squares ``[N, 3]``.
        bad: Ids that failed to decode, with the reason.
        images: The decoded images, kept when they fit the memory budget (else ``None``),
            so extraction does not decode them again.
    """

    sizes: np.ndarray
    pixel_sum: np.ndarray
    pixel_sumsq: np.ndarray
    bad: dict[str, str] = field(default_factory=dict)
    images: list[np.ndarray] | None = None

    def channel_stats(self, rows: np.ndarray) -> tuple[list[float], list[float]]:
        """Per-channel mean and std over all pixels of the given rows."""
        counts = (self.sizes[rows, 0] * self.sizes[rows, 1]).astype(np.float64).sum()
        mean = self.pixel_sum[rows].sum(0) / counts
        var = self.pixel_sumsq[rows].sum(0) / counts - mean**2
        return mean.tolist(), np.sqrt(np.maximum(var, 1e-12)).tolist()


def _decode_one(path: Path) -> tuple[np.ndarray | None, str]:
    try:
        return decode_image(path), ""
    except BadImageError as exc:
        return None, str(exc)


def iter_decoded(paths: list[Path], workers: int) -> Iterator[tuple[np.ndarray | None, str]]:
    """Decode files in order with a thread pool; yields ``(image or None, error)``."""
    with ThreadPoolExecutor(workers) as pool:
        yield from pool.map(_decode_one, paths, chunksize=32)


def scan_images(
    table: ImageTable,
    *,
    keep_budget_bytes: int = 512 << 20,
    workers: int | None = None,
    progress=None,
) -> ScanResult:
    """Decode every image once: find bad files, measure sizes and pixel statistics.

    Args:
        table: The dataset.
        keep_budget_bytes: Keep the decoded images in memory while their total
            stays under this size, so extraction re-uses them.
        workers: Decoder threads.
        progress: Optional callable taking the number of images done since last call.

    Returns:
        The scan result.
    """
    n = len(table)
    sizes = np.zeros((n, 2), dtype=np.int64)
    psum = np.zeros((n, 3), dtype=np.float64)
    psq = np.zeros((n, 3), dtype=np.float64)
    bad: dict[str, str] = {}
    kept: list[np.ndarray] | None = []
    used = 0
    for row, (img, err) in enumerate(iter_decoded(table.paths, workers or default_workers())):
        if img is None:
            bad[str(table.ids[row])] = err
            if kept is not None:
                kept.append(np.zeros((1, 1, 3), np.uint8))
        else:
            sizes[row] = img.shape[:2]
            flat = img.reshape(-1, 3).astype(np.float64) / 255.0
            psum[row] = flat.sum(0)
            psq[row] = np.square(flat).sum(0)
            if kept is not None:
                used += img.nbytes
                if used > keep_budget_bytes:
                    kept = None
                else:
                    kept.append(img)
        if progress is not None:
            progress(1)
    return ScanResult(sizes, psum, psq, bad, kept)


def bad_images_error(bad: dict[str, str]) -> DataError:
    """One error naming every undecodable image (first few in full)."""
    first = "; ".join(list(bad.values())[:3])
    return DataError(
        f"{len(bad)} images cannot be decoded: {first}"
        + (f" (and {len(bad) - 3} more)" if len(bad) > 3 else "")
        + "; fix or remove them, or pass --skip-bad-images to leave them out"
    )
