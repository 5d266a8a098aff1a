"""Benchmark the tuned linear probe: fidelity on real caches, speed on cactus-sized features.

(a) Fidelity: on each cache given (default: the EfficientNet-Lite0 64 px and 224 px caches of
the real aerial-cactus data), the library's default protocol (``train_head`` with no options:
the ``tuned`` preset) against scikit-learn's ``LogisticRegression`` (lbfgs) fitted at every
strength of the SAME grid on the same inputs (the library's standardised training rows,
class-weighted, ``C = 1 / (lam * sum of sample weights)``) and chosen by the same criterion on
the same validation split; test ROC AUC and accuracy at 0.5 side by side, plus the ``report``
preset (the seed's Adam recipe, the old default). Targets: Lite0 @ 64 px test AUC >= 0.987,
@ 224 px >= 0.9988, each within 0.001 of scikit-learn's.

(b) Speed, side by side in one run on ``--n`` x ``--dim`` random float32 features with a planted
signal (``bench_head.make_features``; default 12,250 x 2,048): the tuned protocol (every
strength of the grid fitted and scored, the choice included) against one 500-epoch Adam head
(the ``report`` preset), each the best of ``--repeats`` after a warm-up call (kernel loading
paid once, outside the timings). Also timed: the same path with scikit-learn's solver
(``GridSolver(backend="sklearn")``) and without the covariance preconditioner. Target: tuned
<= 2x the Adam head, aim 1x.

Run: ``python benchmarks/bench_probe.py`` (a few minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import best_of, command_line, machine_summary, print_table
from bench_head import make_features

from cactus_features.features import load_features
from cactus_features.heads import train_head
from cactus_features.heads.config import HeadConfig
from cactus_features.heads.prepare.data import prepare
from cactus_features.heads.solvers.grid import GridSolver

CACHE_ROOT = Path("/work/cache-real/aerial-cactus-train-c119fb9b")
"""Where this project's real-data caches are (``--cache`` overrides)."""
DEFAULT_CACHES = (
    CACHE_ROOT / "efficientnet_lite0_IMAGENET1K_64px_weights_fp32_dfa645d3b0d2.h5",
    CACHE_ROOT / "efficientnet_lite0_IMAGENET1K_224px_weights_fp32_3ba5a60b1dd6.h5",
)
TARGETS = {64: 0.987, 224: 0.9988}
"""Test-AUC targets by resolution (issue 13)."""


def build_parser() -> argparse.ArgumentParser:
    """The command-line options (also read by ``tests/test_docs.py``)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--cache", action="append", help="feature cache .h5 for (a) (repeat; default: Lite0 64/224)"
    )
    p.add_argument("--skip-fidelity", action="store_true", help="skip (a)")
    p.add_argument("--skip-speed", action="store_true", help="skip (b)")
    p.add_argument("--n", type=int, default=12250, help="training rows of (b)")
    p.add_argument("--n-val", type=int, default=2625, help="validation (and test) rows of (b)")
    p.add_argument("--dim", type=int, default=2048, help="feature dimension of (b)")
    p.add_argument("--repeats", type=int, default=2, help="repeats of each timing (best kept)")
    p.add_argument("--skip-variants", action="store_true", help="(b): only tuned vs Adam")
    p.add_argument("--seed", type=int, default=0)
    return p


def _test_scores(score: np.ndarray, label: np.ndarray) -> tuple[float, float]:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(label, score)), float(((score >= 0.5) == label).mean())


def sklearn_best_on_validation(fs, grid, criterion: str) -> dict:
    """scikit-learn's LogisticRegression at every strength of ``grid`` (warm-started, tol
    1e-6), chosen on validation by ``criterion`` (ties: the stronger strength)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss, roc_auc_score

    data = prepare(fs, HeadConfig.create())
    x, xv, xt = (data.inputs(i) for i in (data.train, data.val, data.test))
    y, yv, yt = (data.labels[i] for i in (data.train, data.val, data.test))
    s, sv = data.class_weights[y], data.class_weights[yv]
    start = time.perf_counter()
    rows: list = [None] * len(grid)
    model = LogisticRegression(max_iter=5000, tol=1e-6, warm_start=True)
    for i in sorted(range(len(grid)), key=lambda i: -grid[i]):  # strongest first, warm-started
        model.set_params(C=1.0 / (grid[i] * s.sum()))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(x, y, sample_weight=s)
        pv = model.predict_proba(xv)[:, 1]
        coef = (model.coef_.copy(), model.intercept_.copy())
        rows[i] = (log_loss(yv, pv, sample_weight=sv), roc_auc_score(yv, pv), coef)
    seconds = time.perf_counter() - start
    key = (lambda r: r[0]) if criterion == "val_loss" else (lambda r: -r[1])
    best = min(range(len(rows)), key=lambda i: (key(rows[i]), -grid[i]))
    coef, intercept = rows[best][2]
    auc, acc = _test_scores(1.0 / (1.0 + np.exp(-(xt @ coef[0] + intercept[0]))), yt)
    return {"chosen": grid[best], "test_auc": auc, "test_acc": acc, "seconds": seconds}


def fidelity(caches: list[Path]) -> None:
    print("\n(a) fidelity: library default (tuned) vs scikit-learn over the same grid")
    rows = []
    for path in caches:
        if not path.is_file():
            print(f"  {path}: not found, skipped")
            continue
        fs = load_features(path)
        res = {p: None for p in ("tuned", "report")}
        for preset in res:
            start = time.perf_counter()
            r = train_head(fs, preset=preset, save=False)
            pred = r.predictions
            auc, acc = _test_scores(pred.score[pred.split == 2], pred.label[pred.split == 2])
            res[preset] = (r, auc, acc, time.perf_counter() - start)
        tuned = res["tuned"][0]
        grid = tuned.run.info["grid"]
        sk = sklearn_best_on_validation(fs, grid["values"], grid["criterion"])
        resolution = int(fs.key.get("resolution", 0))
        target = TARGETS.get(resolution)
        t_auc = res["tuned"][1]
        ok = target is not None and t_auc >= target and abs(t_auc - sk["test_auc"]) <= 1e-3
        report = res["report"][0]
        rows.append([
            fs.name,
            f"{grid['chosen_value']:g} / {sk['chosen']:g}",
            f"{t_auc:.5f} / {sk['test_auc']:.5f}",
            f"{res['tuned'][2]:.4f} / {sk['test_acc']:.4f}",
            f"{res['report'][1]:.4f} / {res['report'][2]:.4f} (best epoch {report.best_epoch})",
            f"{tuned.seconds:.1f} / {sk['seconds']:.1f} / {report.seconds:.1f}",
            f">= {target} and within 0.001: {'MET' if ok else 'NOT MET'}" if target else "-",
        ])  # fmt: skip
        conv = tuned.run.info["convergence"]
        losses = ", ".join(f"{v:.4f}" for v in grid["val_loss"])
        print(f"  {fs.name}: tuned grid val loss {losses}; converged={conv['converged']} "
              f"(max |grad| {conv['value']:.1e}); warnings: "
              f"{tuned.run.info['warnings'] or 'none'}")  # fmt: skip
    print_table(
        rows,
        ["backbone", "chosen l2 (ours / sklearn)", "test AUC (ours / sklearn)",
         "test acc@0.5 (ours / sklearn)", "report preset AUC / acc", "s (ours / sklearn / report)",
         "target"],
    )  # fmt: skip


def speed(args: argparse.Namespace) -> None:
    fs = make_features(args.n, args.n_val, args.dim, args.seed)
    print(f"\n(b) speed on {args.n} x {args.dim} float32 random features (planted signal), "
          f"validation {args.n_val} rows; best of {args.repeats} after a warm-up call")  # fmt: skip
    train_head(fs, save=False)
    train_head(fs, preset="report", epochs=2, save=False)

    def run(**kwargs):
        return lambda: train_head(fs, save=False, **kwargs)

    cases = [("tuned protocol (default)", run()), ("one 500-epoch Adam head (report)",
             run(preset="report"))]  # fmt: skip
    results = {}
    for name, fn in cases:
        wall, result = best_of(fn, args.repeats)
        results[name] = (wall, result)
    if not args.skip_variants:
        data = prepare(fs, HeadConfig.create())
        config = HeadConfig.create()
        import torch

        for name, solver in (
            ("tuned path, scikit-learn solver", GridSolver(backend="sklearn")),
            ("tuned path, no preconditioner", GridSolver(precondition=False)),
        ):
            wall, fit = best_of(lambda s=solver: s.fit(data, [config], torch.device("cpu")), 1)
            results[name] = (wall, fit)
    base = results["one 500-epoch Adam head (report)"][0]
    rows = []
    for name, (wall, result) in results.items():
        info = result.run.info if hasattr(result, "run") else result.info
        grid = info.get("grid")
        what = (f"{len(grid['values'])} strengths, chose {grid['chosen_value']:g}, "
                f"{sum(grid['steps'])} L-BFGS iterations") if grid else (
                f"{info.get('epochs_run', '')} epochs")  # fmt: skip
        rows.append([name, f"{wall:.2f}", f"{wall / base:.2f}x", what])
    print_table(rows, ["what", "seconds (end to end)", "vs Adam head", "details"])
    ratio = results["tuned protocol (default)"][0] / base
    print(f"target: tuned <= 2x the Adam head (aim 1x): {ratio:.2f}x -> "
          f"{'MET' if ratio <= 2 else 'NOT MET'}")  # fmt: skip


def main() -> None:
    args = build_parser().parse_args()
    print(f"command: {command_line()}")
    print(f"machine: {machine_summary()}")
    if not args.skip_fidelity:
        fidelity([Path(c) for c in args.cache] if args.cache else list(DEFAULT_CACHES))
    if not args.skip_speed:
        speed(args)


if __name__ == "__main__":
    main()
