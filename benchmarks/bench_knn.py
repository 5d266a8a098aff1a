"""Benchmark the kNN probe and the label-efficiency curves.

* **Speed.** The probe's neighbour search (blocked ``queries @ bank.T`` + ``torch.topk``
  of the 100 nearest) for the cactus split sizes: 2,625 validation (or test) rows
  against 12,250 training rows, on random 2,048-D features and on the real
  EfficientNet-Lite0 caches (1,280-D); the matrix product alone against a plain
  ``torch.mm``'s FLOP/s measured in the same run; and the whole probe
  (``train_head(head="knn")``: every row of the cache, training rows leave-one-out,
  ``k`` chosen on validation).
* **Fidelity.** Test AUC of the kNN probe against ``train_head``'s default linear head
  on the same cache (paired: 95 % bootstrap CIs and DeLong's p from
  ``compare_runs``), and of the kNN probe on standardised vs raw embeddings (the
  measurement behind its default).
* **Label efficiency.** ``label_efficiency`` on the first cache (default 1-100 %,
  3 seeds): its time and table.

Run: ``python benchmarks/bench_knn.py`` (about 3-5 minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import (
    best_of,
    command_line,
    cpu_busy_share,
    machine_summary,
    matmul_flops,
    print_table,
)
from cactus_features.features import load_features
from cactus_features.heads import HeadConfig, train_head
from cactus_features.heads.solvers.knn import KS, l2_normalise, nearest
from cactus_features.metrics.compare import compare_runs
from cactus_features.report.formatting import format_estimate, table
from cactus_features.report.label_efficiency import rows, write_label_efficiency
from cactus_features.study.label_efficiency import label_efficiency

REAL_CACHES = (
    "/work/cache-real/aerial-cactus-train-c119fb9b/"
    "efficientnet_lite0_IMAGENET1K_64px_weights_fp32_dfa645d3b0d2.h5",
    "/work/cache-real/aerial-cactus-train-c119fb9b/"
    "efficientnet_lite0_IMAGENET1K_224px_weights_fp32_3ba5a60b1dd6.h5",
)
"""The real aerial-cactus caches of this machine (override with ``--caches``)."""


def build_parser() -> argparse.ArgumentParser:
    """The command-line options (also read by ``tests/test_docs.py``)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--caches", nargs="*", default=None, help="real cache files (default: ours)")
    p.add_argument("--n", type=int, default=12250, help="random bank rows (training split)")
    p.add_argument("--n-query", type=int, default=2625, help="random query rows (val split)")
    p.add_argument("--dim", type=int, default=2048, help="random feature dimension")
    p.add_argument("--repeats", type=int, default=3, help="timing repeats (best kept)")
    p.add_argument("--fractions", default="0.01,0.02,0.05,0.1,0.25,0.5,1")
    p.add_argument("--seeds", type=int, default=3, help="label-efficiency seeds 0..N-1")
    p.add_argument("--n-bootstrap", type=int, default=2000)
    p.add_argument("--skip-label-efficiency", action="store_true")
    p.add_argument("--skip-fidelity", action="store_true", help="only time the search")
    return p


def time_search(queries: torch.Tensor, bank: torch.Tensor, repeats: int) -> tuple[float, float]:
    """Best seconds of the neighbour search (top-max(KS)) and of its matrix product alone."""
    labels = torch.zeros(bank.shape[0], dtype=torch.long)
    kmax = max(KS)
    nearest(queries[:64], bank, labels, kmax)  # warm-up
    search, _ = best_of(lambda: nearest(queries, bank, labels, kmax), repeats)
    bank_t = bank.T.contiguous()
    mm, _ = best_of(lambda: queries @ bank_t, repeats)
    return search, mm


def search_row(name: str, queries: torch.Tensor, bank: torch.Tensor, repeats: int, peak: float):
    """A table row: sizes, search seconds, matmul seconds and its share of ``torch.mm``."""
    search, mm = time_search(queries, bank, repeats)
    flops = 2 * queries.shape[0] * bank.shape[0] * queries.shape[1]
    return [
        name,
        f"{queries.shape[0]:,} x {bank.shape[0]:,} x {queries.shape[1]:,}",
        f"{search:.3f}",
        f"{mm:.3f}",
        f"{flops / mm / 1e9:.0f} ({flops / mm / peak:.0%})",
    ]


def main() -> None:
    args = build_parser().parse_args()
    print(f"command: {command_line()}")
    busy = cpu_busy_share()
    print(machine_summary())
    print(
        f"load average {os.getloadavg()[0]:.2f}, CPU busy before start "
        + (f"{busy:.0%}" if busy is not None else "unknown")
        + " (other processes share the CPU)"
    )
    peak = matmul_flops(torch.float32)
    print(f"torch.mm 2048^2 float32: {peak / 1e9:.0f} GFLOP/s (best of 5)\n")

    # 1. speed of the neighbour search
    gen = torch.Generator().manual_seed(0)
    bank = l2_normalise(torch.randn(args.n, args.dim, generator=gen))
    queries = l2_normalise(torch.randn(args.n_query, args.dim, generator=gen))
    table_rows = [search_row("random", queries, bank, args.repeats, peak)]
    caches = REAL_CACHES if args.caches is None else args.caches
    sets = [load_features(p) for p in caches if Path(p).is_file()]
    missing = [p for p in caches if not Path(p).is_file()]
    for p in missing:
        print(f"(no cache at {p}: skipped)")
    for fs in sets:
        emb, split = fs.embeddings, fs.split
        b, q = l2_normalise(emb[split == 0]), l2_normalise(emb[split == 1])
        table_rows.append(search_row(fs.name, q, b, args.repeats, peak))
    print(f"neighbour search: top-{max(KS)} of each query row (best of {args.repeats}):")
    print_table(
        table_rows, ["features", "queries x bank x dim", "search s", "matmul s", "GFLOP/s (of mm)"]
    )
    del bank, queries
    if args.skip_fidelity or not sets:
        return

    # 2. the whole probe and its fidelity against the default linear head
    linear_config = HeadConfig.create()
    print(
        f"\nkNN probe vs train_head's default head ({linear_config.head}, solver "
        f"{linear_config.solver}) on the real caches; test AUC [95 % CI, "
        f"{args.n_bootstrap} paired resamples], accuracy at 0.5:"
    )
    fid_rows = []
    for fs in sets:
        knn_s, knn = best_of(lambda fs=fs: train_head(fs, head="knn", save=False), 1)
        std_run = _knn_standardised(fs)
        lin_s, lin = best_of(lambda fs=fs: train_head(fs, save=False), 1)
        cmp = compare_runs([knn.run, lin.run, std_run.run], n_bootstrap=args.n_bootstrap)
        rows_by = {r.backbone: r for r in cmp.rows("0.5")}
        labels = [b.label for b in cmp.backbones]
        pair = next(p for p in cmp.pairs("0.5") if {p.a, p.b} == set(labels[:2]))
        info = knn.run.info["knn"]
        for label, res, seconds, what in (
            (labels[0], knn, knn_s, f"kNN k={info['k']} (raw, L2)"),
            (labels[2], std_run, std_run.seconds, "kNN (standardised, L2)"),
            (labels[1], lin, lin_s, f"{lin.config.head} ({lin.config.solver})"),
        ):
            r = rows_by[label]
            fid_rows.append(
                [
                    fs.name,
                    what,
                    f"{res.val_auc:.4f}",
                    format_estimate(r.metrics["roc_auc"], 4),
                    f"{r.metrics['accuracy'].value:.4f}",
                    f"{seconds:.2f}",
                ]
            )
        print(
            f"  {fs.name}: kNN - linear test AUC {pair.differences['roc_auc'].value:+.4f} "
            f"[{pair.differences['roc_auc'].low:+.4f}, {pair.differences['roc_auc'].high:+.4f}], "
            f"DeLong p {pair.delong.p_value:.2g}; kNN val AUC by k {info['ks']}: "
            + ", ".join(f"{a:.4f}" for a in info["val_auc_by_k"])
        )
    print_table(fid_rows, ["features", "probe", "val AUC", "test AUC [CI]", "acc@0.5", "fit s"])

    # 3. label efficiency on the first cache
    if args.skip_label_efficiency:
        return
    fractions = tuple(float(f) for f in args.fractions.split(","))
    print(
        f"\nlabel efficiency on {sets[0].name}: train_head defaults, fractions {list(fractions)}, "
        f"seeds 0..{args.seeds - 1}, {args.n_bootstrap} bootstrap resamples"
    )
    t0 = time.perf_counter()
    result = label_efficiency(
        [sets[0]], fractions, tuple(range(args.seeds)), n_bootstrap=args.n_bootstrap
    )
    seconds = time.perf_counter() - t0
    headers, body = rows(result)
    print(table(headers, body, markdown=True))
    train_s = sum(p.train_seconds for p in result.points)
    print(
        f"{len(fractions) * args.seeds} heads: {seconds:.1f} s in all, of which head training "
        f"{train_s:.1f} s (bootstrap and scoring the rest)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_label_efficiency(result, tmp)
        print(
            f"(figure rendered to {paths['figure'].name}, {paths['figure'].stat().st_size} bytes)"
        )


def _knn_standardised(fs):
    """The kNN probe on standardised embeddings (a configuration made by hand)."""
    from cactus_features.heads.api import train_with_config

    config = HeadConfig.create("knn").with_(standardize=True)
    return train_with_config(fs, config, save=False)


if __name__ == "__main__":
    main()
