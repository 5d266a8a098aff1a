"""ResNet-50 at 224 px on one CUDA GPU: images per second from the decoded dataset.

One prepared script for a device session (goal: 15,000 img/s on an H200). It
decodes the aerial-cactus training images once (the validating scan pass, kept
in memory as uint8), then measures, each the best of ``--repeats`` passes over
all images after a warm-up pass:

* ``model only``: an already normalised bf16 channels-last batch on the GPU
  through the model, the ceiling for this model, batch and settings;
* ``pipeline``: our stage-one path from decoded uint8 images (``embed_chunk``:
  stack into pinned memory, non-blocking upload of uint8, convert / resize /
  normalise on the GPU, bf16 autocast, channels-last, copy back once per chunk),
  for each batch size and with ``torch.compile`` off and on;
* ``extract_features``: the full call with its CUDA defaults into a temporary
  cache (folder read, fingerprint, decode pass, model, HDF5 write), once.

With random weights (``--weights none``, the default; speed does not depend on
them). On a machine without CUDA it prints so and exits with status 2.

Run: ``python benchmarks/bench_gpu.py`` (a few minutes, most of it compiling).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time

import torch
from _common import command_line, data_paths, machine_summary

from cactus_features import extract_features
from cactus_features.backbones.frozen import build_backbone
from cactus_features.data.readers import read_dataset
from cactus_features.extract.pipeline import embed_chunk
from cactus_features.extract.scan import scan_images


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed_passes(fn, repeats: int) -> float:
    """Best seconds of ``repeats`` calls of ``fn`` (each synchronised)."""
    best = float("inf")
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best


def build_parser() -> argparse.ArgumentParser:
    """The command-line options (also read by ``tests/test_docs.py``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="aerial-cactus folder (train/, train.csv)")
    ap.add_argument("--backbone", default="resnet50")
    ap.add_argument("--resolution", type=int, default=224)
    ap.add_argument("--weights", default="none")
    ap.add_argument("--batch-sizes", default="256,512")
    ap.add_argument("--chunk-size", type=int, default=2048)
    ap.add_argument("--compile", choices=["off", "on", "both"], default="both")
    ap.add_argument("--cudnn-benchmark", action="store_true", help="(not bitwise reproducible)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-extract", action="store_true", help="skip the extract_features run")
    ap.add_argument("--limit", type=int, default=None, help="first N images only")
    ap.add_argument("--device", default="cuda", help="cpu only to smoke-test this script")
    return ap


def main() -> int:
    args = build_parser().parse_args()
    print(f"command: {command_line()}")
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA GPU on this machine: nothing to measure (run this on a GPU machine)")
        return 2
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    gpu = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "none"
    print(f"machine: {machine_summary()}; GPU {gpu}")
    img_dir, csv_path = data_paths(args.data)
    table = read_dataset(img_dir, csv_path, limit=args.limit)
    t0 = time.perf_counter()
    scan = scan_images(table)
    print(f"decode pass: {len(table)} images in {time.perf_counter() - t0:.1f}s")
    images = scan.images
    assert images is not None, "decoded images did not fit the keep budget"
    n = len(images)
    chunks = [images[i : i + args.chunk_size] for i in range(0, n, args.chunk_size)]
    name = f"{args.backbone}@{args.resolution}"
    rows = []

    # Model-only ceiling.
    bb = build_backbone(
        args.backbone,
        weights=args.weights,
        resolution=args.resolution,
        precision="bf16",
        channels_last=True,
        device=dev,
    )
    flops = bb.count_flops()
    for bs in [int(b) for b in args.batch_sizes.split(",")]:
        x = torch.randn(bs, 3, args.resolution, args.resolution, device=dev)
        x = x.contiguous(memory_format=torch.channels_last)

        def model_only(x=x, bs=bs):
            with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.bfloat16):
                for _ in range(max(1, n // bs)):
                    bb.model(x)

        model_only()
        s = timed_passes(model_only, args.repeats)
        rows.append(("model only", bs, "off", max(1, n // bs) * bs / s))
        print(f"  {rows[-1]}", flush=True)

    # Our pipeline from decoded uint8 images.
    modes = {"off": [False], "on": [True], "both": [False, True]}[args.compile]
    for comp in modes:
        bb = build_backbone(
            args.backbone,
            weights=args.weights,
            resolution=args.resolution,
            precision="bf16",
            channels_last=True,
            device=dev,
            compile=comp,
        )
        for bs in [int(b) for b in args.batch_sizes.split(",")]:

            def one_pass(bb=bb, bs=bs):
                for chunk in chunks:
                    embed_chunk(bb, chunk, bs)

            t0 = time.perf_counter()
            one_pass()  # warm-up (compiles when asked)
            warm = time.perf_counter() - t0
            s = timed_passes(one_pass, args.repeats)
            rows.append(("pipeline", bs, "on" if comp else "off", n / s))
            print(f"  {rows[-1]} (warm-up pass {warm:.1f}s)", flush=True)

    if not args.skip_extract:
        cache = tempfile.mkdtemp(prefix="bench_gpu_")
        t0 = time.perf_counter()
        (fs,) = extract_features(
            img_dir,
            name,
            labels=csv_path,
            weights=args.weights,
            limit=args.limit,
            device=args.device,
            cache_dir=cache,
            quiet=True,
        )
        s = time.perf_counter() - t0
        t = fs.attrs["timings"]
        shutil.rmtree(cache, ignore_errors=True)
        batch = fs.attrs["model_info"]["batch_size"]
        rows.append(("extract_features defaults", batch, "off", n / s))
        print(
            f"  extract_features: {n / s:.0f} img/s end to end ({s:.1f}s; model stage "
            f"{t['model_seconds']:.1f}s = {n / t['model_seconds']:.0f} img/s; "
            f"decode pass {t.get('scan_seconds')}s; fingerprint {t.get('fingerprint_seconds')}s)"
        )

    print()
    print(f"{name}, bf16 autocast, channels-last, {n} images, {flops / 1e9:.2f} GFLOP/img")
    print(f"{'what':28s} {'batch':>6s} {'compile':>8s} {'img/s':>10s} {'TFLOP/s':>8s}")
    for what, bs, comp, rate in rows:
        print(f"{what:28s} {bs:6d} {comp:>8s} {rate:10.0f} {rate * flops / 1e12:8.1f}")
    best = max(r[3] for r in rows if r[0] == "pipeline")
    print(f"best pipeline: {best:.0f} img/s (goal 15000: {'met' if best >= 15000 else 'not met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
