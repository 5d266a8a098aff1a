"""Reader -> mapper -> writer, wired by a runner that times each stage.

* The reader yields chunks of decoded uint8 images (from memory when the scan
  kept them, else decoded by a thread pool), one chunk ahead of the model.
* The mapper groups a chunk's images by size, stacks them into uint8 batches,
  and runs every backbone that still needs the chunk (each image is decoded
  once for all backbones).
* The writer stores each backbone's finished chunk atomically.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cactus_features.backbones.frozen import FrozenBackbone
from cactus_features.data.decode import decode_image
from cactus_features.extract.cache import PartStore


@dataclass
class StageTimes:
    """Seconds spent in each stage (reader wait, model, writer) and in total."""

    read: float = 0.0
    model: float = 0.0
    write: float = 0.0
    total: float = 0.0
    images: int = 0

    def as_dict(self) -> dict[str, float]:
        """Plain dict, with images per second of the model stage and overall."""
        return {
            "read_seconds": round(self.read, 4),
            "model_seconds": round(self.model, 4),
            "write_seconds": round(self.write, 4),
            "seconds": round(self.total, 4),
            "images": self.images,
            "images_per_second": round(self.images / self.total, 2) if self.total else 0.0,
        }


@dataclass
class Job:
    """One backbone's extraction: the model, where chunks go, which remain."""

    backbone: FrozenBackbone
    parts: PartStore
    todo: set[int]
    times: StageTimes = field(default_factory=StageTimes)


def read_chunks(
    paths: list[Path],
    chunks: list[tuple[int, range]],
    images: list[np.ndarray] | None,
    workers: int,
) -> Iterator[tuple[int, list[np.ndarray]]]:
    """Yield ``(chunk index, decoded images)``, decoding the next chunk in the background."""
    if images is not None:
        for index, rows in chunks:
            yield index, [images[r] for r in rows]
        return
    with ThreadPoolExecutor(workers) as pool, ThreadPoolExecutor(1) as ahead:

        def decode(rows: range) -> list[np.ndarray]:
            return list(pool.map(decode_image, [paths[r] for r in rows]))

        pending = ahead.submit(decode, chunks[0][1]) if chunks else None
        for n, (index, _) in enumerate(chunks):
            assert pending is not None
            batch = pending.result()
            pending = ahead.submit(decode, chunks[n + 1][1]) if n + 1 < len(chunks) else None
            yield index, batch


def embed_chunk(backbone: FrozenBackbone, images: list[np.ndarray], batch_size: int) -> np.ndarray:
    """Embed a chunk of images, batching images of equal size together.

    Images are grouped by ``(H, W)`` in order of first appearance, so the batch
    composition depends only on the chunk's content and ``batch_size``.
    """
    out = np.empty((len(images), backbone.num_features), dtype=np.float32)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, img in enumerate(images):
        groups.setdefault(img.shape[:2], []).append(i)
    pin = backbone.device.type == "cuda"
    for rows in groups.values():
        for start in range(0, len(rows), batch_size):
            sel = rows[start : start + batch_size]
            batch = torch.from_numpy(np.stack([images[i] for i in sel]))
            if pin:
                batch = batch.pin_memory()
            out[sel] = backbone(batch).cpu().numpy()
    return out


def run_jobs(
    jobs: list[Job],
    paths: list[Path],
    images: list[np.ndarray] | None,
    *,
    batch_size: int,
    workers: int,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Extract every chunk some job still needs; each chunk is decoded once for all jobs."""
    if not jobs:
        return
    parts = jobs[0].parts
    needed = sorted(set().union(*(j.todo for j in jobs)))
    chunks = [(i, parts.chunk_rows(i)) for i in needed]
    start = time.perf_counter()
    waited = time.perf_counter()
    for index, chunk in read_chunks(paths, chunks, images, workers):
        read_time = time.perf_counter() - waited
        for job in jobs:
            if index not in job.todo:
                continue
            job.times.read += read_time
            t0 = time.perf_counter()
            emb = embed_chunk(job.backbone, chunk, batch_size)
            t1 = time.perf_counter()
            job.parts.save(index, emb)
            t2 = time.perf_counter()
            job.times.model += t1 - t0
            job.times.write += t2 - t1
            job.times.images += len(chunk)
            job.todo.discard(index)
        if progress is not None:
            progress(len(chunk))
        waited = time.perf_counter()
    total = time.perf_counter() - start
    for job in jobs:
        job.times.total = total if len(jobs) == 1 else job.times.read + job.times.model
