"""Benchmark head training on cactus-sized random features (with a planted signal).

Compares, on ``--n`` x ``--dim`` float32 training features (default 12,250 x 2,048,
the aerial-cactus training split):

* the library's linear head, ``--epochs`` full-batch Adam epochs (fused CPU engine);
* a plain full-batch autograd loop (``nn.Linear`` + ``torch.optim.Adam``);
* a ``DataLoader`` mini-batch loop (batch 32), timed for a few epochs and
  extrapolated to ``--epochs`` (said so in the output);
* scikit-learn's ``LogisticRegression`` (lbfgs) and the library's L-BFGS solver;
* the MLP head (``D -> 512 -> 128 -> 1``), timed for ``--mlp-epochs`` and
  extrapolated, with its FLOP/s against a plain matmul's measured in the same run;
* sweeps of ``K`` linear heads trained together: seconds per head;
* the whole study (2 backbones, extract + train + compare) on the real data
  against the report's approach of 500 epochs through the frozen backbone
  (``bench_study.py``; skipped without the data or with ``--skip-study``).

Run: ``python benchmarks/bench_head.py`` (about 3-5 minutes on 2 CPU cores with the study).
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cactus_features.features import FeatureSet
from cactus_features.heads import HeadConfig, train_head
from cactus_features.heads.device import resolve_device
from cactus_features.heads.fastpath.snapshots import window_epochs
from cactus_features.heads.nn.models import build_head, layer_sizes
from cactus_features.heads.prepare.data import prepare
from cactus_features.heads.solvers.engine import fit_stacked


def build_parser() -> argparse.ArgumentParser:
    """The command-line options (also read by ``tests/test_docs.py``)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=12250, help="training rows")
    p.add_argument("--n-val", type=int, default=2625, help="validation rows (and test rows)")
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--epochs", type=int, default=500)
    p.add_argument("--mlp-epochs", type=int, default=10, help="timed MLP epochs (extrapolated)")
    p.add_argument("--dataloader-epochs", type=int, default=2, help="timed (extrapolated)")
    p.add_argument("--sweep-ks", default="1,8,32,128")
    p.add_argument(
        "--sweep-kernels",
        default="auto",
        help="fused-engine kernels to time the sweeps with (auto, native, torch; comma-separated)",
    )
    p.add_argument("--sweep-epochs", type=int, default=100, help="timed (scaled to --epochs)")
    p.add_argument("--repeats", type=int, default=2, help="repeats of the linear head (best kept)")
    p.add_argument("--device", default=None)
    p.add_argument("--lbfgs-tol", type=float, default=1e-6, help="L-BFGS tol (both solvers)")
    p.add_argument("--skip-sklearn", action="store_true")
    p.add_argument(
        "--skip-study",
        action="store_true",
        help="skip the whole-study comparison on the real data (bench_study.py)",
    )
    p.add_argument("--data", help="aerial-cactus folder for the study (default ../shared/...)")
    p.add_argument("--seed", type=int, default=0)
    return p


def make_features(n: int, n_val: int, dim: int, seed: int) -> FeatureSet:
    """Random features; ~75% positives, labels from a planted linear direction + noise."""
    rng = np.random.default_rng(seed)
    total = n + 2 * n_val
    x = rng.standard_normal((total, dim), dtype=np.float32)
    direction = rng.standard_normal(dim).astype(np.float32) / np.sqrt(dim)
    score = x @ direction + 0.5 * rng.standard_normal(total).astype(np.float32)
    labels = (score > np.quantile(score, 0.25)).astype(np.int64)
    split = np.repeat(np.array([0, 1, 2], dtype=np.uint8), [n, n_val, n_val])
    return FeatureSet(
        path=None,
        key={"backbone": "random", "resolution": dim},
        ids=np.array([f"r{i}" for i in range(total)], dtype=object),
        labels=labels,
        split=split,
        class_names=["0", "1"],
        attrs={},
        _embeddings=x,
    )


def timed(fn, repeats: int = 5) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def autograd_full_batch(x, y, w, epochs: int, hidden=(), dropout=0.0) -> float:
    """The plain baseline: module + autograd + torch.optim.Adam, full batch."""
    torch.manual_seed(0)
    head = build_head(x.shape[1], hidden, dropout).to(x.device)
    opt = torch.optim.Adam(head.parameters(), lr=5e-4)
    sw = w / w.sum()
    start = time.perf_counter()
    for _ in range(epochs):
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(head(x)[:, 0], y, weight=sw, reduction="sum")
        loss.backward()
        opt.step()
    _sync(x.device)
    return time.perf_counter() - start


def dataloader_loop(x, y, w, epochs: int) -> float:
    """The slow baseline: TensorDataset + DataLoader(batch 32, shuffle) + autograd."""
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    head = build_head(x.shape[1]).to(x.device)
    opt = torch.optim.Adam(head.parameters(), lr=5e-4)
    loader = DataLoader(TensorDataset(x, y, w), batch_size=32, shuffle=True)
    start = time.perf_counter()
    for _ in range(epochs):
        for xb, yb, wb in loader:
            opt.zero_grad()
            loss = F.binary_cross_entropy_with_logits(head(xb)[:, 0], yb, weight=wb / wb.sum(),
                                                      reduction="sum")  # fmt: skip
            loss.backward()
            opt.step()
    _sync(x.device)
    return time.perf_counter() - start


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def mlp_flops_per_epoch(n: int, n_val: int, sizes: list[tuple[int, int]]) -> float:
    """Matmul FLOPs of one full-batch MLP epoch (forward, backward, validation forward)."""
    fwd = sum(2 * i * o for i, o in sizes)
    grad_w = fwd
    grad_h = sum(2 * i * o for i, o in sizes[1:])  # no input gradient for the first layer
    return n * (fwd + grad_w + grad_h) + n_val * fwd


def _study(args: argparse.Namespace) -> None:
    """Run :mod:`bench_study` with its defaults when the aerial-cactus data is here."""
    import logging
    import shutil
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import DEFAULT_DATA
    from bench_study import print_study, run_study_benchmark

    root = Path(args.data or os.environ.get("CACTUS_DATA", DEFAULT_DATA))
    if not (root / "train").is_dir() or not (root / "train.csv").is_file():
        print(f"\n[study] skipped: no aerial-cactus data at {root} (pass --data DIR)")
        return
    logging.getLogger("cactus_features").setLevel(logging.ERROR)
    work = Path(tempfile.mkdtemp(prefix="bench_study_"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            backbones = ["efficientnet_lite0@64", "resnet50@64"]
            t = run_study_benchmark(
                root / "train", root / "train.csv", backbones,
                limit=None, naive_images=512, epochs=args.epochs, work=work,
            )  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_study(t, args.epochs, 512)


def main() -> None:
    args = build_parser().parse_args()
    dev = resolve_device(args.device)
    print(f"command: python {' '.join(shlex.quote(a) for a in sys.argv)}")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {dev}, "
        f"{os.cpu_count()} CPUs, python {platform.python_version()}, "
        f"load average at start {os.getloadavg()[0]:.2f} (other processes share the CPU)"
    )
    t0 = time.perf_counter()
    fs = make_features(args.n, args.n_val, args.dim, args.seed)
    data = prepare(fs, HeadConfig.create())
    tensors = data.tensors(dev)
    x, y, w = tensors.x_train, tensors.y_train, tensors.w_train
    mb = x.numel() * 4 / 2**20
    print(f"features: train {args.n} x {args.dim} float32 ({mb:.0f} MiB), val/test {args.n_val} "
          f"rows each, {fs.labels[:args.n].mean():.1%} positives; class weights "
          f"{np.round(data.class_weights, 4).tolist()}")  # fmt: skip
    E = args.epochs

    # memory-bandwidth floor: each epoch reads the training rows once; the validation rows
    # are read once per window of epochs (their weights scored together)
    xv = tensors.x_val
    read = timed(lambda: (x.sum(), _sync(dev)), 5)
    read_val = timed(lambda: (xv.sum(), _sync(dev)), 5)
    windows = -(-E // window_epochs(1, args.dim))
    floor = read * E + read_val * windows
    print(f"\nmemory bandwidth: one read of X takes {read * 1e3:.2f} ms "
          f"({mb / 1024 / read:.1f} GiB/s), of the validation rows {read_val * 1e3:.2f} ms "
          f"-> floor for {E} epochs (X once per epoch, validation rows once per window of "
          f"{window_epochs(1, args.dim)} epochs, {windows} windows): {floor:.2f} s")  # fmt: skip

    # 1. linear head through the public API (best of --repeats); the first call
    # also loads the compiled kernels (Numba's on-disk cache), once per process
    threads = torch.get_num_threads()
    warm = time.perf_counter()
    train_head(fs, epochs=1, save=False, device=dev)
    warm = time.perf_counter() - warm
    runs = []
    for _ in range(args.repeats):
        start, cpu = time.perf_counter(), time.process_time()
        res = train_head(fs, epochs=E, save=False, device=dev)
        runs.append((res.seconds, time.perf_counter() - start, time.process_time() - cpu, res))
    lin_s, lin_total, lin_cpu, res = min(runs, key=lambda r: r[0])
    engine = res.run.info.get("engine")
    if res.run.info.get("kernel"):
        engine += f" ({res.run.info['kernel']} kernel)"
    print(f"\n[linear head] first call in this process (1 epoch, loads the compiled kernels): "
          f"{warm:.2f} s")  # fmt: skip
    print(f"[linear head] train_head, {E} full-batch Adam epochs, engine={engine}: "
          f"{lin_s:.2f} s training loop ({lin_s / E * 1e3:.2f} ms/epoch incl. val AUC), "
          f"{lin_total:.2f} s end to end (standardise, train, score all rows; "
          f"{lin_cpu:.2f} CPU-s = {lin_cpu / threads:.2f} s per thread); "
          f"{lin_s / floor:.2f}x the floor; "
          f"best epoch {res.best_epoch}, val AUC {res.val_auc:.4f}"
          f"  [all repeats, loop: {', '.join(f'{r[0]:.2f}' for r in runs)} s]")  # fmt: skip

    # 2. baselines
    ag = autograd_full_batch(x, y, w, E)
    print(f"[baseline] full-batch autograd + torch.optim.Adam, {E} epochs: {ag:.2f} s "
          f"(library is {ag / lin_s:.1f}x faster)")  # fmt: skip
    dl = dataloader_loop(x, y, w, args.dataloader_epochs)
    dl_est = dl / args.dataloader_epochs * E
    print(f"[baseline] DataLoader batch-32 loop: {dl:.2f} s for {args.dataloader_epochs} epochs, "
          f"EXTRAPOLATED to {E} epochs: {dl_est:.0f} s -> library is {dl_est / lin_s:.0f}x faster "
          f"(goal >= 60x)")  # fmt: skip

    # 3. L-BFGS: sklearn vs ours
    tol = args.lbfgs_tol
    lb_start = time.perf_counter()
    lb = train_head(fs, solver="lbfgs", C=1.0, save=False, device=dev, tol=tol)
    lb_total = time.perf_counter() - lb_start
    print(
        f"[L-BFGS] library solver (C=1, tol={tol:g}, float64): {lb.seconds:.2f} s, "
        f"{lb.best_epoch} iterations ({lb_total:.2f} s end to end), val AUC {lb.val_auc:.4f}"
    )
    if not args.skip_sklearn:
        from sklearn.linear_model import LogisticRegression

        xs = data.inputs(data.train)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cw = dict(enumerate(data.class_weights))
            sk = LogisticRegression(C=1.0, class_weight=cw, max_iter=10000, tol=tol)
            sk.fit(xs, fs.labels[data.train])
        sk_s = time.perf_counter() - start
        diff = np.abs(sk.predict_proba(xs)[:, 1] - lb.predictions.score[: args.n]).max()
        print(f"[baseline] sklearn LogisticRegression(lbfgs, C=1, tol={tol:g}): {sk_s:.2f} s, "
              f"{int(sk.n_iter_[0])} iterations; max |P_sklearn - P_library| on train: "
              f"{diff:.1e}; our L-BFGS / sklearn time {lb.seconds / sk_s:.2f}x, the 500-epoch "
              f"Adam head / sklearn {lin_s / sk_s:.2f}x")  # fmt: skip

    # 4. MLP head vs matmul throughput
    hidden = (512, 128)
    sizes = layer_sizes(args.dim, hidden)
    w1 = torch.randn(hidden[0], args.dim, device=dev)
    mm = timed(lambda: (x @ w1.T, _sync(dev)), 3)
    mm_flops = 2 * args.n * args.dim * hidden[0] / mm
    fit = fit_stacked(tensors, sizes, [5e-4], [0.0], [0], epochs=args.mlp_epochs, dropout=0.2)
    per_epoch = fit.seconds / args.mlp_epochs
    flops = mlp_flops_per_epoch(args.n, args.n_val, sizes) / per_epoch
    ag_mlp = autograd_full_batch(x, y, w, max(2, args.mlp_epochs // 4), hidden, 0.2)
    ag_mlp_epoch = ag_mlp / max(2, args.mlp_epochs // 4)
    print(f"\n[MLP head {args.dim}-512-128-1, dropout 0.2] {args.mlp_epochs} epochs: "
          f"{per_epoch * 1e3:.0f} ms/epoch -> EXTRAPOLATED {per_epoch * E:.0f} s for {E} epochs; "
          f"{flops / 1e9:.0f} GFLOP/s vs plain matmul [{args.n}x{args.dim}]@[{args.dim}x512] "
          f"{mm_flops / 1e9:.0f} GFLOP/s ({flops / mm_flops:.0%}, goal >= 50%); "
          f"autograd baseline {ag_mlp_epoch * 1e3:.0f} ms/epoch")  # fmt: skip

    # 5. sweeps of K linear heads at once
    print(
        f"\n[sweep] K linear heads trained together, {args.sweep_epochs} epochs timed, "
        f"seconds scaled to {E} epochs:"
    )
    for k in [int(v) for v in args.sweep_ks.split(",")]:
        lrs = list(np.geomspace(1e-4, 1e-2, k)) if k > 1 else [5e-4]
        for kernel in args.sweep_kernels.split(","):
            fit = fit_stacked(tensors, layer_sizes(args.dim, ()), lrs, [0.0] * k, list(range(k)),
                              epochs=args.sweep_epochs, kernel=kernel)  # fmt: skip
            scale = E / args.sweep_epochs
            print(
                f"  K={k:>3}: {fit.seconds:.2f} s for {args.sweep_epochs} epochs -> "
                f"{fit.seconds * scale / k:.3f} s/head at {E} epochs "
                f"({fit.seconds * scale:.1f} s for all {k}; {fit.kernel or fit.engine} kernel)"
            )
    # 6. the whole study against the report's approach (needs the real data)
    if not args.skip_study:
        _study(args)

    print(
        f"\ntotal benchmark time {time.perf_counter() - t0:.0f} s; "
        f"load average at end {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
