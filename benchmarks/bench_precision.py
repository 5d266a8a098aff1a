"""Precision policy: do bf16 embeddings change what a probe learns, compared with fp32?

For each backbone it extracts the aerial-cactus images twice with the library's
pipeline, in fp32 and under bf16 autocast (on this CPU: native AVX-512 BF16),
and prints

* per-embedding agreement: cosine similarity (min, 0.1 % quantile, median) and
  relative L2 error (median, max) of the bf16 embedding against the fp32 one;
* downstream: the test AUC of the library's default linear head trained on each
  (same ids, labels, split and head seed), their difference with DeLong's paired
  test on the same test images, the accuracies and how many test predictions
  flip at 0.5; for scale, the same for the fp32 head trained with seed 1
  instead of 0 (the noise of the probe itself).

Entries already in ``--cache-dir`` are reused (keys include the precision), and
``--seed-cache DIR`` copies an existing cache (e.g. fp32 entries extracted
earlier) into it first, so only the missing precision is computed. TF32 (the
CUDA candidate: fp32 storage, 10-bit-mantissa matmuls and convolutions) cannot
be measured on a CPU; ``benchmarks/bench_gpu.py`` is where a GPU run belongs.

Run ``python benchmarks/bench_precision.py --seed-cache /path/to/fp32-cache``
(EfficientNet-Lite0 at 64 px on all 17,500 images: about 1-2 minutes on 2 cores
with the fp32 entry cached).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
from _common import command_line, data_paths, machine_summary, print_table

from cactus_features import FeatureSet, extract_features, train_head
from cactus_features.metrics.stats import delong_test

PRECISIONS = ("fp32", "bf16")


def build_parser() -> argparse.ArgumentParser:
    """The command-line options (also read by ``tests/test_docs.py``)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", help="aerial-cactus folder (train/, train.csv)")
    p.add_argument(
        "--backbones",
        default="efficientnet_lite0@64",
        help="comma-separated NAME@RESOLUTION list (default: efficientnet_lite0@64)",
    )
    p.add_argument("--weights", default="DEFAULT", help="weights of every backbone")
    p.add_argument("--cache-dir", help="cache to extract into (default: a temporary folder)")
    p.add_argument("--seed-cache", help="copy this cache's dataset folders into --cache-dir first")
    p.add_argument("--limit", type=int, help="use only the first N images")
    return p


def _seed(cache: Path, seed: Path) -> None:
    for folder in sorted(p for p in seed.iterdir() if p.is_dir()):
        for entry in folder.glob("*.h5"):
            target = cache / folder.name / entry.name
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(entry, target)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = (a * b).sum(1) / (na * nb)
    c[(na == 0) & (nb == 0)] = 1.0  # both zero: identical
    return np.nan_to_num(c, nan=0.0)


def _test_scores(fs: FeatureSet, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores of the default linear head's test predictions, in ``fs``'s row order."""
    features = replace(fs, path=None, _embeddings=fs.embeddings)
    pred = train_head(features, save=False, seed=seed).predictions
    test = pred.split == 2
    return pred.label[test].astype(bool), pred.score[test]


def compare_precisions(fp32: FeatureSet, bf16: FeatureSet) -> dict[str, float]:
    """Agreement of two extractions of the same images, per embedding and downstream."""
    if list(fp32.ids) != list(bf16.ids):
        raise SystemExit("the two extractions hold different images; use the same --limit")
    a, b = fp32.embeddings.astype(np.float64), bf16.embeddings.astype(np.float64)
    cos = _cosine(a, b)
    rel = np.linalg.norm(b - a, axis=1) / np.maximum(np.linalg.norm(a, axis=1), 1e-30)
    label, score_a = _test_scores(fp32)
    label_b, score_b = _test_scores(bf16)
    assert np.array_equal(label, label_b)
    test = delong_test(label, score_a, score_b)
    _, score_seed = _test_scores(fp32, seed=1)  # the head's own noise, for scale
    return {
        "cos_min": float(cos.min()),
        "cos_q001": float(np.quantile(cos, 0.001)),
        "cos_median": float(np.median(cos)),
        "rel_median": float(np.median(rel)),
        "rel_max": float(rel.max()),
        "auc_fp32": test.auc_a,
        "auc_bf16": test.auc_b,
        "delta": -test.difference,
        "delong_p": test.p_value,
        "flips": int(((score_a >= 0.5) != (score_b >= 0.5)).sum()),
        "acc_fp32": float(((score_a >= 0.5) == label).mean()),
        "acc_bf16": float(((score_b >= 0.5) == label).mean()),
        "seed_delta": float(delong_test(label, score_seed, score_a).difference),
        "seed_flips": int(((score_a >= 0.5) != (score_seed >= 0.5)).sum()),
        "n_test": len(label),
    }


def main(argv: list[str] | None = None) -> None:
    """Extract in both precisions, compare, print the table."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    img_dir, csv_path = data_paths(args.data)
    tmp = None if args.cache_dir else tempfile.TemporaryDirectory(prefix="bench-precision-")
    cache = Path(args.cache_dir or tmp.name)  # type: ignore[union-attr]
    if args.seed_cache:
        _seed(cache, Path(args.seed_cache))
    print(command_line())
    print(machine_summary())
    rows = []
    for backbone in [b.strip() for b in args.backbones.split(",") if b.strip()]:
        sets = {}
        for precision in PRECISIONS:
            (sets[precision],) = extract_features(
                img_dir,
                backbone,
                labels=csv_path,
                weights=args.weights,
                precision=precision,
                device="cpu",
                cache_dir=cache,
                limit=args.limit,
                quiet=True,
            )
        r = compare_precisions(sets["fp32"], sets["bf16"])
        rows.append(
            [
                f"{backbone} ({len(sets['fp32'])} images)",
                f"{r['cos_min']:.4f} / {r['cos_q001']:.4f} / {r['cos_median']:.6f}",
                f"{r['rel_median']:.4f} / {r['rel_max']:.4f}",
                f"{r['auc_fp32']:.4f}",
                f"{r['auc_bf16']:.4f}",
                f"{r['delta']:+.4f} (p {r['delong_p']:.2f})",
                f"{r['acc_fp32']:.4f} / {r['acc_bf16']:.4f}",
                f"{r['flips']} of {r['n_test']}",
                f"{r['seed_delta']:+.4f}, {r['seed_flips']} flips",
            ]
        )
    print_table(
        rows,
        [
            "backbone",
            "cosine min / 0.1% / median",
            "rel. L2 median / max",
            "test AUC fp32",
            "test AUC bf16",
            "bf16 - fp32 (DeLong)",
            "accuracy fp32 / bf16",
            "flipped test preds",
            "fp32, head seed 1 vs 0: AUC, flips",
        ],
    )
    print(
        "not measured: TF32, the CUDA candidate (matmul/convolution inputs rounded to 10 mantissa "
        "bits instead of bf16's 7, fp32 accumulation and storage); a CPU cannot run it."
    )
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
