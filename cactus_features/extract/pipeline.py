"""Reader -> mapper -> writer, wired by a runner that times each stage.

* The reader yields chunks of decoded uint8 images (from memory when the scan
  kept them, else decoded by a thread pool in blocks of files), one chunk ahead
  of the model, so decoding overlaps the forward passes.
* The mapper groups a chunk's images by size, stacks them into uint8 batches
  (in pinned memory for CUDA), and runs every backbone that still needs the
  chunk (each image is decoded once for all backbones). On the CPU, batches run
  side by side, one per core with one intra-op thread each (see
  :func:`cpu_batch_pool`); on an accelerator they are queued without waiting and
  the chunk's embeddings are copied back once.
* The writer stores each backbone's finished chunk atomically.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cactus_features.backbones.frozen import FrozenBackbone
from cactus_features.data.decode import BadImageError
from cactus_features.extract.cache import PartStore
from cactus_features.extract.scan import DECODE_BLOCK, decode_many


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


def _decode_rows(pool: ThreadPoolExecutor, paths: list[Path], rows: range) -> list[np.ndarray]:
    """Decode a chunk's files, one pool task per block of files; a bad file raises."""
    blocks = [
        [paths[r] for r in rows[i : i + DECODE_BLOCK]] for i in range(0, len(rows), DECODE_BLOCK)
    ]
    out: list[np.ndarray] = []
    for block in pool.map(decode_many, blocks):
        for img, err in block:
            if img is None:  # the file changed since the scan
                raise BadImageError(err)
            out.append(img)
    return out


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
        pending = ahead.submit(_decode_rows, pool, paths, chunks[0][1]) if chunks else None
        for n, (index, _) in enumerate(chunks):
            assert pending is not None
            batch = pending.result()
            pending = (
                ahead.submit(_decode_rows, pool, paths, chunks[n + 1][1])
                if n + 1 < len(chunks)
                else None
            )
            yield index, batch


def _stack(images: list[np.ndarray], sel: list[int], pin: bool) -> torch.Tensor:
    """``uint8 [B, H, W, 3]`` of the selected images, written straight into pinned memory."""
    first = images[sel[0]]
    batch = torch.empty((len(sel), *first.shape), dtype=torch.uint8, pin_memory=pin)
    np.stack([images[i] for i in sel], out=batch.numpy())
    return batch


_CPU_POOL: ContextVar[ThreadPoolExecutor | None] = ContextVar("cpu_batch_pool", default=None)


CPU_BATCH_PIXELS = 1 << 18
"""Input pixels per CPU batch (per image side squared, times the batch size)."""


def default_batch_size(device: torch.device | str, resolution: int) -> int:
    """Images per forward pass when none is given.

    CUDA: 256. CPU: the largest power of two with at most :data:`CPU_BATCH_PIXELS`
    input pixels, between 8 and 256 (32 px: 256, 64 px: 64, 128 px: 16, 224 px:
    8), so a batch's activations stay in the caches. Measured on this project's
    2-core CPU (2 batches side by side, fp32, channels-last, model stage, img/s;
    ``benchmarks/bench_extract.py --skip-naive --resolutions R --batch-size B``):
    at 32 px 256 beats 64 by ~20 % (ResNet-50 955 vs 791, EfficientNet-B0 4013
    vs 3256, Lite0 5606 vs 4620); at 64 px 64 beats 256 (ResNet-50 259 vs 230,
    B0 1352 vs 880, Lite0 1907 vs 1265); at 128 px 16 beats 64 (B0 359 vs 248,
    Lite0 501 vs 290); at 224 px 8 or 16 beat 32 (B0 95 / 89 / 75, Lite0 112 /
    115 / 99, ResNet-50 21.2 / 20.7 / 19.4).
    """
    if torch.device(device).type != "cpu":
        return 256
    fits = max(1, CPU_BATCH_PIXELS // max(1, resolution * resolution))
    return min(256, max(8, 1 << (fits.bit_length() - 1)))


MAX_CPU_BATCH_WORKERS = 4
"""At most this many batches run at once on the CPU (each holds its activations)."""


def cpu_batch_plan(threads: int | None = None) -> tuple[int, int]:
    """``(batches at once, intra-op threads per batch)`` for ``threads`` CPU threads.

    Small convolutions do not split well over threads: each operator ends in a
    barrier, and a barrier waits for the slowest thread (on a busy machine, one
    that is not even scheduled). Whole batches side by side need no barriers.
    Measured on this project's 2-core CPU, 2 batches x 1 thread against 1 batch
    x 2 threads (quiet machine, best of 3): at 32 px, batch 64, EfficientNet-B0
    +19 %, Lite0 +35 %, ResNet-50 +20 %; at 224 px +0-8 %; with another process
    busy on the machine 2-10x, since no operator waits for a descheduled thread.
    """
    threads = threads or torch.get_num_threads()
    workers = max(1, min(threads, MAX_CPU_BATCH_WORKERS))
    return workers, max(1, threads // workers)


@contextmanager
def cpu_batch_pool(backbones: list[FrozenBackbone]) -> Iterator[ThreadPoolExecutor | None]:
    """Threads that each run whole batches with :func:`cpu_batch_plan`'s intra-op threads.

    Each batch is computed by the same number of intra-op threads on every run,
    so the embeddings are bitwise reproducible. ``None`` (batches one after the
    other) for a single thread, accelerators and compiled models. The process's
    thread count is restored on exit.
    """
    total = torch.get_num_threads()
    workers, per = cpu_batch_plan(total)
    if workers <= 1 or any(b.device.type != "cpu" or b.compiled for b in backbones):
        yield None
        return
    torch.set_num_threads(per)
    try:
        with ThreadPoolExecutor(
            workers, initializer=torch.set_num_threads, initargs=(per,)
        ) as pool:
            token = _CPU_POOL.set(pool)
            try:
                yield pool
            finally:
                _CPU_POOL.reset(token)
    finally:
        torch.set_num_threads(total)


def embed_chunk(
    backbone: FrozenBackbone,
    images: list[np.ndarray],
    batch_size: int,
    pool: ThreadPoolExecutor | None = None,
) -> np.ndarray:
    """Embed a chunk of images, batching images of equal size together.

    Images are grouped by ``(H, W)`` in order of first appearance, so the batch
    composition depends only on the chunk's content and ``batch_size``.

    Args:
        backbone: The model.
        images: The chunk's decoded images.
        batch_size: Images per forward pass.
        pool: CPU threads to run batches side by side; default: the pool of the
            enclosing :func:`cpu_batch_pool`, if any.
    """
    pool = pool or _CPU_POOL.get()
    out = np.empty((len(images), backbone.num_features), dtype=np.float32)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, img in enumerate(images):
        groups.setdefault(img.shape[:2], []).append(i)
    batches = [
        rows[start : start + batch_size]
        for rows in groups.values()
        for start in range(0, len(rows), batch_size)
    ]
    if backbone.device.type == "cpu":

        def run(sel: list[int]) -> None:
            out[sel] = backbone(_stack(images, sel, pin=False)).numpy()

        if pool is None or len(batches) < 2:
            for sel in batches:
                run(sel)
        else:
            for _ in pool.map(run, batches):
                pass
        return out
    # Accelerator: queue every batch (uint8 upload from pinned memory, model)
    # without a sync in between, then bring the chunk's embeddings back in one copy.
    pin = backbone.device.type == "cuda"
    results = [backbone(_stack(images, sel, pin=pin)) for sel in batches]
    order = [i for sel in batches for i in sel]
    out[order] = torch.cat(results).cpu().numpy()
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
    with cpu_batch_pool([j.backbone for j in jobs]):
        _run_chunks(jobs, read_chunks(paths, chunks, images, workers), batch_size, progress)
    total = time.perf_counter() - start
    for job in jobs:
        job.times.total = total if len(jobs) == 1 else job.times.read + job.times.model


def _run_chunks(
    jobs: list[Job],
    chunks: Iterator[tuple[int, list[np.ndarray]]],
    batch_size: int,
    progress: Callable[[int], None] | None,
) -> None:
    """The mapper and writer loop: embed each chunk for every job that needs it, save it."""
    waited = time.perf_counter()
    for index, chunk in chunks:
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
