"""``extract_features``: stage one, from an image folder to cached embeddings.

The call runs as options -> plan -> run -> finish:

1. :class:`~cactus_features.extract.config.ExtractConfig` holds and validates the
   options and derives each backbone's cache key;
2. :func:`~cactus_features.extract.plan.make_plan` fingerprints the dataset and
   finds each entry's file; :func:`~cactus_features.extract.prepare.check_and_split`
   checks every image and splits; :func:`~cactus_features.extract.locking.lock_entries`
   takes the writer locks;
3. :mod:`~cactus_features.extract.run` builds the backbones and computes the chunks;
4. :mod:`~cactus_features.extract.finish` checks them and writes the final files.
"""

from __future__ import annotations

import logging
import time
from contextlib import ExitStack
from pathlib import Path

from cactus_features.data.split import SplitConfig
from cactus_features.data.table import ImageTable
from cactus_features.extract.config import BackboneRequest, ExtractConfig
from cactus_features.extract.distributed import (
    DistContext,
    init_distributed,
    launched_by_torchrun,
)
from cactus_features.extract.finish import finish_entries
from cactus_features.extract.locking import lock_entries
from cactus_features.extract.plan import Entry, ExtractPlan, make_plan, serve_hits
from cactus_features.extract.prepare import check_and_split
from cactus_features.extract.run import build_jobs, compute_chunks
from cactus_features.notices import CollapsedFeaturesWarning, warn_if_collapsed
from cactus_features.store.features import FeatureSet, load_features

__all__ = ["BackboneRequest", "CollapsedFeaturesWarning", "extract_features"]

log = logging.getLogger("cactus_features")


def extract_features(
    data: str | Path | ImageTable,
    backbones: str | BackboneRequest | list[str | BackboneRequest],
    *,
    labels: str | Path | None = None,
    layout: str = "auto",
    id_column: str = "id",
    label_column: str | list[str] = "has_cactus",
    label_separator: str | None = None,
    classes: list[str] | None = None,
    limit: int | None = None,
    weights: str | None = "DEFAULT",
    weights_file: str | None = None,
    resolution: int | None = None,
    normalization: str = "weights",
    precision: str = "auto",
    channels_last: bool | None = None,
    batch_size: int | None = None,
    chunk_size: int = 1024,
    device: str | None = None,
    cache_dir: str | Path = "cache",
    split: SplitConfig | None = None,
    fingerprint: str = "content",
    skip_bad_images: bool = False,
    dtype: str = "float32",
    workers: int | None = None,
    lock_timeout: float | None = None,
    quiet: bool = False,
    distributed: bool | None = None,
    compile: bool = False,
) -> list[FeatureSet]:
    """Extract pooled embeddings of a dataset with one or more frozen backbones, once.

    Every image is decoded once for all backbones. Entries already in the cache
    are served without running the model; a killed run resumes at the first
    unfinished chunk.

    Args:
        data: Image folder (or an already-read :class:`ImageTable`).
        backbones: Registry names, ``name@resolution`` strings or requests.
        labels: Label CSV for the Kaggle layout.
        layout: ``auto``, ``kaggle``, ``folders`` or ``unlabelled``.
        id_column: CSV id column.
        label_column: CSV label column; several 0/1 columns (one per label) make a
            multi-label dataset.
        label_separator: Read the one label column as label sets split at this
            separator (``"|"``; ``" "`` splits at whitespace): a multi-label dataset.
        classes: Expected class names; other labels are an error.
        limit: Use only the first ``limit`` images.
        weights: Default weights name for every backbone (``DEFAULT``, ``none``, ...).
        weights_file: Default local weights file.
        resolution: Default input side; ``None`` means each backbone's own.
        normalization: ``weights``, ``dataset`` or ``none``.
        precision: ``auto`` (bf16 on CUDA, fp32 elsewhere), ``fp32``, ``bf16``, ``fp16``.
        channels_last: Channels-last memory format (default on for CUDA).
        batch_size: Images per forward pass (default 256 on CUDA; on CPU 256 up to
            64 px, 64 up to 128 px, 32 above, as measured in ``benchmarks/``).
        chunk_size: Images per resumable chunk.
        device: ``auto``/``None``, ``cpu``, ``cuda``, ``cuda:1``, ``mps``.
        cache_dir: Cache folder.
        split: Split ratios and seed (default 70/15/15, seed 0).
        fingerprint: ``content`` (hash file bytes) or ``size``.
        skip_bad_images: Leave undecodable images out (recorded in the cache)
            instead of failing.
        dtype: Storage of the embeddings, ``float32`` or ``float16``.
        workers: Decoder threads.
        lock_timeout: Seconds to wait for another process extracting the same entry.
        quiet: No progress bar.
        compile: Run each model through ``torch.compile`` (worth it on GPUs).
        distributed: Join a ``torchrun`` process group and shard the work by rank;
            ``None`` decides from the environment (``WORLD_SIZE`` > 1).

    Returns:
        One feature set per requested backbone, in request order.

    Warns:
        CollapsedFeaturesWarning: Once per returned entry whose features are
            collapsed, freshly extracted or served from the cache, naming the
            likely cause.

    Raises:
        DataError: Bad dataset. ConfigError: bad option. WeightsError: weights
        unavailable. CacheError: cache folder unusable or busy.
    """
    t_start = time.perf_counter()
    config = ExtractConfig(
        data=data,
        backbones=backbones,
        labels=labels,
        layout=layout,
        id_column=id_column,
        label_column=label_column,
        label_separator=label_separator,
        classes=classes,
        limit=limit,
        weights=weights,
        weights_file=weights_file,
        resolution=resolution,
        normalization=normalization,
        precision=precision,
        channels_last=channels_last,
        batch_size=batch_size,
        chunk_size=chunk_size,
        device=device,
        cache_dir=cache_dir,
        split=split,
        fingerprint=fingerprint,
        skip_bad_images=skip_bad_images,
        dtype=dtype,
        workers=workers,
        lock_timeout=lock_timeout,
        quiet=quiet,
        distributed=distributed,
        compile=compile,
    )
    ctx = _join_ranks(config)
    config.validate()
    plan = make_plan(config, ctx)
    missing = serve_hits(plan)
    if missing:
        _extract_missing(plan, missing)
    ctx.barrier()
    sets = [load_features(e.path) for e in plan.entries]
    if ctx.is_main:
        for fs, entry in zip(sets, plan.entries, strict=True):
            hit = "" if entry in missing else " (cache hit)"
            warn_if_collapsed(fs.name, fs.attrs, fs.key, what=hit)
    log.debug("extract_features took %.2fs", time.perf_counter() - t_start)
    return sets


def _join_ranks(config: ExtractConfig) -> DistContext:
    """Join the ``torchrun`` process group when asked (or, by default, when launched so)."""
    distributed = config.distributed
    if distributed is None:
        distributed = launched_by_torchrun()
    return init_distributed(config.device) if distributed else DistContext()


def _extract_missing(plan: ExtractPlan, missing: list[Entry]) -> None:
    """Validate every image, then run the backbones whose entries are missing.

    Under torchrun, rank 0 takes the entry locks and prepares the parts folders,
    every rank computes the chunks it owns, and rank 0 assembles the final files.
    """
    rows = check_and_split(plan)
    with ExitStack() as stack:
        todo = lock_entries(stack, plan, missing, len(rows.table))
        jobs = build_jobs(plan, rows, todo)
        compute_chunks(plan, rows, jobs)
        per_rank_times = plan.ctx.all_gather([j.job.times.as_dict() for j in jobs])
        plan.ctx.barrier()
        if plan.ctx.is_main:
            finish_entries(plan, rows, jobs, per_rank_times)
