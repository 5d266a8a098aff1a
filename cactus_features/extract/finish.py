"""Finishing an entry: check the computed chunks, then write the final cache file (rank 0)."""

from __future__ import annotations

import logging
import platform
from datetime import datetime, timezone
from typing import Any

import numpy as np

from cactus_features._version import __version__
from cactus_features.data.table import ImageTable
from cactus_features.errors import DataError
from cactus_features.extract.cache import PartStore
from cactus_features.extract.health import HealthStats
from cactus_features.extract.pipeline import StageTimes
from cactus_features.extract.plan import ExtractPlan
from cactus_features.extract.prepare import CheckedRows
from cactus_features.extract.run import EntryJob
from cactus_features.notices import CollapsedFeaturesWarning
from cactus_features.store.entries import write_entry
from cactus_features.store.format import H5PY_VERSION

__all__ = ["CollapsedFeaturesWarning", "finish_entries", "merge_times", "versions"]

log = logging.getLogger("cactus_features")


def finish_entries(
    plan: ExtractPlan,
    rows: CheckedRows,
    jobs: list[EntryJob],
    per_rank_times: list[list[dict[str, float]]],
) -> None:
    """Write every entry's final file (rank 0, after every rank computed its chunks).

    Args:
        plan: The extraction.
        rows: The checked images.
        jobs: The entries extracted, in the same order on every rank.
        per_rank_times: Each rank's ``StageTimes.as_dict()`` of each job.
    """
    seconds = {
        "fingerprint_seconds": plan.fingerprint_seconds,
        "scan_seconds": round(rows.scan_seconds, 4),
    }
    for n, ej in enumerate(jobs):
        if plan.ctx.active:
            ej.job.times = merge_times([times[n] for times in per_rank_times])
        finish_entry(plan, rows, ej, seconds)


def merge_times(per_rank: list[dict[str, float]]) -> StageTimes:
    """Timings of a multi-process run: summed work, wall time of the slowest rank."""
    return StageTimes(
        read=sum(t["read_seconds"] for t in per_rank),
        model=sum(t["model_seconds"] for t in per_rank),
        write=sum(t["write_seconds"] for t in per_rank),
        total=max(t["seconds"] for t in per_rank),
        images=int(sum(t["images"] for t in per_rank)),
    )


def finish_entry(
    plan: ExtractPlan, rows: CheckedRows, ej: EntryJob, seconds: dict[str, float]
) -> None:
    """Check the finished embeddings and write the final cache file.

    Two streaming passes over the chunk files (one chunk in memory at a time):
    finiteness and health statistics, then the copy into HDF5.

    Raises:
        DataError: Some embeddings are not finite, or there are none.
    """
    key, path, parts, table = ej.entry.key, ej.entry.path, ej.job.parts, rows.table
    stats = _health_of_chunks(parts, key["name"], table)
    dim = stats.mean.shape[0]
    health = stats.report()
    timings = {**ej.job.times.as_dict(), **seconds}
    if not health.collapsed:  # collapsed entries are warned about by extract_features
        log.info("%s: %s", key["name"], health.message)
    config = plan.config
    write_entry(
        path,
        embeddings=parts.blocks(dim),
        ids=table.ids,
        labels=table.labels,
        split=rows.split,
        key=key,
        class_names=table.class_names,
        json_attrs={
            "timings": timings,
            "health": health.as_dict(),
            "model_info": ej.info,
            "split_config": config.split_config.as_dict(),
            "dataset_stats": {"mean": rows.mean, "std": rows.std, "split": "train"},
            "skipped": rows.skipped,
            "versions": versions(),
            "source": table.source,
        },
        plain_attrs=_plain_attrs(key, table),
        dtype=config.dtype,
        label_matrix=table.label_matrix,
    )
    parts.remove()
    log.info("wrote %s (%d x %d, %.1f img/s)", path, len(table), dim, timings["images_per_second"])


def _health_of_chunks(parts: PartStore, name: str, table: ImageTable) -> HealthStats:
    """Health statistics over every chunk; chunks with non-finite rows are deleted.

    Raises:
        DataError: Some rows are not finite (their ids are named), or there are none.
    """
    stats: HealthStats | None = None
    bad_rows: list[np.ndarray] = []
    for index, chunk in enumerate(parts.iter_chunks()):
        finite = np.isfinite(chunk).all(axis=1)
        if not finite.all():
            bad_rows.append(parts.chunk_rows(index).start + np.flatnonzero(~finite))
            parts.discard(index)
            continue
        stats = stats or HealthStats(chunk.shape[1])
        stats.update(chunk)
    if bad_rows:
        bad = [str(i) for i in table.ids[np.concatenate(bad_rows)]]
        raise DataError(
            f"{name}: {len(bad)} embeddings are not finite (NaN/inf), first ids: "
            f"{', '.join(bad[:5])}; try --precision fp32 or check those images"
        )
    if stats is None:
        raise DataError(f"{name}: no embeddings to write")
    return stats


def _plain_attrs(key: dict[str, Any], table: ImageTable) -> dict[str, Any]:
    """The scalar attributes of a cache file (what ``info`` shows at a glance)."""
    return {
        "backbone": key["backbone"],
        "weights": key["weights"],
        "weights_label": key["weights"],
        "resolution": key["resolution"],
        "normalization": key["normalization"],
        "dataset_name": table.name,
        "dataset_root": str(table.root.resolve()),
        "dataset_layout": table.layout,
        "n_images": len(table),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def versions() -> dict[str, str]:
    """Versions of the libraries that produced a cache file."""
    import torch
    import torchvision

    return {
        "cactus_features": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": np.__version__,
        "h5py": H5PY_VERSION,
        "python": platform.python_version(),
    }
