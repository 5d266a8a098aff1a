"""Hashing and decode-checking the dataset, shared between ``torchrun`` ranks.

Under torchrun each rank does its share and all gather the pieces, so the
result equals what one process computes alone.
"""

from __future__ import annotations

import time

import numpy as np
from tqdm.auto import tqdm

from cactus_features.data.table import ImageTable
from cactus_features.extract.distributed import DistContext
from cactus_features.extract.scan import (
    ScanResult,
    dataset_fingerprint,
    file_digests,
    scan_images,
)


def fingerprint_sharded(table: ImageTable, ctx: DistContext, mode: str) -> str:
    """The dataset fingerprint; under torchrun each rank hashes a contiguous share of
    the files and all gather the per-file digests (the result equals one process's)."""
    if not ctx.active:
        return dataset_fingerprint(table, mode)
    n = len(table)
    lo, hi = n * ctx.rank // ctx.world_size, n * (ctx.rank + 1) // ctx.world_size
    shares = ctx.all_gather(file_digests(table.paths[lo:hi], mode))
    return dataset_fingerprint(table, mode, digests=[d for share in shares for d in share])


def scan_sharded(
    table: ImageTable, ctx: DistContext, chunk_size: int, workers: int, quiet: bool
) -> tuple[ScanResult, float]:
    """Decode-check every image; under torchrun each rank checks its share and all gather.

    Returns:
        The scan of the whole table (images kept in memory only in a single process)
        and the seconds it took.
    """
    t0 = time.perf_counter()
    if not ctx.active:
        with tqdm(total=len(table), desc="checking images", unit="img", disable=quiet) as bar:
            scan = scan_images(table, workers=workers, progress=bar.update)
        return scan, time.perf_counter() - t0
    n_blocks = (len(table) + chunk_size - 1) // chunk_size
    mine = np.concatenate(
        [
            np.arange(b * chunk_size, min((b + 1) * chunk_size, len(table)))
            for b in range(n_blocks)
            if ctx.owns(b)
        ]
        or [np.zeros(0, np.int64)]
    ).astype(np.int64)
    with tqdm(total=len(mine), desc="checking images", unit="img", disable=quiet) as bar:
        part = scan_images(
            table.subset(mine), workers=workers, progress=bar.update, keep_budget_bytes=0
        )
    pieces = ctx.all_gather((mine, part.sizes, part.pixel_sum, part.pixel_sumsq, part.bad))
    n = len(table)
    scan = ScanResult(np.zeros((n, 2), np.int64), np.zeros((n, 3)), np.zeros((n, 3)), {}, None)
    for rows, sizes, psum, psq, bad in pieces:
        scan.sizes[rows] = sizes
        scan.pixel_sum[rows] = psum
        scan.pixel_sumsq[rows] = psq
        scan.bad.update(bad)
    scan.bad = {str(i): scan.bad[str(i)] for i in table.ids if str(i) in scan.bad}
    return scan, time.perf_counter() - t0
