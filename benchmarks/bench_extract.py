"""Stage one throughput: our extraction vs the naive pipeline vs the machine's compute limit.

For each backbone and resolution it measures, on the aerial-cactus images:

(a) ``extract_features`` with its defaults into a fresh temporary cache, end to
    end (folder read, fingerprint, decode/validation pass, model, cache write),
    and its model stage alone (``model_seconds`` of the stored timings);
(b) the pipeline a report would write: a folder dataset with PIL decode,
    ``ToTensor`` + ``Resize`` + ``Normalize`` per image, ``DataLoader(batch_size=32)``
    and the plain fp32 torchvision model (eager, NCHW, batch norms unfolded).
    The resize runs on the float tensor, the same bilinear filter as ours; the
    usual PIL-first ``Resize`` rounds upscaled pixels to uint8, which moves the
    embeddings of these 32 px images far more than any pipeline difference, so
    its parity is printed separately on 64 images (see ``naive_transform``);
(c) the compute limit: ``FrozenBackbone.count_flops()`` per image divided into
    the FLOP/s of a large ``torch.mm`` measured in the same run (fp32 and bf16).

Every timing is the best of ``--repeats`` runs (other processes on a shared
machine only ever slow a run down). It then checks that (a) and (b) give the
same embeddings: per-image cosine similarity (also after subtracting the mean
embedding, which random-init networks make necessary: their embeddings of
*different* images already have cosine ~0.99) and relative L2 error; and, when
(b) covered the same images, the downstream test AUC of the library's default
linear head trained on each (same split; tolerance 0.001).

ResNet-50 and EfficientNet-B0 have no pretrained weights offline, so they run
with seeded random weights whose batch-norm statistics are calibrated on 64
images of the dataset (saved to a temporary ``--weights-file`` used by both
pipelines); plain random init gives EfficientNet-B0 embeddings of ~1e-15, which
would make any parity check meaningless. EfficientNet-Lite0 uses its packaged
ImageNet weights.

Run ``python benchmarks/bench_extract.py`` (about 12 minutes on 2 cores);
``--full`` uses all 17,500 images at every resolution.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from _common import (
    best_of,
    command_line,
    cpu_busy_share,
    data_paths,
    machine_summary,
    matmul_flops,
    print_table,
)
from PIL import Image
from sklearn.metrics import roc_auc_score
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from cactus_features import extract_features, train_head
from cactus_features.backbones.frozen import build_backbone
from cactus_features.backbones.registry import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    build_architecture,
    strip_classifier,
)
from cactus_features.backbones.weights import load_weights
from cactus_features.data.readers import IMAGE_SUFFIXES
from cactus_features.extract.pipeline import default_batch_size
from cactus_features.features import FeatureSet

PRETRAINED_OFFLINE = {"efficientnet_lite0"}


# ----------------------------------------------------------------------------- (b) naive


class NaiveFolder(Dataset):
    """An ImageFolder-style dataset over the Kaggle layout: one folder walk, PIL per item."""

    def __init__(self, img_dir: Path, csv_path: Path, transform, limit: int | None) -> None:
        with open(csv_path, newline="") as fh:
            labels = {row["id"]: int(row["has_cactus"]) for row in csv.DictReader(fh)}
        names = sorted(
            e.name
            for e in os.scandir(img_dir)
            if e.is_file() and Path(e.name).suffix.lower() in IMAGE_SUFFIXES and e.name in labels
        )
        self.names = names[:limit] if limit else names
        self.img_dir, self.labels, self.transform = img_dir, labels, transform

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int):
        with Image.open(self.img_dir / self.names[i]) as im:
            img = im.convert("RGB")
        return self.transform(img), self.labels[self.names[i]]


def naive_transform(res: int, pil_resize: bool = False) -> transforms.Compose:
    """Per-image pre-processing of the naive pipeline.

    By default the image is resized as a float tensor (``ToTensor`` then
    ``Resize(antialias=True)``), which is the same bilinear filter our pipeline
    applies. ``pil_resize`` resizes the PIL image first, as many reports do: PIL
    rounds the upscaled pixels to uint8, and on 32 px images upscaled 7x that
    rounding (at most 0.5/255) leaves steps that the networks respond to
    strongly, so the embeddings move by up to ~50 % (relative L2) although the
    inputs differ by less than 1/255.
    """
    steps = [transforms.ToTensor(), transforms.Resize((res, res), antialias=True)]
    if pil_resize:
        steps = [transforms.Resize((res, res)), transforms.ToTensor()]
    return transforms.Compose([*steps, transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def plain_model(name: str, weights: str | None, weights_file: str | None) -> torch.nn.Module:
    """The torchvision model as a report would use it: fp32, NCHW, eager, no folding."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_architecture(name)
    load_weights(model, name, weights, weights_file)
    return strip_classifier(model).eval()


def run_naive(
    img_dir: Path,
    csv_path: Path,
    name: str,
    res: int,
    weights: str | None,
    weights_file: str | None,
    limit: int | None,
    pil_resize: bool = False,
) -> tuple[list[str], np.ndarray]:
    """Embed with the naive pipeline; returns ``(ids, embeddings)``."""
    ds = NaiveFolder(img_dir, csv_path, naive_transform(res, pil_resize), limit)
    model = plain_model(name, weights, weights_file)
    out = []
    with torch.inference_mode():
        for x, _ in DataLoader(ds, batch_size=32, shuffle=False):
            out.append(model(x).flatten(1))
    return ds.names, torch.cat(out).numpy()


# ----------------------------------------------------------------------------- weights


def calibrated_weights(name: str, res: int, img_dir: Path, csv_path: Path, folder: Path) -> str:
    """Seeded random weights with batch-norm statistics measured on 64 images at ``res``."""
    path = folder / f"{name}-{res}px-bncal.pth"
    if path.exists():
        return str(path)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_architecture(name)
    ds = NaiveFolder(img_dir, csv_path, naive_transform(res), 64)
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average: exactly this batch's statistics
    model.train()
    with torch.no_grad():
        model(x)
    torch.save(model.state_dict(), path)
    return str(path)


# ----------------------------------------------------------------------------- parity


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    both_zero = (na == 0) & (nb == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = (a * b).sum(1) / (na * nb)
    c[both_zero] = 1.0  # two zero vectors: identical
    return np.nan_to_num(c, nan=0.0)


def parity(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """How close two aligned ``[N, D]`` embedding sets are (a: ours, b: reference)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    mu = b.mean(0)
    nb = np.linalg.norm(b, axis=1)
    rel = np.linalg.norm(a - b, axis=1) / np.maximum(nb, 1e-30)
    rel[(nb == 0) & (np.linalg.norm(a, axis=1) == 0)] = 0.0
    perm = np.roll(np.arange(len(b)), 1)
    return {
        "cos_min": float(_cos(a, b).min()),
        "cos_centered_min": float(_cos(a - mu, b - mu).min()),
        "rel_l2_max": float(rel.max()),
        "zero_rows": int((nb == 0).sum()),
        "other_image_cos": float(_cos(b, b[perm]).mean()),
        "other_image_cos_centered": float(_cos(b - mu, b[perm] - mu).mean()),
    }


def downstream_test_auc(fs: FeatureSet, embeddings: np.ndarray) -> float:
    """Test AUC of the library's default linear head (500 epochs) on ``embeddings``.

    The rows are ``fs``'s (same ids, labels and split), so two embedding sets of
    the same images are scored on exactly the same test images.
    """
    other = replace(fs, path=None, _embeddings=np.asarray(embeddings, dtype=np.float32))
    pred = train_head(other, save=False).predictions
    test = pred.split == 2
    return float(roc_auc_score(pred.label[test], pred.score[test]))


# ----------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    """The command-line options (also read by ``tests/test_docs.py``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="aerial-cactus folder (train/, train.csv)")
    ap.add_argument("--backbones", default="resnet50,efficientnet_b0,efficientnet_lite0")
    ap.add_argument("--resolutions", default="32,224")
    ap.add_argument("--n32", type=int, default=17500, help="images at resolutions <= 64")
    ap.add_argument("--n224", type=int, default=768, help="images at larger resolutions")
    ap.add_argument("--repeats", type=int, default=2, help="timing = best of this many runs")
    ap.add_argument("--precision", default=None, help="pass to (a) instead of its default")
    ap.add_argument(
        "--batch-size",
        default=None,
        help="pass to (a): a number, or 'auto' for pipeline.default_batch_size(cpu, resolution)",
    )
    ap.add_argument("--compile", action="store_true", help="pass compile=True to (a)")
    ap.add_argument("--full", action="store_true", help="all images at every resolution")
    ap.add_argument("--skip-naive", action="store_true", help="only (a) and (c)")
    return ap


def main() -> None:
    args = build_parser().parse_args()
    img_dir, csv_path = data_paths(args.data)
    logging.getLogger("cactus_features").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")  # collapsed-feature warnings of random-init models at 32 px

    print(f"command: {command_line()}")
    print(f"machine: {machine_summary()}")
    busy = cpu_busy_share()
    print(f"CPU busy before start (other processes): {busy:.0%}" if busy is not None else "")
    t_start = time.perf_counter()
    peak = {"fp32": matmul_flops(torch.float32), "bf16": matmul_flops(torch.bfloat16)}

    rows, details = [], []
    work = tempfile.mkdtemp(prefix="bench_extract_")
    try:
        _measure(args, img_dir, csv_path, work, peak, rows, details, t_start)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _report(args, peak, rows, details, t_start)


def _measure(args, img_dir, csv_path, work, peak, rows, details, t_start) -> None:
    """Measure (a), (b) and the per-model part of (c) for every backbone and resolution."""
    for res in [int(r) for r in args.resolutions.split(",")]:
        n = None if args.full else (args.n32 if res <= 64 else args.n224)
        for name in args.backbones.split(","):
            if name in PRETRAINED_OFFLINE:
                weights, wfile = "DEFAULT", None
            else:
                weights, wfile = None, calibrated_weights(name, res, img_dir, csv_path, Path(work))
            probe = build_backbone(name, weights=weights, weights_file=wfile, resolution=res)
            flops = probe.count_flops()
            del probe

            kw = {} if args.precision is None else {"precision": args.precision}
            if args.batch_size == "auto":
                kw["batch_size"] = default_batch_size("cpu", res)
            elif args.batch_size:
                kw["batch_size"] = int(args.batch_size)
            if args.compile:
                kw["compile"] = True
            runs = []

            def ours(kw=kw, name=name, res=res, n=n, weights=weights, wfile=wfile, runs=runs):
                cache = Path(tempfile.mkdtemp(dir=work))
                (fs,) = extract_features(
                    img_dir,
                    f"{name}@{res}",
                    labels=csv_path,
                    weights=weights or "none",
                    weights_file=wfile,
                    limit=n,
                    cache_dir=cache,
                    quiet=True,
                    **kw,
                )
                runs.append(fs)
                return fs

            e2e_s, fs = best_of(ours, args.repeats)
            emb_a = fs.embeddings
            same = all(np.array_equal(r.embeddings, emb_a) for r in runs)
            for r in runs:  # embeddings are in memory now; keep the disk use bounded
                shutil.rmtree(r.path.parent.parent, ignore_errors=True)
            t = fs.attrs["timings"]
            model_s = min(r.attrs["timings"]["model_seconds"] for r in runs)
            n_img = len(fs)
            prec = fs.key["precision"]
            a_e2e, a_model = n_img / e2e_s, n_img / model_s
            row = [
                f"{name}@{res}",
                str(n_img),
                prec
                + ("+cl" if fs.attrs["model_info"].get("channels_last") else "")
                + f" b{fs.attrs['model_info']['batch_size']}",
                f"{a_e2e:.1f}",
                f"{a_model:.1f}",
            ]
            detail = {
                "name": f"{name}@{res}",
                "timings": {k: t[k] for k in ("read_seconds", "model_seconds", "write_seconds")},
                "scan_seconds": t.get("scan_seconds"),
                "fingerprint_seconds": t.get("fingerprint_seconds"),
                "gflops": flops / 1e9,
                "bitwise_repeat": same,
            }
            if not args.skip_naive:
                b_s, (ids_b, emb_b) = best_of(
                    lambda name=name, res=res, n=n, weights=weights, wfile=wfile: run_naive(
                        img_dir, csv_path, name, res, weights, wfile, n
                    ),
                    args.repeats,
                )
                index = {str(i): k for k, i in enumerate(fs.ids)}
                order = np.array([index[i] for i in ids_b])
                par = parity(emb_a[order], emb_b)
                b_rate = len(ids_b) / b_s
                row += [f"{b_rate:.1f}", f"{a_e2e / b_rate:.2f}x"]
                if len(ids_b) == n_img and (fs.split == 2).sum() >= 20:
                    emb_b_in_a_order = np.empty_like(emb_b)
                    emb_b_in_a_order[order] = emb_b
                    par["auc_a"] = downstream_test_auc(fs, emb_a)
                    par["auc_b"] = downstream_test_auc(fs, emb_b_in_a_order)
                detail["parity"] = par
                if res != 32:  # the images are 32 px: only then is there a resize
                    ids_p, emb_p = run_naive(
                        img_dir, csv_path, name, res, weights, wfile, 64, pil_resize=True
                    )
                    detail["parity_pil"] = parity(emb_a[np.array([index[i] for i in ids_p])], emb_p)
            else:
                row += ["-", "-"]
            detail["for_limit"] = (flops, prec, a_model, a_e2e)
            if n_img < 17500:
                detail["extrapolated_full_minutes"] = {
                    "ours": 17500 / a_e2e / 60,
                    "naive": 17500 / b_rate / 60 if not args.skip_naive else None,
                }
            rows.append(row)
            details.append(detail)
            print(f"  done {name}@{res} ({time.perf_counter() - t_start:.0f}s so far)", flush=True)


def _report(args, peak, rows, details, t_start) -> None:
    """The compute limit at the end of the run, then every table."""
    end = {"fp32": matmul_flops(torch.float32), "bf16": matmul_flops(torch.bfloat16)}
    print()
    print(
        f"compute limit (c): torch.mm 2048^2, best of start and end of the run: fp32 "
        f"{max(peak['fp32'], end['fp32']) / 1e9:.0f} GFLOP/s, bf16 "
        f"{max(peak['bf16'], end['bf16']) / 1e9:.0f} GFLOP/s (start {peak['fp32'] / 1e9:.0f} / "
        f"{peak['bf16'] / 1e9:.0f}, end {end['fp32'] / 1e9:.0f} / {end['bf16'] / 1e9:.0f})"
    )
    busy = cpu_busy_share()
    if busy is not None:
        print(f"CPU busy after the run (other processes): {busy:.0%}")
    best_peak = {p: max(peak[p], end[p]) for p in peak}
    for row, d in zip(rows, details, strict=True):
        flops, prec, a_model, a_e2e = d["for_limit"]
        limit = {p: best_peak[p] / flops for p in best_peak}
        share = limit.get(prec, limit["fp32"])
        row += [
            f"{limit['fp32']:.1f}/{limit['bf16']:.1f}",
            f"{a_model / share:.0%}",
            f"{a_e2e / share:.0%}",
        ]
    print(f"timings: best of {args.repeats} runs each; img/s")
    print_table(
        rows,
        [
            "backbone",
            "images",
            "(a) prec",
            "(a) e2e",
            "(a) model",
            "(b) naive",
            "(a)/(b)",
            "(c) fp32/bf16",
            "model/(c)",
            "e2e/(c)",
        ],
    )
    print("(c) share uses the limit of the precision (a) ran at.")
    print()
    print("parity of (a) vs (b), per image:")
    for d in details:
        p = d.get("parity")
        extra = ""
        if "extrapolated_full_minutes" in d:
            e = d["extrapolated_full_minutes"]
            extra = f"; all 17,500 images extrapolated: ours {e['ours']:.1f} min" + (
                f", naive {e['naive']:.1f} min" if e["naive"] else ""
            )
        if p:
            print(
                f"  {d['name']}: cosine min {p['cos_min']:.6f}, centred cosine min "
                f"{p['cos_centered_min']:.6f}, relative L2 max {p['rel_l2_max']:.2e}, "
                f"zero embeddings {p['zero_rows']} (different images: cosine "
                f"{p['other_image_cos']:.3f}, centred {p['other_image_cos_centered']:.3f})"
            )
            if "auc_a" in p:
                print(
                    f"    downstream: linear head (500 epochs, same split), test AUC (a) "
                    f"{p['auc_a']:.4f}, (b) {p['auc_b']:.4f}, |difference| "
                    f"{abs(p['auc_a'] - p['auc_b']):.4f} (tolerance 0.001)"
                )
        pp = d.get("parity_pil")
        if pp:
            print(
                f"    same, naive with PIL uint8 resize instead (first 64 images): cosine min "
                f"{pp['cos_min']:.4f}, centred {pp['cos_centered_min']:.4f}, relative L2 max "
                f"{pp['rel_l2_max']:.2e}"
            )
        tm = d["timings"]
        print(
            f"    {d['name']}: {d['gflops']:.3f} GFLOP/img; stage seconds (last run): fingerprint "
            f"{d['fingerprint_seconds']}, decode/validate {d['scan_seconds']}, "
            f"model {tm['model_seconds']}, chunk writes {tm['write_seconds']}; "
            f"repeat runs bitwise identical: {d['bitwise_repeat']}{extra}"
        )
    print(f"total {time.perf_counter() - t_start:.0f}s")


if __name__ == "__main__":
    sys.exit(main())
