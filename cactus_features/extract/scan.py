"""One pass over the image files before any model work: fingerprint, validation, statistics."""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from PIL import Image

from cactus_features.data.decode import BadImageError, decode_image
from cactus_features.data.table import ImageTable
from cactus_features.errors import ConfigError, DataError

if TYPE_CHECKING:  # pragma: no cover
    import torch

FINGERPRINT_MODES = ("content", "size")

DECODE_BLOCK = 256
"""Files one decoder task reads, so per-task overhead is paid once per block, not per image."""

_GROUP_FILE_BYTES = 4 << 20
"""File bytes read before one decode call."""

_STATS_FLUSH_BYTES = 16 << 20
"""Pixel statistics are taken every this many decoded bytes (bounds the stacked copy)."""

_JPEG_MAGIC = b"\xff\xd8\xff"

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """Decoder threads: one per core (libjpeg and PIL release the GIL while decoding)."""
    return max(1, min(8, os.cpu_count() or 1))


def file_digests(paths: list[Path], mode: str = "content") -> list[bytes]:
    """Each file's part of the dataset fingerprint, in order (hashed by a thread pool).

    Args:
        paths: Image files.
        mode: ``content`` (BLAKE2b of the bytes) or ``size`` (the file size).

    Returns:
        One short byte string per file.
    """
    if mode not in FINGERPRINT_MODES:
        raise ConfigError(f"--fingerprint {mode!r}: use {' or '.join(FINGERPRINT_MODES)}")

    def file_parts(block: list[Path]) -> list[bytes]:
        if mode == "size":
            return [str(path.stat().st_size).encode() for path in block]
        return [hashlib.blake2b(path.read_bytes(), digest_size=16).digest() for path in block]

    # One task per block of files: ThreadPoolExecutor.map ignores ``chunksize``,
    # and a future per file costs more than hashing a small file.
    blocks = [paths[i : i + DECODE_BLOCK] for i in range(0, len(paths), DECODE_BLOCK)]
    with ThreadPoolExecutor(default_workers()) as pool:
        return [part for block in pool.map(file_parts, blocks) for part in block]


def dataset_fingerprint(
    table: ImageTable, mode: str = "content", *, digests: list[bytes] | None = None
) -> str:
    """Hash of the dataset's ids, labels and files.

    Args:
        table: The dataset.
        mode: ``content`` hashes every file's bytes (any edit is seen); ``size``
            hashes file sizes only (fast for huge datasets, misses same-size edits).
        digests: The files' :func:`file_digests`, when already computed (for
            example by several ranks, each over its share of the files).

    Returns:
        A hex BLAKE2b digest (32 characters).
    """
    if mode not in FINGERPRINT_MODES:
        raise ConfigError(f"--fingerprint {mode!r}: use {' or '.join(FINGERPRINT_MODES)}")
    if digests is None:
        digests = file_digests(table.paths, mode)
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{mode}\n{','.join(table.class_names)}\n".encode())
    for i, label, part in zip(table.ids, table.labels, digests, strict=True):
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


def _jpeg_to_rgb(chw: torch.Tensor) -> np.ndarray | None:
    """torchvision's ``[C, H, W]`` output as PIL would give it (``[H, W, 3]``), or ``None``."""
    if chw.shape[0] == 3:
        return np.ascontiguousarray(chw.permute(1, 2, 0).numpy())
    if chw.shape[0] == 1:  # greyscale: PIL's L -> RGB repeats the channel
        return np.repeat(chw[0].numpy()[:, :, None], 3, axis=2)
    return None  # CMYK and friends: PIL's conversion, not libjpeg's


_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE_MARKERS = frozenset({0x01, 0xD8, *range(0xD0, 0xD8)})


def jpeg_header(data: bytes) -> tuple[int, int, int] | None:
    """``(height, width, components)`` from a JPEG's frame header, or ``None``.

    A strict walk over the marker segments up to the first scan: ``None`` for
    anything unusual (junk between segments, markers PIL does not know, no frame
    header before the scan, a zero height), so such files take PIL's path.
    """
    n = len(data)
    if n < 4 or data[:3] != _JPEG_MAGIC:
        return None
    i, shape = 2, None
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        m = data[i + 1]
        if m == 0xFF:  # fill byte
            i += 1
            continue
        if m in _STANDALONE_MARKERS:
            i += 2
            continue
        if m < 0xC0 or m == 0xD9:
            return None
        length = (data[i + 2] << 8) | data[i + 3]
        if length < 2:
            return None
        if m in _SOF_MARKERS:
            if i + 10 > n or shape is not None:
                return None
            h = (data[i + 5] << 8) | data[i + 6]
            w = (data[i + 7] << 8) | data[i + 8]
            shape = (h, w, data[i + 9])
            if h == 0 or w == 0:
                return None
        elif m == 0xDA:
            return shape
        i += 2 + length
    return None


def _fast_jpeg_ok(data: np.ndarray) -> bool:
    """Whether libjpeg may decode this file in place of PIL (same pixels, same verdict)."""
    if data.size < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return False
    header = jpeg_header(data[: 1 << 17].tobytes())
    if header is None or header[2] not in (1, 3):
        return False
    limit = Image.MAX_IMAGE_PIXELS  # PIL's decompression-bomb check, read at call time
    return limit is None or header[0] * header[1] <= limit


@functools.cache
def _libjpeg() -> tuple[Any, Any] | None:
    """torchvision's ``decode_jpeg`` and read mode, or ``None`` without its image codecs.

    libjpeg-turbo gives PIL's pixels without PIL's Python parsing. Imported on the
    first decode: importing torchvision takes seconds, which a cache hit never needs.
    """
    try:
        from torchvision.io import ImageReadMode, decode_jpeg
    except ImportError:  # pragma: no cover - torchvision without image codecs
        return None
    return decode_jpeg, ImageReadMode.UNCHANGED


def _decode_group(
    group: list[tuple[Path, np.ndarray | None]],
) -> list[tuple[np.ndarray | None, str]]:
    out: list[tuple[np.ndarray | None, str] | None] = [None] * len(group)
    where = [i for i, (_, data) in enumerate(group) if data is not None and _fast_jpeg_ok(data)]
    codec = _libjpeg() if where else None
    if codec is not None:
        import torch

        decode_jpeg, mode = codec
        raw = [torch.from_numpy(group[i][1]) for i in where]  # type: ignore[arg-type]
        try:
            decoded = decode_jpeg(raw, mode=mode)
        except RuntimeError:  # one bad file fails the whole call: go one by one
            decoded = []
            for data in raw:
                try:
                    decoded.append(decode_jpeg(data, mode=mode))
                except RuntimeError:
                    decoded.append(None)
        for i, chw in zip(where, decoded, strict=True):
            img = None if chw is None else _jpeg_to_rgb(chw)
            if img is not None:
                out[i] = (img, "")
    return [r if r is not None else _decode_one(g[0]) for r, g in zip(out, group, strict=True)]


def iter_decode(paths: Iterable[Path]) -> Iterator[tuple[np.ndarray | None, str]]:
    """Decode files in order; yields ``(image, "")`` or ``(None, reason)`` for each.

    JPEG files (recognised by their bytes, not their names) go to libjpeg-turbo
    through ``torchvision.io.decode_jpeg``, one call per group of files, which
    gives the same pixels as PIL (checked bitwise on all 17,500 Kaggle images)
    at about three times the speed for small images, since PIL parses JPEG
    headers in Python. Anything that is not a 1- or 3-channel JPEG, or that
    libjpeg rejects (truncated, corrupt), is decoded by :func:`decode_image`,
    which keeps PIL's behaviour and error messages for those files.

    Groups hold at most :data:`DECODE_BLOCK` files and about 4 MiB of file bytes,
    so large photos are decoded a few at a time.
    """
    group: list[tuple[Path, np.ndarray | None]] = []
    nbytes = 0
    for path in paths:
        try:
            data: np.ndarray | None = np.fromfile(path, dtype=np.uint8)
        except (OSError, ValueError):
            data = None  # decode_image reports it
        group.append((path, data))
        nbytes += 0 if data is None else data.size
        if len(group) >= DECODE_BLOCK or nbytes >= _GROUP_FILE_BYTES:
            yield from _decode_group(group)
            group, nbytes = [], 0
    if group:
        yield from _decode_group(group)


def decode_many(paths: list[Path]) -> list[tuple[np.ndarray | None, str]]:
    """:func:`iter_decode` as a list."""
    return list(iter_decode(paths))


def iter_decoded(paths: list[Path], workers: int) -> Iterator[tuple[np.ndarray | None, str]]:
    """Decode files in order with a thread pool; yields ``(image or None, error)``."""
    blocks = [paths[i : i + DECODE_BLOCK] for i in range(0, len(paths), DECODE_BLOCK)]
    with ThreadPoolExecutor(workers) as pool:
        for block in ordered_map(pool, decode_many, blocks, ahead=2 * workers):
            yield from block


def ordered_map(
    pool: ThreadPoolExecutor, fn: Callable[[T], R], items: Iterable[T], *, ahead: int
) -> Iterator[R]:
    """``pool.map`` that keeps at most ``ahead`` tasks in flight (bounded memory)."""
    pending: deque[Future[R]] = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def pixel_stats(images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Exact per-image per-channel sums of pixel values and of their squares (0-255 scale).

    Images of equal shape are stacked and reduced together (one NumPy call per
    group rather than per image); the sums are integers, so they do not depend on
    the grouping.

    Returns:
        ``(sums, sums_of_squares)``, both ``int64 [N, 3]``.
    """
    sums = np.zeros((len(images), 3), dtype=np.int64)
    sq = np.zeros((len(images), 3), dtype=np.int64)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, img in enumerate(images):
        groups.setdefault(img.shape, []).append(i)
    for rows in groups.values():
        stack = np.stack([images[i] for i in rows]).reshape(len(rows), -1, 3)
        # Channel-major copy first: NumPy reduces a contiguous last axis ten times
        # faster than the pixel axis of [N, P, 3].
        planes = np.ascontiguousarray(stack.transpose(0, 2, 1))
        sums[rows] = planes.sum(-1, dtype=np.int64)
        wide = planes.astype(np.uint16)  # 255**2 fits in uint16
        np.multiply(wide, wide, out=wide)
        sq[rows] = wide.sum(-1, dtype=np.int64)
    return sums, sq


class _KeepBudget:
    """Decoded images kept for extraction, shared by the decoder threads."""

    def __init__(self, budget: int) -> None:
        self.left = budget
        self.keeping = True
        self._lock = threading.Lock()

    def take(self, nbytes: int) -> bool:
        with self._lock:
            if self.keeping and nbytes <= self.left:
                self.left -= nbytes
                return True
            self.keeping = False
            return False


@dataclass
class _Block:
    images: list[np.ndarray | None]
    errors: list[str]
    sizes: np.ndarray
    sums: np.ndarray
    sq: np.ndarray


def _scan_block(paths: list[Path], budget: _KeepBudget) -> _Block:
    """Decode a block, take its statistics, keep its images while the budget allows."""
    n = len(paths)
    sizes = np.zeros((n, 2), dtype=np.int64)
    sums = np.zeros((n, 3), dtype=np.int64)
    sq = np.zeros((n, 3), dtype=np.int64)
    images: list[np.ndarray | None] = [None] * n
    errors = [""] * n
    pending: list[tuple[int, np.ndarray]] = []
    pending_bytes = 0

    def flush() -> None:
        rows = [i for i, _ in pending]
        sums[rows], sq[rows] = pixel_stats([img for _, img in pending])
        pending.clear()

    for i, (img, err) in enumerate(iter_decode(paths)):
        if img is None:
            errors[i] = err
            continue
        sizes[i] = img.shape[:2]
        pending.append((i, img))
        pending_bytes += img.nbytes
        if budget.keeping and budget.take(img.nbytes):
            images[i] = img
        if pending_bytes >= _STATS_FLUSH_BYTES:
            flush()
            pending_bytes = 0
    if pending:
        flush()
    return _Block(images, errors, sizes, sums, sq)


def scan_images(
    table: ImageTable,
    *,
    keep_budget_bytes: int = 512 << 20,
    workers: int | None = None,
    progress=None,
) -> ScanResult:
    """Decode every image once: find bad files, measure sizes and pixel statistics.

    Each decoder thread takes a block of :data:`DECODE_BLOCK` files, decodes it
    (:func:`iter_decode`) and reduces its pixel statistics with NumPy, so the
    main thread only assembles blocks.

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
    workers = workers or default_workers()
    sizes = np.zeros((n, 2), dtype=np.int64)
    sums = np.zeros((n, 3), dtype=np.int64)
    sq = np.zeros((n, 3), dtype=np.int64)
    bad: dict[str, str] = {}
    kept: list[np.ndarray] | None = []
    budget = _KeepBudget(keep_budget_bytes)
    paths = table.paths
    starts = range(0, n, DECODE_BLOCK)
    blocks = [paths[s : s + DECODE_BLOCK] for s in starts]
    with ThreadPoolExecutor(workers) as pool:
        results = ordered_map(pool, lambda b: _scan_block(b, budget), blocks, ahead=2 * workers)
        for start, block in zip(starts, results, strict=True):
            stop = start + len(block.images)
            sizes[start:stop], sums[start:stop], sq[start:stop] = block.sizes, block.sums, block.sq
            for i, err in enumerate(block.errors):
                if err:
                    bad[str(table.ids[start + i])] = err
            if kept is not None:
                if not budget.keeping:
                    kept = None
                else:
                    kept.extend(
                        img if img is not None else np.zeros((1, 1, 3), np.uint8)
                        for img in block.images
                    )
            if progress is not None:
                progress(len(block.images))
    if not budget.keeping:
        kept = None
    return ScanResult(sizes, sums / 255.0, sq / 65025.0, bad, kept)


def bad_images_error(bad: dict[str, str]) -> DataError:
    """One error naming every undecodable image (up to 50) and the first reason."""
    names = list(bad)
    shown = ", ".join(names[:50]) + (f", ... ({len(names) - 50} more)" if len(names) > 50 else "")
    reason = bad[names[0]].split("; replace or remove it")[0]
    return DataError(
        f"{len(bad)} images cannot be decoded: {shown} (first: {reason}); "
        "fix or remove them, or pass --skip-bad-images to leave them out"
    )
