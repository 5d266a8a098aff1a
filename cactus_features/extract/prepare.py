"""Before any model work: decode-check every image, drop or refuse bad ones, split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cactus_features.data.split import split_table
from cactus_features.data.table import ImageTable
from cactus_features.errors import DataError
from cactus_features.extract.plan import ExtractPlan
from cactus_features.extract.scan import bad_images_error
from cactus_features.extract.sharded import scan_sharded
from cactus_features.notices import warn
from cactus_features.store.features import SPLIT_NONE


@dataclass
class CheckedRows:
    """The images that will be embedded, with their split and channel statistics.

    Attributes:
        table: The decodable images only.
        images: Their decoded pixels when the scan kept them in memory, else ``None``.
        split: Split codes ``[N]`` (``SPLIT_NONE`` for an unlabelled dataset).
        mean: Per-channel mean over the training images.
        std: Per-channel standard deviation over the training images.
        skipped: Undecodable images left out, id -> reason.
        scan_seconds: Time spent checking the images.
    """

    table: ImageTable
    images: list[np.ndarray] | None
    split: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    skipped: dict[str, str]
    scan_seconds: float


def check_and_split(plan: ExtractPlan) -> CheckedRows:
    """Validate every image of the plan's table, then split the decodable ones.

    Raises:
        DataError: Undecodable images (unless ``skip_bad_images``), or none left.
    """
    config, ctx, table = plan.config, plan.ctx, plan.table
    scan, scan_seconds = scan_sharded(table, ctx, config.chunk_size, plan.workers, plan.quiet)
    keep = np.ones(len(table), dtype=bool)
    if scan.bad:
        if not config.skip_bad_images:
            raise bad_images_error(scan.bad)
        bad_ids = set(scan.bad)
        keep = np.array([str(i) not in bad_ids for i in table.ids])
        if ctx.is_main:
            first = ", ".join(sorted(bad_ids)[:5])
            warn(f"skipping {len(bad_ids)} undecodable images, first: {first}")
    rows = np.flatnonzero(keep)
    if len(rows) == 0:
        raise DataError("no decodable images left; check the data folder")
    kept = table.subset(rows)
    images = None if scan.images is None else [scan.images[r] for r in rows]
    if kept.labelled:
        split = split_table(kept, config.split_config)
        train_rows = rows[split == 0]
    else:
        split = np.full(len(kept), SPLIT_NONE, dtype=np.uint8)
        train_rows = rows
    mean, std = scan.channel_stats(train_rows)
    return CheckedRows(kept, images, split, mean, std, scan.bad, scan_seconds)
