"""The whole study against the report's approach: 2 backbones, extract + train + compare.

On the aerial-cactus images (``--limit`` of them, default all 17,500), for
``--backbones`` (default ``efficientnet_lite0@64,resnet50@64``):

* ours: ``extract_features`` of both backbones (each image decoded once), the
  default linear head (500 full-batch epochs) on each cache, and ``compare`` of
  the two runs with its report, figures and bootstrap intervals; each stage timed.
* the report's approach: every epoch pushes every training and validation image
  through the frozen backbone (folder dataset, PIL decode, ``ToTensor`` +
  ``Resize`` + ``Normalize`` per image, ``DataLoader(batch_size=32)``, plain
  fp32 model) and steps the same linear head with autograd on each batch. It is
  timed on ``--naive-images`` images per backbone and EXTRAPOLATED (said so) to
  ``--epochs`` x (training + validation images), plus one pass over the test images.

Weights: ``efficientnet_lite0`` uses its packaged ImageNet weights; other
backbones use ImageNet weights when already in ``$TORCH_HOME``, else seeded
random init (labelled so; speed does not depend on the weights).

Run ``python benchmarks/bench_study.py`` (about 3 minutes on 2 cores);
``benchmarks/bench_head.py`` runs it too unless given ``--skip-study``.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import command_line, data_paths, machine_summary
from bench_extract import NaiveFolder, naive_transform, plain_model

from cactus_features import compare, extract_features, train_head
from cactus_features.backbones.weights import weights_unavailable
from cactus_features.extract.api import BackboneRequest


@dataclass
class StudyTimes:
    """Seconds of each stage of ours, and the extrapolated seconds of the report's approach."""

    backbones: list[str]
    images: int
    extract: float
    train: list[float]
    compare: float
    naive_per_backbone: list[float]
    naive_rates: list[float]
    test_aucs: list[float]

    @property
    def ours(self) -> float:
        """Our whole study, end to end."""
        return self.extract + sum(self.train) + self.compare

    @property
    def naive(self) -> float:
        """The report's approach, extrapolated."""
        return sum(self.naive_per_backbone)


def study_weights(name: str) -> str:
    """``DEFAULT`` where the pretrained weights are on this machine, else ``none``."""
    return "none" if weights_unavailable(name, "DEFAULT", allow_download=False) else "DEFAULT"


def naive_epoch_rate(
    img_dir: Path, csv_path: Path, name: str, res: int, weights: str, n_images: int
) -> float:
    """Images per second of one report-style training epoch: backbone forward + head step."""
    ds = NaiveFolder(img_dir, csv_path, naive_transform(res), n_images)
    model = plain_model(name, None if weights == "none" else weights, None)
    head: torch.nn.Linear | None = None
    opt: torch.optim.Optimizer | None = None
    class_weight = torch.tensor([0.7506, 0.2494])
    gen = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for x, y in DataLoader(ds, batch_size=32, shuffle=True, generator=gen):
        with torch.no_grad():
            feats = model(x).flatten(1)
        if head is None:
            head = torch.nn.Linear(feats.shape[1], 1)
            opt = torch.optim.Adam(head.parameters(), lr=5e-4)
        assert opt is not None
        w = class_weight[y]
        loss = F.binary_cross_entropy_with_logits(
            head(feats)[:, 0], y.float(), weight=w / w.sum(), reduction="sum"
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    return len(ds) / (time.perf_counter() - start)


def run_study_benchmark(
    img_dir: Path,
    csv_path: Path,
    backbones: list[str],
    *,
    limit: int | None,
    naive_images: int,
    epochs: int,
    work: Path,
) -> StudyTimes:
    """Time our study and measure + extrapolate the report's approach."""
    parsed = [BackboneRequest.parse(text) for text in backbones]
    requests = [replace(req, weights=study_weights(req.name)) for req in parsed]
    t0 = time.perf_counter()
    fss = extract_features(
        img_dir, requests, labels=csv_path, limit=limit, cache_dir=work / "cache", quiet=True
    )
    extract_s = time.perf_counter() - t0
    train_s, runs, aucs = [], [], []
    for fs in fss:
        t1 = time.perf_counter()
        res = train_head(fs, epochs=epochs)
        train_s.append(time.perf_counter() - t1)
        runs.append(res.path)
        test = res.predictions.split == 2
        aucs.append(float(roc_auc_score(res.predictions.label[test], res.predictions.score[test])))
    t1 = time.perf_counter()
    compare(runs, out=work / "report")
    compare_s = time.perf_counter() - t1
    n_train = int((fss[0].split == 0).sum())
    n_val = int((fss[0].split == 1).sum())
    n_test = int((fss[0].split == 2).sum())
    naive_s, rates = [], []
    for req in requests:
        res = int(req.resolution or 224)
        rate = naive_epoch_rate(img_dir, csv_path, req.name, res, req.weights, naive_images)
        rates.append(rate)
        naive_s.append((epochs * (n_train + n_val) + n_test) / rate)
    return StudyTimes(
        backbones=[fs.key["name"] + f" ({fs.key['weights']})" for fs in fss],
        images=len(fss[0]),
        extract=extract_s,
        train=train_s,
        compare=compare_s,
        naive_per_backbone=naive_s,
        naive_rates=rates,
        test_aucs=aucs,
    )


def print_study(t: StudyTimes, epochs: int, naive_images: int) -> None:
    """The study's figures, one line each."""
    print(f"\n[study] {' + '.join(t.backbones)} on {t.images} images, {epochs}-epoch linear heads")
    print(
        f"  ours: extract both {t.extract:.1f} s (one decode), train "
        f"{' + '.join(f'{s:.1f}' for s in t.train)} s, compare (bootstrap, DeLong, McNemar, "
        f"figures, report) {t.compare:.1f} s -> {t.ours:.1f} s end to end; test AUC "
        f"{', '.join(f'{a:.4f}' for a in t.test_aucs)}"
    )
    for name, rate, s in zip(t.backbones, t.naive_rates, t.naive_per_backbone, strict=True):
        print(
            f"  report's approach, {name}: {rate:.0f} img/s per training epoch (backbone + head "
            f"step, measured on {naive_images} images) -> EXTRAPOLATED {s / 3600:.1f} h for "
            f"{epochs} epochs over train + val and one test pass"
        )
    print(
        f"  whole study: ours {t.ours:.0f} s vs the report's approach {t.naive / 3600:.1f} h "
        f"(EXTRAPOLATED) -> {t.naive / t.ours:.0f}x"
    )


def build_parser() -> argparse.ArgumentParser:
    """The command-line options (also read by ``tests/test_docs.py``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="aerial-cactus folder (train/, train.csv)")
    ap.add_argument("--backbones", default="efficientnet_lite0@64,resnet50@64")
    ap.add_argument("--limit", type=int, default=None, help="images (default: all)")
    ap.add_argument("--naive-images", type=int, default=512, help="timed, then extrapolated")
    ap.add_argument("--epochs", type=int, default=500)
    return ap


def main() -> None:
    args = build_parser().parse_args()
    img_dir, csv_path = data_paths(args.data)
    print(f"command: {command_line()}")
    print(f"machine: {machine_summary()}")
    logging.getLogger("cactus_features").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    work = Path(tempfile.mkdtemp(prefix="bench_study_"))
    try:
        t = run_study_benchmark(
            img_dir,
            csv_path,
            args.backbones.split(","),
            limit=args.limit,
            naive_images=args.naive_images,
            epochs=args.epochs,
            work=work,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_study(t, args.epochs, args.naive_images)


if __name__ == "__main__":
    main()
