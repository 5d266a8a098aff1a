"""K-class comparison: paired bootstrap of every metric, against a per-resample scikit-learn loop.

On generated predictions (no data needed) of ``--backbones`` K-class runs on one test
set of ``--n`` images (default 2,625 = the 15 % test split of 17,500 images) and
``--classes`` classes (default 10 and 50), and multi-label runs with ``--labels``
labels (default 10), it times ``compare_runs`` end to end with
``--bootstrap`` resamples (every overall and per-class metric of every backbone, its
interval, every pairwise difference with its p-value, McNemar), best of
``--repeats``. Beside it: the same overall metrics for one backbone computed with
scikit-learn on explicitly resampled test sets (``accuracy_score``,
``top_k_accuracy_score``, ``balanced_accuracy_score``, ``f1_score`` macro and
weighted, ``roc_auc_score(multi_class="ovr")``, ``log_loss``), timed on
``--sklearn-resamples`` resamples and scaled to ``--bootstrap`` x backbones (said
so), and the binary ``compare_runs`` on the same number of images for reference.

Run ``python benchmarks/bench_metrics.py`` (about a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import dataclass

import numpy as np
from _common import best_of, print_header

from cactus_features.metrics import compare_runs
from cactus_features.runfile import Predictions, RunFile


@dataclass
class _ClassPredictions(Predictions):
    proba: np.ndarray | None = None
    label_matrix: np.ndarray | None = None


def _multilabel_runs(n_test: int, labels: int, n_backbones: int) -> list[RunFile]:
    """Multi-label runs: label ``c`` present with probability ``0.1 + 0.5 c / L``."""
    rng = np.random.default_rng(0)
    ids = np.array([f"img_{j:06d}" for j in range(n_test)], dtype=object)
    split = np.full(n_test, 2, dtype=np.uint8)
    targets = (rng.random((n_test, labels)) < 0.1 + 0.5 * np.arange(labels) / labels).astype(int)
    runs = []
    for b in range(n_backbones):
        logit = (2.0 - 0.3 * b) * (2 * targets - 1) + rng.normal(0.0, 1.0, targets.shape)
        proba = 1.0 / (1.0 + np.exp(-logit))
        names = [f"label_{c}" for c in range(labels)]
        preds = _ClassPredictions(
            ids, split, np.zeros(n_test, dtype=np.int64), proba.max(axis=1), proba, targets
        )
        info = {"backbone_name": f"b{b}", "task": "multilabel", "class_names": names}
        runs.append(RunFile(None, {}, info, preds))
    return runs


def _runs(n_test: int, k: int, n_backbones: int, *, multiclass: bool) -> list[RunFile]:
    """Runs sharing ids and labels; backbone ``b`` separates the classes by ``2 - 0.3 b``."""
    rng = np.random.default_rng(0)
    ids = np.array([f"img_{j:06d}" for j in range(n_test)], dtype=object)
    split = np.full(n_test, 2, dtype=np.uint8)
    y = rng.integers(0, k, n_test)
    runs = []
    for b in range(n_backbones):
        logit = (2.0 - 0.3 * b) * np.eye(k)[y] + rng.normal(0.0, 1.0, (n_test, k))
        e = np.exp(logit - logit.max(axis=1, keepdims=True))
        proba = e / e.sum(axis=1, keepdims=True)
        names = [f"class_{c}" for c in range(k)]
        if multiclass:
            preds = _ClassPredictions(ids, split, y, proba.max(axis=1), proba)
            info = {"backbone_name": f"b{b}", "task": "multiclass", "class_names": names}
        else:
            is_pos = (y == 0).astype(np.int64)
            score = proba[:, 0]
            preds = Predictions(ids, split, is_pos, score)
            info = {"backbone_name": f"b{b}", "class_names": ["rest", "class_0"]}
        runs.append(RunFile(None, {}, info, preds))
    return runs


def _sklearn_metrics(y: np.ndarray, proba: np.ndarray) -> list[float]:
    from sklearn import metrics as skm

    k = proba.shape[1]
    pred = proba.argmax(axis=1)
    labels = list(range(k))
    out = [
        skm.accuracy_score(y, pred),
        skm.balanced_accuracy_score(y, pred),
        skm.f1_score(y, pred, average="macro"),
        skm.f1_score(y, pred, average="weighted"),
        skm.roc_auc_score(y, proba, multi_class="ovr", labels=labels),
        skm.log_loss(y, proba, labels=labels),
    ]
    if k > 5:
        out.append(skm.top_k_accuracy_score(y, proba, k=5, labels=labels))
    return out


def build_parser() -> argparse.ArgumentParser:
    """The command-line options (also read by ``tests/test_docs.py``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2625, help="test images")
    ap.add_argument("--classes", default="10,50", help="K values (comma list)")
    ap.add_argument("--labels", default="10", help="multi-label L values (comma list)")
    ap.add_argument("--backbones", type=int, default=2)
    ap.add_argument("--bootstrap", type=int, default=2000)
    ap.add_argument("--sklearn-resamples", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=2, help="timing = best of this many runs")
    return ap


def main() -> None:
    args = build_parser().parse_args()
    print_header()
    n, nb, boot = args.n, args.backbones, args.bootstrap
    binary = _runs(n, 2, nb, multiclass=False)
    s, _ = best_of(lambda: compare_runs(binary, threshold=0.5, n_bootstrap=boot), args.repeats)
    print(f"\nN = {n} test images, {nb} backbones, {boot} paired resamples, best of {args.repeats}")
    print(f"  binary compare_runs (reference)            {s:7.2f} s")
    for k in [int(x) for x in args.classes.split(",")]:
        runs = _runs(n, k, nb, multiclass=True)
        s, c = best_of(lambda r=runs: compare_runs(r, n_bootstrap=boot), args.repeats)
        print(
            f"  K = {k:3d}: compare_runs                     {s:7.2f} s "
            f"({len(c.metric_names)} overall + {len(c.per_class_names)} x {k} per-class "
            f"metrics per backbone, {len(c.pairwise)} pair(s))"
        )
        rng = np.random.default_rng(1)
        y, proba = runs[0].predictions.label, runs[0].predictions.proba
        m = args.sklearn_resamples
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(m):
                idx = rng.integers(0, n, n)
                _sklearn_metrics(y[idx], proba[idx])
        per = (time.perf_counter() - t0) / m
        full = per * boot * nb
        print(
            f"           scikit-learn loop, overall only  {full:7.2f} s "
            f"(timed on {m} resamples: {per * 1e3:.1f} ms each, scaled to {boot} x {nb}); "
            f"ours is {full / s:.0f}x faster"
        )
    for k in [int(x) for x in args.labels.split(",") if x]:
        runs = _multilabel_runs(n, k, nb)
        s, c = best_of(lambda r=runs: compare_runs(r, n_bootstrap=boot), args.repeats)
        print(
            f"  L = {k:3d} labels (multilabel): compare_runs {s:7.2f} s "
            f"({len(c.metric_names)} overall + {len(c.per_class_names)} x {k} per-label metrics)"
        )


if __name__ == "__main__":
    main()
