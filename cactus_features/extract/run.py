"""Building the backbones of the missing entries and computing their chunks."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from cactus_features.backbones.frozen import build_backbone
from cactus_features.extract.cache import PartStore
from cactus_features.extract.pipeline import Job, run_jobs
from cactus_features.extract.plan import Entry, ExtractPlan
from cactus_features.extract.prepare import CheckedRows

log = logging.getLogger("cactus_features")


@dataclass
class EntryJob:
    """One entry being extracted.

    Attributes:
        entry: The cache entry.
        job: The backbone, its parts store and the chunks this rank computes.
        info: Model facts recorded in the file (``model_info``).
    """

    entry: Entry
    job: Job
    info: dict[str, Any]


def build_jobs(plan: ExtractPlan, rows: CheckedRows, entries: list[Entry]) -> list[EntryJob]:
    """Build each entry's backbone and find the chunks this rank still has to compute.

    Args:
        plan: The extraction.
        rows: The checked images (their training statistics feed ``dataset`` normalisation).
        entries: The locked entries still to extract.
    """
    config, ctx = plan.config, plan.ctx
    out = []
    for entry in entries:
        req = entry.request
        t_build = time.perf_counter()
        backbone = build_backbone(
            req.name,
            weights=req.weights,
            weights_file=req.weights_file,
            resolution=entry.key["resolution"],
            normalization=config.normalization,
            dataset_stats=(tuple(rows.mean), tuple(rows.std)),
            precision=plan.precision,
            channels_last=config.channels_last,
            device=plan.device,
            compile=config.compile,
            features=entry.key["features"],
        )
        build_seconds = time.perf_counter() - t_build
        parts = PartStore.for_entry(
            entry.path,
            entry.key,
            len(rows.table),
            config.chunk_size,
            plan.batch_size,
            backbone.channels_last,
            config.compile,
        )
        done = parts.done(backbone.num_features)
        todo = {c for c in range(parts.n_chunks) if ctx.owns(c)} - done
        if done and ctx.is_main:
            log.info(
                "resuming %s: %d of %d chunks already done", entry.name, len(done), parts.n_chunks
            )
        job = Job(backbone, parts, todo)
        out.append(EntryJob(entry, job, _model_info(plan, entry, job, build_seconds, len(done))))
    return out


def _model_info(
    plan: ExtractPlan, entry: Entry, job: Job, build_seconds: float, resumed_chunks: int
) -> dict[str, Any]:
    """The ``model_info`` attribute of an entry."""
    backbone, weights_file = job.backbone, entry.request.weights_file
    return {
        "params": backbone.num_params(),
        "gflops": round(backbone.count_flops() / 1e9, 4),
        "resolution": backbone.resolution,
        "dim": backbone.num_features,
        "device": str(backbone.device),
        "precision": plan.precision,
        "channels_last": backbone.channels_last,
        "compiled": backbone.compiled,
        "batch_size": plan.batch_size,
        "chunk_size": plan.config.chunk_size,
        "ranks": plan.ctx.world_size,
        "build_seconds": round(build_seconds, 4),
        "resumed_chunks": resumed_chunks,
        "weights_file": str(Path(weights_file).resolve()) if weights_file else "",
        "mean": list(backbone.mean.flatten().tolist()),
        "std": list(backbone.std.flatten().tolist()),
    }


def compute_chunks(plan: ExtractPlan, rows: CheckedRows, jobs: list[EntryJob]) -> None:
    """Compute every chunk this rank owns and some job still needs, decoding each image once."""
    needed = {c for j in jobs for c in j.job.todo}
    if not needed:
        return
    names = ", ".join(j.entry.name for j in jobs)
    n_img = sum(len(jobs[0].job.parts.chunk_rows(c)) for c in needed)
    with tqdm(total=n_img, desc=f"extracting {names}", unit="img", disable=plan.quiet) as bar:
        run_jobs(
            [j.job for j in jobs],
            rows.table.paths,
            rows.images,
            batch_size=plan.batch_size,
            workers=plan.workers,
            progress=bar.update,
        )
