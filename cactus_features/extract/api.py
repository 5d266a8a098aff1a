"""``extract_features``: stage one, from an image folder to cached embeddings."""

from __future__ import annotations

import logging
import platform
import shutil
import time
import warnings
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np
import torch
import torchvision
from tqdm.auto import tqdm

from cactus_features._version import __version__
from cactus_features.backbones.frozen import build_backbone, resolve_device, resolve_precision
from cactus_features.backbones.registry import get_spec
from cactus_features.backbones.weights import describe_weights
from cactus_features.data.readers import read_dataset
from cactus_features.data.split import SplitConfig, stratified_split
from cactus_features.data.table import ImageTable
from cactus_features.errors import CacheError, ConfigError, DataError, UserError
from cactus_features.extract.cache import (
    PartStore,
    entry_lock,
    entry_path,
    io_message,
    is_complete,
    key_hash,
    write_entry,
)
from cactus_features.extract.distributed import (
    DistContext,
    init_distributed,
    launched_by_torchrun,
    rank_device,
)
from cactus_features.extract.health import HealthStats
from cactus_features.extract.pipeline import Job, StageTimes, default_batch_size, run_jobs
from cactus_features.extract.scan import (
    ScanResult,
    bad_images_error,
    dataset_fingerprint,
    default_workers,
    file_digests,
    scan_images,
)
from cactus_features.features import SPLIT_NONE, FeatureSet, load_features

log = logging.getLogger("cactus_features")


class CollapsedFeaturesWarning(UserWarning):
    """The extracted features are (almost) constant: a head on them will be at chance."""


@dataclass(frozen=True)
class BackboneRequest:
    """One backbone to extract, with its own weights and resolution.

    Attributes:
        name: Registry name.
        weights: Weights name (``DEFAULT``, ``IMAGENET1K_V2``, ...) or ``none``.
        weights_file: Local state dict to load instead.
        resolution: Input side; ``None`` means the weights' training resolution.
    """

    name: str
    weights: str | None = "DEFAULT"
    weights_file: str | None = None
    resolution: int | None = None

    @classmethod
    def parse(
        cls,
        text: str | BackboneRequest,
        *,
        weights: str | None = "DEFAULT",
        weights_file: str | None = None,
        resolution: int | None = None,
    ) -> BackboneRequest:
        """Parse ``name[@resolution]``, e.g. ``efficientnet_lite0@128``; others from defaults."""
        if isinstance(text, BackboneRequest):
            return text
        name, _, res = str(text).partition("@")
        if res:
            try:
                resolution = int(res.removesuffix("px"))
            except ValueError:
                raise ConfigError(
                    f"backbone {text!r}: resolution after '@' must be a number"
                ) from None
        return cls(name.strip(), weights, weights_file, resolution)


def _versions() -> dict[str, str]:
    return {
        "cactus_features": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": np.__version__,
        "h5py": h5py.__version__,
        "python": platform.python_version(),
    }


def extract_features(
    data: str | Path | ImageTable,
    backbones: str | BackboneRequest | list[str | BackboneRequest],
    *,
    labels: str | Path | None = None,
    layout: str = "auto",
    id_column: str = "id",
    label_column: str = "has_cactus",
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
        label_column: CSV label column.
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

    Raises:
        DataError: Bad dataset. ConfigError: bad option. WeightsError: weights
        unavailable. CacheError: cache folder unusable or busy.
    """
    t_start = time.perf_counter()
    if distributed is None:
        distributed = launched_by_torchrun()
    ctx = init_distributed(device) if distributed else DistContext()
    device = rank_device(ctx, device)
    quiet = quiet or not ctx.is_main
    if isinstance(backbones, str | BackboneRequest):
        backbones = [backbones]
    if not backbones:
        raise ConfigError("no backbone given; pass at least one --backbone")
    if dtype not in ("float32", "float16"):
        raise ConfigError(f"--dtype {dtype!r}: use float32 or float16")
    for option, value in (
        ("--chunk-size", chunk_size),
        ("--batch-size", batch_size),
        ("--workers", workers),
    ):
        if value is not None and value < 1:
            raise ConfigError(f"{option} {value}: must be at least 1")
    requests = [
        BackboneRequest.parse(b, weights=weights, weights_file=weights_file, resolution=resolution)
        for b in backbones
    ]
    table = (
        data
        if isinstance(data, ImageTable)
        else read_dataset(
            data,
            labels,
            layout=layout,
            id_column=id_column,
            label_column=label_column,
            classes=classes,
            limit=limit,
        )
    )
    for message in table.warnings:
        log.warning("warning: %s", message)
    split_config = split or SplitConfig()
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    if workers is None:
        workers = default_workers()
    cache_dir = Path(cache_dir)

    t0 = time.perf_counter()
    fp = _fingerprint_sharded(table, ctx, fingerprint)
    fingerprint_seconds = time.perf_counter() - t0
    dataset_dir = f"{table.name}-{fp[:8]}"

    keys, paths = [], []
    for req in requests:
        spec = get_spec(req.name)
        if req.resolution is not None and req.resolution < 1:
            raise ConfigError(f"{req.name}: resolution {req.resolution} must be at least 1 px")
        res = int(req.resolution if req.resolution is not None else spec.default_resolution)
        w_label, w_sha = describe_weights(req.name, req.weights, req.weights_file)
        key = {
            "backbone": req.name,
            "weights": w_label,
            "weights_sha256": w_sha,
            "init_seed": 0 if w_label == "random init" else None,
            "resolution": res,
            "normalization": normalization,
            "precision": prec,
            "dtype": dtype,
            "dataset_fingerprint": fp,
            "fingerprint_mode": fingerprint,
            "split": split_config.as_dict(),
            "skip_bad_images": bool(skip_bad_images),
            "name": f"{req.name}@{res}",
        }
        keys.append(key)
        paths.append(entry_path(cache_dir, dataset_dir, key))

    if batch_size is None:
        batch_size = default_batch_size(dev, max(k["resolution"] for k in keys))
    misses = [i for i, p in enumerate(paths) if not is_complete(p)]
    for i, p in enumerate(paths):
        if i not in misses and ctx.is_main:
            log.info("cache hit: %s (%s), no model run", keys[i]["name"], p)
            _remove_leftover_parts(p)
    if misses:
        try:
            (cache_dir / dataset_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(io_message(cache_dir, exc)) from None
        _extract_missing(
            table,
            [requests[i] for i in misses],
            [keys[i] for i in misses],
            [paths[i] for i in misses],
            split_config=split_config,
            normalization=normalization,
            precision=prec,
            channels_last=channels_last,
            batch_size=batch_size,
            chunk_size=chunk_size,
            device=dev,
            skip_bad_images=skip_bad_images,
            dtype=dtype,
            workers=workers,
            lock_timeout=lock_timeout,
            quiet=quiet,
            extra_seconds={"fingerprint_seconds": fingerprint_seconds},
            ctx=ctx,
            compile=compile,
        )
    ctx.barrier()
    log.debug("extract_features took %.2fs", time.perf_counter() - t_start)
    return [load_features(p) for p in paths]


def _fingerprint_sharded(table: ImageTable, ctx: DistContext, mode: str) -> str:
    """The dataset fingerprint; under torchrun each rank hashes a contiguous share of
    the files and all gather the per-file digests (the result equals one process's)."""
    if not ctx.active:
        return dataset_fingerprint(table, mode)
    n = len(table)
    lo, hi = n * ctx.rank // ctx.world_size, n * (ctx.rank + 1) // ctx.world_size
    shares = ctx.all_gather(file_digests(table.paths[lo:hi], mode))
    return dataset_fingerprint(table, mode, digests=[d for share in shares for d in share])


def _scan_sharded(
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


def _extract_missing(
    table: ImageTable,
    requests: list[BackboneRequest],
    keys: list[dict],
    paths: list[Path],
    *,
    split_config: SplitConfig,
    normalization: str,
    precision: str,
    channels_last: bool | None,
    batch_size: int,
    chunk_size: int,
    device: torch.device,
    skip_bad_images: bool,
    dtype: str,
    workers: int,
    lock_timeout: float | None,
    quiet: bool,
    extra_seconds: dict[str, float],
    ctx: DistContext,
    compile: bool = False,
) -> None:
    """Validate every image, then run the backbones whose entries are missing.

    Under torchrun, rank 0 takes the entry locks and prepares the parts folders,
    every rank computes the chunks it owns, and rank 0 assembles the final files.
    """
    scan, scan_seconds = _scan_sharded(table, ctx, chunk_size, workers, quiet)
    keep = np.ones(len(table), dtype=bool)
    if scan.bad:
        if not skip_bad_images:
            raise bad_images_error(scan.bad)
        bad_ids = set(scan.bad)
        keep = np.array([str(i) not in bad_ids for i in table.ids])
        if ctx.is_main:
            log.warning(
                "warning: skipping %d undecodable images: %s", len(bad_ids), sorted(bad_ids)[:5]
            )
    rows = np.flatnonzero(keep)
    if len(rows) == 0:
        raise DataError("no decodable images left; check the data folder")
    table = table.subset(rows)
    images = None if scan.images is None else [scan.images[r] for r in rows]
    if table.labelled:
        split = stratified_split(table.labels, split_config, class_names=table.class_names)
        train_rows = rows[split == 0]
    else:
        split = np.full(len(table), SPLIT_NONE, dtype=np.uint8)
        train_rows = rows
    mean, std = scan.channel_stats(train_rows)

    with ExitStack() as stack:
        # Rank 0 locks every entry (in a fixed order) and prepares its parts folder;
        # the other ranks learn the outcome, including any error, by broadcast.
        order = sorted(range(len(paths)), key=lambda i: str(paths[i]))
        outcome: tuple[list[int], str | None] = ([], None)
        if ctx.is_main:
            try:
                todo_entries = []
                for i in order:
                    stack.enter_context(entry_lock(paths[i], timeout=lock_timeout))
                    if is_complete(paths[i]):
                        _parts(paths[i], keys[i], len(table), chunk_size, batch_size).remove()
                        log.info(
                            "cache hit: %s (%s), finished by another process",
                            keys[i]["name"],
                            paths[i],
                        )
                        continue
                    cl = (
                        channels_last
                        if channels_last is not None
                        else device.type in ("cuda", "cpu")
                    )
                    _parts(
                        paths[i], keys[i], len(table), chunk_size, batch_size, cl, compile
                    ).open()
                    todo_entries.append(i)
                outcome = (todo_entries, None)
            except UserError as exc:
                outcome = ([], f"{type(exc).__name__}\t{exc}")
                if not ctx.active:
                    raise
        todo_entries, error = ctx.broadcast(outcome)
        if error is not None:
            kind, _, message = error.partition("\t")
            raise (CacheError if kind == "CacheError" else DataError)(message)

        jobs: list[tuple[Job, dict, Path, dict]] = []
        for i in todo_entries:
            req, key, path = requests[i], keys[i], paths[i]
            t_build = time.perf_counter()
            backbone = build_backbone(
                req.name,
                weights=req.weights,
                weights_file=req.weights_file,
                resolution=key["resolution"],
                normalization=normalization,
                dataset_stats=(tuple(mean), tuple(std)),
                precision=precision,
                channels_last=channels_last,
                device=device,
                compile=compile,
            )
            build_seconds = time.perf_counter() - t_build
            parts = _parts(
                path, key, len(table), chunk_size, batch_size, backbone.channels_last, compile
            )
            done = parts.done(backbone.num_features)
            todo = {c for c in range(parts.n_chunks) if ctx.owns(c)} - done
            if done and ctx.is_main:
                log.info(
                    "resuming %s: %d of %d chunks already done",
                    key["name"],
                    len(done),
                    parts.n_chunks,
                )
            info = {
                "params": backbone.num_params(),
                "gflops": round(backbone.count_flops() / 1e9, 4),
                "resolution": backbone.resolution,
                "dim": backbone.num_features,
                "device": str(backbone.device),
                "precision": precision,
                "channels_last": backbone.channels_last,
                "compiled": backbone.compiled,
                "batch_size": batch_size,
                "chunk_size": chunk_size,
                "ranks": ctx.world_size,
                "build_seconds": round(build_seconds, 4),
                "resumed_chunks": len(done),
                "weights_file": str(Path(req.weights_file).resolve()) if req.weights_file else "",
                "mean": list(backbone.mean.flatten().tolist()),
                "std": list(backbone.std.flatten().tolist()),
            }
            jobs.append((Job(backbone, parts, todo), key, path, info))

        needed = {c for j, *_ in jobs for c in j.todo}
        if needed:
            names = ", ".join(k["name"] for _, k, _, _ in jobs)
            n_img = sum(len(jobs[0][0].parts.chunk_rows(c)) for c in needed)
            with tqdm(total=n_img, desc=f"extracting {names}", unit="img", disable=quiet) as bar:
                run_jobs(
                    [j for j, *_ in jobs],
                    table.paths,
                    images,
                    batch_size=batch_size,
                    workers=workers,
                    progress=bar.update,
                )
        all_times = ctx.all_gather([j.times.as_dict() for j, *_ in jobs])
        ctx.barrier()
        if not ctx.is_main:
            return
        for n, (job, key, path, info) in enumerate(jobs):
            if ctx.active:
                job.times = _merge_times([times[n] for times in all_times])
            _finish(
                job,
                key,
                path,
                info,
                table=table,
                split=split,
                split_config=split_config,
                dataset_stats={"mean": mean, "std": std, "split": "train"},
                dtype=dtype,
                skipped=scan.bad,
                seconds={**extra_seconds, "scan_seconds": round(scan_seconds, 4)},
            )


def _remove_leftover_parts(path: Path) -> None:
    """Delete a parts folder that a kill after the final rename left beside a finished entry."""
    folder = path.with_suffix(".parts")
    if not folder.is_dir():
        return
    try:
        with entry_lock(path, timeout=0):
            shutil.rmtree(folder, ignore_errors=True)
    except CacheError:
        pass  # another process holds the entry; it cleans up itself


def _parts(
    path: Path,
    key: dict,
    n_rows: int,
    chunk_size: int,
    batch_size: int,
    channels_last: bool = True,
    compiled: bool = False,
) -> PartStore:
    """The parts store of an entry; a resume needs the same chunking, batching and layout."""
    manifest = {
        "key_hash": key_hash(key),
        "n_rows": n_rows,
        "chunk_size": chunk_size,
        "batch_size": batch_size,
        "channels_last": bool(channels_last),
        "compiled": bool(compiled),
    }
    return PartStore(path, n_rows, chunk_size, manifest)


def _merge_times(per_rank: list[dict[str, float]]) -> StageTimes:
    """Timings of a multi-process run: summed work, wall time of the slowest rank."""
    merged = StageTimes(
        read=sum(t["read_seconds"] for t in per_rank),
        model=sum(t["model_seconds"] for t in per_rank),
        write=sum(t["write_seconds"] for t in per_rank),
        total=max(t["seconds"] for t in per_rank),
        images=int(sum(t["images"] for t in per_rank)),
    )
    return merged


def _finish(
    job: Job,
    key: dict,
    path: Path,
    info: dict,
    *,
    table: ImageTable,
    split: np.ndarray,
    split_config: SplitConfig,
    dataset_stats: dict,
    dtype: str,
    skipped: dict[str, str],
    seconds: dict[str, float],
) -> None:
    """Check the finished embeddings and write the final cache file.

    Two streaming passes over the chunk files (one chunk in memory at a time):
    finiteness and health statistics, then the copy into HDF5.
    """
    parts = job.parts
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
            f"{key['name']}: {len(bad)} embeddings are not finite (NaN/inf), first ids: "
            f"{', '.join(bad[:5])}; try --precision fp32 or check those images"
        )
    if stats is None:
        raise DataError(f"{key['name']}: no embeddings to write")
    dim = stats.mean.shape[0]
    health = stats.report()
    timings = {**job.times.as_dict(), **seconds}
    if health.collapsed:
        log.warning("WARNING %s: %s", key["name"], health.message)
        warnings.warn(f"{key['name']}: {health.message}", CollapsedFeaturesWarning, stacklevel=3)
    else:
        log.info("%s: %s", key["name"], health.message)
    write_entry(
        path,
        embeddings=parts.blocks(dim),
        ids=table.ids,
        labels=table.labels,
        split=split,
        key=key,
        class_names=table.class_names,
        json_attrs={
            "timings": timings,
            "health": health.as_dict(),
            "model_info": info,
            "split_config": split_config.as_dict(),
            "dataset_stats": dataset_stats,
            "skipped": skipped,
            "versions": _versions(),
            "source": table.source,
        },
        plain_attrs={
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
        },
        dtype=dtype,
    )
    parts.remove()
    log.info("wrote %s (%d x %d, %.1f img/s)", path, len(table), dim, timings["images_per_second"])
