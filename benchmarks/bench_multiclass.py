"""K-class softmax linear head on the CPU: memory traffic per evaluation, fits against scikit-learn.

On synthetic but correlated features (``--n`` training rows, ``--n-val`` validation
and test rows, ``--d`` features, ``--k`` classes; default 12,250 x 2,048, K = 10:
low-rank latent factors plus noise, unequal class sizes and class means in the
latent space, rectified like pooled CNN features; seeded), standardised as the tuned
protocol does (``prepare`` with the default configuration), it prints

1. per evaluation of the objective (loss and gradient), best of ``--repeats``: one
   plain read of the training rows (``x.sum()``, the bandwidth reference), the
   two-product evaluation (``TwoPassSoftmax``) and the chunked one-read evaluation
   (``ChunkedSoftmax``, the CPU default), each as ms, implied GB/s of ``x``, reads
   of ``x`` at the measured bandwidth, and GFLOP/s (``4 N D K`` flops) beside a
   2048^2 ``torch.mm``'s measured in the same run, so it says which limit binds;
2. one strength (``--l2``) fitted from zero: ours without and with the covariance
   preconditioner (its one-off cost included) against scikit-learn's
   ``LogisticRegression`` (lbfgs, multinomial, same C, tol and class weights) on the
   same rows: seconds, iterations, top-1 agreement and the largest probability
   difference on the validation and test rows;
3. the tuned protocol's whole warm-started path (``HeadConfig`` defaults: 9 strengths,
   tol 1e-5): ``l2_path`` (ours) against ``l2_path(backend="sklearn")`` (scikit-learn
   warm-started along the same grid), the strength each picks by validation loss, and
   the agreement of the two chosen models.

Run ``python benchmarks/bench_multiclass.py`` (about 10 minutes on 2 half-busy cores, nearly all
of it scikit-learn's; ``--skip-path`` for parts 1-2 only).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from _common import best_of, matmul_flops, print_header, print_table

from cactus_features.features import FeatureSet
from cactus_features.heads.config import HeadConfig
from cactus_features.heads.fastpath.softmax_pass import ChunkedSoftmax
from cactus_features.heads.prepare.data import prepare
from cactus_features.heads.solvers.grid import PathPoint, choose, l2_path
from cactus_features.heads.solvers.multinomial import TwoPassSoftmax, fit_softmax_lbfgs
from cactus_features.heads.solvers.precondition import SoftmaxPreconditioner, softmax_curvature


def build_parser() -> argparse.ArgumentParser:
    """The command-line options (also read by ``tests/test_docs.py``)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=12250, help="training rows")
    p.add_argument("--n-val", type=int, default=2625, help="validation rows (and test rows)")
    p.add_argument("--d", type=int, default=2048, help="features")
    p.add_argument("--k", type=int, default=10, help="classes")
    p.add_argument("--rank", type=int, default=64, help="latent factors of the features")
    p.add_argument("--l2", type=float, default=1e-2, help="the single strength of part 2")
    p.add_argument("--repeats", type=int, default=7, help="repeats per timing (best kept)")
    p.add_argument("--skip-path", action="store_true", help="skip part 3 (the whole grid)")
    p.add_argument("--seed", type=int, default=0)
    return p


def make_features(n: int, n_val: int, d: int, k: int, rank: int, seed: int) -> FeatureSet:
    """Correlated rectified features: ``relu(latent @ mix + noise)``, class means in the latent."""
    rng = np.random.default_rng(seed)
    total = n + 2 * n_val
    labels = rng.choice(k, total, p=rng.dirichlet(np.full(k, 4.0)))
    mix = rng.standard_normal((rank, d), dtype=np.float32)
    mix *= (np.arange(1, rank + 1, dtype=np.float32) ** -0.5)[:, None]  # a decaying spectrum
    means = 0.35 * rng.standard_normal((k, rank), dtype=np.float32)
    latent = rng.standard_normal((total, rank), dtype=np.float32) + means[labels]
    x = latent @ mix + 0.5 * rng.standard_normal((total, d), dtype=np.float32)
    np.maximum(x + 0.5, 0.0, out=x)
    return FeatureSet(
        path=None,
        key={"backbone": "synthetic", "resolution": d},
        ids=np.array([f"r{i}" for i in range(total)], dtype=object),
        labels=labels.astype(np.int64),
        split=np.repeat(np.array([0, 1, 2], dtype=np.uint8), [n, n_val, n_val]),
        class_names=[f"c{c}" for c in range(k)],
        attrs={},
        _embeddings=x,
    )


def per_evaluation(x: torch.Tensor, y: torch.Tensor, s: torch.Tensor, k: int, repeats: int):
    """Part 1: the read reference and both evaluations at one (random) point."""
    gen = torch.Generator().manual_seed(1)
    w = 0.01 * torch.randn(k, x.shape[1], generator=gen, dtype=torch.float64)
    b = torch.zeros(k, dtype=torch.float64)
    n_bytes = x.numel() * x.element_size()
    flops = 4.0 * x.shape[0] * x.shape[1] * k
    read, _ = best_of(lambda: x.sum(), repeats)
    peak = matmul_flops(torch.float32, repeats=3)
    rows = [
        ["read x once (x.sum())", f"{read * 1e3:.2f}", f"{n_bytes / read / 1e9:.1f}", "1.0", ""]
    ]
    two = TwoPassSoftmax(x, y, s, k)
    with ChunkedSoftmax(x, y, s, k) as chunked:
        results = {}
        for name, fn in (
            ("two products (TwoPassSoftmax)", two),
            ("one read (ChunkedSoftmax)", chunked),
        ):
            fn(w, b)  # warm-up
            seconds, results[name] = best_of(lambda fn=fn: fn(w, b), repeats)
            rows.append([
                name, f"{seconds * 1e3:.2f}", f"{n_bytes / seconds / 1e9:.1f}",
                f"{seconds / read:.1f}", f"{flops / seconds / 1e9:.0f}",
            ])  # fmt: skip
    size = f"{x.shape[0]} x {x.shape[1]} float32 ({n_bytes / 1e6:.0f} MB)"
    print(f"\n1. one evaluation, {size}, K = {k}")
    print_table(rows, ["pass", "ms", "GB/s of x", "reads at bandwidth", "GFLOP/s"])
    print(f"   reference: 2048^2 torch.mm {peak / 1e9:.0f} GFLOP/s; at that rate the "
          f"{flops / 1e9:.2f} GFLOP of an evaluation take {flops / peak * 1e3:.1f} ms, "
          f"one read of x takes {read * 1e3:.1f} ms")  # fmt: skip
    (l1, g1, _), (l2, g2, _) = results.values()
    print(f"   agreement: loss rel. diff {abs(l1 - l2) / abs(l1):.1e}, gradient max rel. diff "
          f"{float((g1 - g2).abs().max() / g1.abs().max()):.1e}")  # fmt: skip


def probabilities(weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor) -> np.ndarray:
    """Softmax probabilities ``[N, K]`` (float64) of a linear head."""
    return torch.softmax(x.double() @ weight.double().T + bias.double(), dim=1).numpy()


def agreement(p: np.ndarray, q: np.ndarray) -> str:
    """Top-1 agreement and the largest probability difference."""
    top = np.mean(p.argmax(1) == q.argmax(1))
    return f"top-1 agree {top:.4f}, max |dp| {np.abs(p - q).max():.1e}"


def sklearn_fit(
    x: np.ndarray, y: np.ndarray, s: np.ndarray, c_value: float, tol: float, max_iter: int
):
    """scikit-learn's multinomial fit: ``(seconds, model)``."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c_value, tol=tol, max_iter=max_iter)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x, y, sample_weight=s)
    return time.perf_counter() - start, model


def single_strength(tensors, x_eval: torch.Tensor, k: int, lam: float, config: HeadConfig) -> None:
    """Part 2: one strength from zero, ours (plain, preconditioned) against scikit-learn."""
    x, y, s = tensors.x_train, tensors.y_train, tensors.w_train
    c_value = 1.0 / (lam * float(s.double().sum()))
    tol, limit = config.tol, config.epochs
    rows, probs = [], {}
    plain = fit_softmax_lbfgs(x, y, s, k, C=c_value, tol=tol, max_iter=limit)
    rows.append(["ours, L-BFGS", f"{plain.seconds:.2f}", plain.iterations, plain.converged])
    probs["ours"] = probabilities(plain.weight, plain.bias, x_eval)  # type: ignore[arg-type]
    start = time.perf_counter()
    pre = SoftmaxPreconditioner(x, s, k)
    pre.set(lam, softmax_curvature(torch.zeros(x.shape[0], k), s))
    built = time.perf_counter() - start
    fit = fit_softmax_lbfgs(x, y, s, k, C=c_value, tol=tol, max_iter=limit, preconditioner=pre)
    rows.append([
        f"ours, preconditioned ({built:.2f} s to build)", f"{built + fit.seconds:.2f}",
        fit.iterations, fit.converged,
    ])  # fmt: skip
    probs["ours, preconditioned"] = probabilities(fit.weight, fit.bias, x_eval)  # type: ignore[arg-type]
    seconds, model = sklearn_fit(
        x.numpy(), y.numpy().astype(np.int64), s.numpy().astype(np.float64), c_value, tol, limit
    )
    rows.append(["scikit-learn LogisticRegression", f"{seconds:.2f}", int(model.n_iter_[0]),
                 int(model.n_iter_[0]) < limit])  # fmt: skip
    theirs = model.predict_proba(x_eval.numpy())
    print(f"\n2. one strength from zero: l2 {lam:g} (C = {c_value:.3g}), tol {tol:g}")
    print_table(rows, ["fit", "seconds", "iterations", "converged"])
    for name, p in probs.items():
        print(f"   {name} vs scikit-learn on val+test rows: {agreement(p, theirs)}")


def whole_path(tensors, x_eval: torch.Tensor, k: int, config: HeadConfig) -> None:
    """Part 3: the tuned protocol's path, ours against scikit-learn's warm-started one."""
    rows, chosen = [], {}
    for name, backend in (
        ("ours (l2_path)", "torch"),
        ("scikit-learn (backend=sklearn)", "sklearn"),
    ):
        start = time.perf_counter()
        points: list[PathPoint] = l2_path(
            tensors, config.l2_grid, max_iter=config.epochs, tol=config.tol,
            backend=backend, n_classes=k,
        )  # fmt: skip
        seconds = time.perf_counter() - start
        i = choose(
            [p.val_loss for p in points], [p.val_auc for p in points], config.l2_grid, "val_loss"
        )
        chosen[name] = points[i]
        rows.append([
            name, f"{seconds:.2f}", sum(p.iterations for p in points),
            all(p.converged for p in points), f"{config.l2_grid[i]:g}", f"{points[i].val_loss:.4f}",
            f"{points[i].val_auc:.4f}",
        ])  # fmt: skip
    print(f"\n3. the tuned path: {len(config.l2_grid)} strengths {max(config.l2_grid):g} .. "
          f"{min(config.l2_grid):g}, tol {config.tol:g}, warm-started")  # fmt: skip
    print_table(rows, ["path", "seconds", "iterations", "all converged", "chosen l2", "val loss",
                       "val macro AUC"])  # fmt: skip
    ours, theirs = (probabilities(p.weight, p.bias, x_eval) for p in chosen.values())  # type: ignore[arg-type]
    print(f"   chosen models on val+test rows: {agreement(ours, theirs)}")
    print(f"   ratio: scikit-learn / ours = {float(rows[1][1]) / float(rows[0][1]):.1f}x")


def last_level_cache() -> str:
    """The CPU's last-level cache size as the kernel reports it (``"unknown"`` elsewhere):
    whether the training rows fit in it decides if a second read comes from DRAM."""
    caches = sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"))
    return caches[-1].read_text().strip() if caches else "unknown"


def main() -> None:
    args = build_parser().parse_args()
    print_header()
    print(f"last-level CPU cache: {last_level_cache()}")
    fs = make_features(args.n, args.n_val, args.d, args.k, args.rank, args.seed)
    config = HeadConfig.create()
    data = prepare(fs, config)
    tensors = data.tensors(torch.device("cpu"))
    x_eval = torch.from_numpy(data.inputs(np.concatenate([data.val, data.test])))
    counts = np.bincount(fs.labels[data.train], minlength=args.k)
    print(f"features: {args.n} train / {args.n_val} val / {args.n_val} test x {args.d}, "
          f"K = {args.k} (train class sizes {counts.min()}..{counts.max()}), rank {args.rank}, "
          f"seed {args.seed}; inputs standardised as the tuned protocol does")  # fmt: skip
    per_evaluation(tensors.x_train, tensors.y_train, tensors.w_train, args.k, args.repeats)
    single_strength(tensors, x_eval, args.k, args.l2, config)
    if not args.skip_path:
        whole_path(tensors, x_eval, args.k, config)


if __name__ == "__main__":
    main()
