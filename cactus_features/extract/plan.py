"""From options to a plan: which entries exist, where they live, what is still missing.

:func:`make_plan` resolves the device, precision and sizes, fingerprints the
dataset and derives every backbone's cache key and file; nothing is locked and
no model is built yet.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cactus_features.backbones.frozen import resolve_device, resolve_precision
from cactus_features.data.multilabel import label_spec
from cactus_features.data.table import ImageTable
from cactus_features.errors import CacheError
from cactus_features.extract.cache import entry_path, remove_leftover_parts
from cactus_features.extract.config import BackboneRequest, ExtractConfig
from cactus_features.extract.distributed import DistContext, rank_device
from cactus_features.extract.pipeline import default_batch_size
from cactus_features.extract.scan import default_workers
from cactus_features.extract.sharded import fingerprint_sharded
from cactus_features.notices import warn
from cactus_features.store.entries import is_complete
from cactus_features.store.format import io_message

log = logging.getLogger("cactus_features")


@dataclass(frozen=True)
class Entry:
    """One backbone's cache entry.

    Attributes:
        request: The backbone as requested.
        key: Its cache key.
        path: Its ``.h5`` file.
    """

    request: BackboneRequest
    key: dict[str, Any]
    path: Path

    @property
    def name(self) -> str:
        """Readable label, e.g. ``resnet18@32``."""
        return str(self.key["name"])


@dataclass
class ExtractPlan:
    """An extraction with every option resolved, before any model work.

    Attributes:
        config: The options as given.
        ctx: This process's rank.
        table: The dataset.
        device: The device the models run on.
        precision: ``fp32``, ``bf16`` or ``fp16``.
        workers: Decoder threads.
        batch_size: Images per forward pass.
        quiet: No progress bars (always so on ranks other than 0).
        dataset_dir: The cache folder of this dataset (``<cache>/<name>-<fp8>``).
        entries: One entry per requested backbone, in request order.
        fingerprint_seconds: Time spent fingerprinting the dataset.
    """

    config: ExtractConfig
    ctx: DistContext
    table: ImageTable
    device: torch.device
    precision: str
    workers: int
    batch_size: int
    quiet: bool
    dataset_dir: Path
    entries: list[Entry]
    fingerprint_seconds: float

    @property
    def channels_last(self) -> bool:
        """Channels-last layout: as asked, else on for CUDA and CPU."""
        if self.config.channels_last is not None:
            return self.config.channels_last
        return self.device.type in ("cuda", "cpu")


def make_plan(config: ExtractConfig, ctx: DistContext) -> ExtractPlan:
    """Read the dataset, resolve the options and derive every entry's key and path.

    Args:
        config: Validated options.
        ctx: This process's rank.

    Raises:
        UserError: Bad dataset, option, backbone or weights.
    """
    requests = config.requests()
    table = config.read_table()
    if ctx.is_main:
        for message in table.warnings:
            warn(message)
    device = resolve_device(rank_device(ctx, config.device))
    precision = resolve_precision(config.precision, device)
    workers = config.workers if config.workers is not None else default_workers()
    t0 = time.perf_counter()
    fp = fingerprint_sharded(table, ctx, config.fingerprint)
    fingerprint_seconds = time.perf_counter() - t0
    dataset_dir = f"{table.name}-{fp[:8]}"
    cache_dir = Path(config.cache_dir)
    labels = None
    if table.label_matrix is not None:
        labels = label_spec(table.class_names, table.label_matrix, table.source)
    entries = []
    for req in requests:
        key = config.entry_key(req, dataset_fingerprint=fp, precision=precision, labels=labels)
        entries.append(Entry(req, key, entry_path(cache_dir, dataset_dir, key)))
    batch_size = config.batch_size
    if batch_size is None:
        batch_size = default_batch_size(device, max(e.key["resolution"] for e in entries))
    return ExtractPlan(
        config=config,
        ctx=ctx,
        table=table,
        device=device,
        precision=precision,
        workers=workers,
        batch_size=batch_size,
        quiet=config.quiet or not ctx.is_main,
        dataset_dir=cache_dir / dataset_dir,
        entries=entries,
        fingerprint_seconds=fingerprint_seconds,
    )


def serve_hits(plan: ExtractPlan) -> list[Entry]:
    """Report the entries already cached, tidy up after them, and return the missing ones.

    Creates the dataset's cache folder when something is missing.

    Raises:
        CacheError: A newer-format file is in the way, or the cache folder is unusable.
    """
    missing = [e for e in plan.entries if not is_complete(e.path)]
    for e in plan.entries:
        if e not in missing and plan.ctx.is_main:
            log.info("cache hit: %s (%s), no model run", e.name, e.path)
            remove_leftover_parts(e.path)
    if missing:
        try:
            plan.dataset_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(io_message(Path(plan.config.cache_dir), exc)) from None
    return missing
