"""Multi-label split: iterative stratification against a plain random split.

On generated label matrices (``--labels`` shares, one label also following the
first, so labels are correlated), for each ``--sizes`` N: the largest gap between
a label's share in any split and its share overall, for
:func:`~cactus_features.data.split.iterative_split` and for the median of
``--random-draws`` seeded random 70/15/15 splits; the largest gap counted in
images; and the time the iterative split took.

Run ``python benchmarks/bench_split.py`` (seconds).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import command_line, machine_summary, print_table

from cactus_features.data.split import SplitConfig, iterative_split

RATIOS = np.array([0.70, 0.15, 0.15])


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500,2000,20000", help="Dataset sizes, comma-separated.")
    parser.add_argument(
        "--labels", default="0.03,0.08,0.15,0.3,0.5", help="Share of each label, comma-separated."
    )
    parser.add_argument("--random-draws", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    return parser


def labels(n: int, shares: list[float], seed: int) -> np.ndarray:
    """``[n, L + 1]`` 0/1 labels with the given shares; the last is the OR of the first two."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, len(shares))) < np.asarray(shares)).astype(np.uint8)
    return np.column_stack([y, y[:, 0] | y[:, 1]])


def gaps(y: np.ndarray, split: np.ndarray) -> tuple[float, float]:
    """Largest share gap and largest count gap (images) of any label in any split."""
    share = y.mean(axis=0)
    by_share = max(float(np.abs(y[split == c].mean(axis=0) - share).max()) for c in range(3))
    by_count = max(
        float(np.abs(y[split == c].sum(axis=0) - y.sum(axis=0) * r).max())
        for c, r in enumerate(RATIOS)
    )
    return by_share, by_count


def random_split(n: int, rng: np.random.Generator) -> np.ndarray:
    """A plain seeded random 70/15/15 split."""
    order = rng.permutation(n)
    split = np.zeros(n, dtype=np.uint8)
    split[order[int(0.70 * n) : int(0.85 * n)]] = 1
    split[order[int(0.85 * n) :]] = 2
    return split


def main() -> None:
    args = build_parser().parse_args()
    print(command_line())
    print(machine_summary())
    shares = [float(s) for s in args.labels.split(",")]
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        y = labels(n, shares, args.seed)
        t0 = time.perf_counter()
        split = iterative_split(y, SplitConfig(seed=args.seed))
        seconds = time.perf_counter() - t0
        share_gap, count_gap = gaps(y, split)
        rng = np.random.default_rng(args.seed)
        draws = [gaps(y, random_split(n, rng)) for _ in range(args.random_draws)]
        rows.append(
            [
                str(n),
                str(y.shape[1]),
                f"{share_gap:.4f}",
                f"{np.median([d[0] for d in draws]):.4f}",
                f"{count_gap:.1f}",
                f"{np.median([d[1] for d in draws]):.1f}",
                f"{seconds:.3f}",
            ]
        )
    print_table(
        rows,
        [
            "N",
            "labels",
            "share gap (iterative)",
            "share gap (random, median)",
            "images off (iterative)",
            "images off (random, median)",
            "seconds",
        ],
    )


if __name__ == "__main__":
    main()
