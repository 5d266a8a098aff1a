"""Statistics for comparing backbones on one test set.

* :func:`paired_bootstrap` — test-set resampling shared by every backbone, so
  intervals for each backbone and for their differences are paired.
* :func:`percentile_interval` — percentile bootstrap confidence intervals.
* :func:`bootstrap_p_value` — two-sided p-value of a difference from its paired
  bootstrap replicates (the test of macro AUC / mAP differences).
* :func:`delong_test` — DeLong's test for two correlated ROC AUCs, with the
  O(n log n) midrank algorithm of Sun & Xu (2014).
* :func:`mcnemar_exact` — McNemar's exact test for two paired accuracies.

References:
    DeLong, DeLong & Clarke-Pearson (1988), "Comparing the areas under two or
    more correlated receiver operating characteristic curves: a nonparametric
    approach", Biometrics 44(3).
    Sun & Xu (2014), "Fast implementation of DeLong's algorithm for comparing
    the areas under correlated receiver operating characteristic curves",
    IEEE Signal Processing Letters 21(11).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import numpy as np

DEFAULT_CHUNK_ELEMENTS = 2_000_000
"""Upper bound on ``resamples x cases`` held in memory at once by the bootstrap."""


def paired_bootstrap(
    statistic: Callable[[np.ndarray], dict[Hashable, np.ndarray]],
    n: int,
    n_resamples: int = 2000,
    seed: int = 0,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> dict[Hashable, np.ndarray]:
    """Evaluate a statistic on bootstrap resamples of ``n`` cases.

    Each resample draws ``n`` case indices with replacement (``numpy`` generator
    seeded with ``seed``). The indices are turned into case multiplicities
    ``[b, n]`` and handed to ``statistic``, which must evaluate every backbone on
    the same weights: that is what makes the replicates paired. Resamples are
    processed in chunks of at most ``chunk_elements / n`` to bound memory; the
    result depends only on ``(n, n_resamples, seed)`` and the chunk size.

    Args:
        statistic: Maps multiplicities ``[b, n]`` to ``{key: values [b]}``.
        n: Number of cases.
        n_resamples: Number of bootstrap resamples ``B``.
        seed: Seed of the random generator.
        chunk_elements: Memory bound (see above).

    Returns:
        ``{key: replicates [B]}``.
    """
    if n <= 0:
        raise ValueError("cannot bootstrap an empty sample")
    rng = np.random.default_rng(seed)
    chunk = max(1, chunk_elements // n)
    parts: dict[Hashable, list[np.ndarray]] = {}
    for start in range(0, n_resamples, chunk):
        b = min(chunk, n_resamples - start)
        idx = rng.integers(0, n, size=(b, n))
        weights = multiplicities(idx, n)
        for key, values in statistic(weights).items():
            parts.setdefault(key, []).append(np.asarray(values, dtype=np.float64).reshape(b))
    return {k: np.concatenate(v) for k, v in parts.items()}


def multiplicities(indices: np.ndarray, n: int) -> np.ndarray:
    """How often each of ``n`` cases occurs in each row of resampled indices.

    Args:
        indices: Resampled case indices ``[b, k]`` with values in ``[0, n)``.
        n: Number of cases.

    Returns:
        Counts ``[b, n]`` (int64); each row sums to ``k``.
    """
    indices = np.asarray(indices)
    b = indices.shape[0]
    flat = (indices + (np.arange(b) * n)[:, None]).ravel()
    return np.bincount(flat, minlength=b * n).reshape(b, n)


def percentile_interval(replicates: np.ndarray, ci: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval, ignoring undefined (NaN) replicates.

    Args:
        replicates: Bootstrap replicates of a statistic ``[B]``.
        ci: Coverage, e.g. ``0.95``.

    Returns:
        ``(low, high)``; ``(nan, nan)`` when no replicate is defined.
    """
    r = np.asarray(replicates, dtype=np.float64)
    r = r[np.isfinite(r)]
    if r.size == 0:
        return math.nan, math.nan
    alpha = (1.0 - ci) / 2.0
    low, high = np.quantile(r, [alpha, 1.0 - alpha])
    return float(low), float(high)


def bootstrap_p_value(replicates: np.ndarray) -> float:
    """Two-sided p-value of "the difference is 0" from paired bootstrap replicates of it.

    ``p = min(1, 2 min((1 + #{d* <= 0}) / (B + 1), (1 + #{d* >= 0}) / (B + 1)))`` over
    the ``B`` defined replicates: the smallest ``alpha`` at which the ``1 - alpha``
    percentile interval of the difference excludes 0 (with the usual ``+1`` so a
    finite number of resamples never gives 0). It can be no smaller than
    ``2 / (B + 1)``.

    Args:
        replicates: Bootstrap replicates of a difference ``[B]`` (NaN ignored).

    Returns:
        The p-value; NaN when no replicate is defined.
    """
    r = np.asarray(replicates, dtype=np.float64)
    r = r[np.isfinite(r)]
    if r.size == 0:
        return math.nan
    b = r.size
    low = (1 + int(np.sum(r <= 0))) / (b + 1)
    high = (1 + int(np.sum(r >= 0))) / (b + 1)
    return float(min(1.0, 2.0 * min(low, high)))


def midrank(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x`` where tied values share their mean rank, O(n log n)."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    cuts = np.flatnonzero(np.diff(xs) != 0) + 1
    starts = np.concatenate([[0], cuts])
    ends = np.concatenate([cuts, [n]])
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def delong_covariance(is_pos: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs of several scorings of the same cases and DeLong's covariance matrix.

    Sun & Xu's algorithm: the placement values (structural components) come
    from midranks within the positives, within the negatives and over both.

    Args:
        is_pos: Whether each case is positive ``[N]``.
        scores: One row of scores per classifier ``[K, N]``.

    Returns:
        ``(aucs [K], covariance [K, K])``.

    Raises:
        ValueError: If there are fewer than two positives or two negatives.
    """
    is_pos = np.asarray(is_pos, dtype=bool)
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    x = scores[:, is_pos]
    y = scores[:, ~is_pos]
    m, n = x.shape[1], y.shape[1]
    if m < 2 or n < 2:
        raise ValueError("DeLong's test needs at least two positive and two negative cases")
    k = scores.shape[0]
    tx = np.stack([midrank(x[r]) for r in range(k)])
    ty = np.stack([midrank(y[r]) for r in range(k)])
    tz = np.stack([midrank(np.concatenate([x[r], y[r]])) for r in range(k)])
    # Mann-Whitney U over m n: midranks are half-integers, so the subtraction is exact
    # and the AUC stays inside [0, 1] (``sum / mn - (m + 1) / 2n`` could round past 1)
    aucs = (tz[:, :m].sum(axis=1) - m * (m + 1) / 2.0) / (m * n)
    v10 = (tz[:, :m] - tx) / n  # per positive: share of negatives scored lower (ties 1/2)
    v01 = 1.0 - (tz[:, m:] - ty) / m  # per negative: share of positives scored higher
    s10 = np.atleast_2d(np.cov(v10))
    s01 = np.atleast_2d(np.cov(v01))
    return aucs, s10 / m + s01 / n


@dataclass(frozen=True)
class DeLongResult:
    """DeLong's test of ``AUC_a - AUC_b = 0`` on the same cases.

    Attributes:
        auc_a: AUC of the first scoring.
        auc_b: AUC of the second scoring.
        difference: ``auc_a - auc_b``.
        std_error: Standard error of the difference.
        z: The z statistic.
        p_value: Two-sided p-value (normal approximation).
    """

    auc_a: float
    auc_b: float
    difference: float
    std_error: float
    z: float
    p_value: float


def delong_test(is_pos: np.ndarray, score_a: np.ndarray, score_b: np.ndarray) -> DeLongResult:
    """DeLong's two-sided test for the difference of two correlated ROC AUCs.

    Args:
        is_pos: Whether each case is positive ``[N]``.
        score_a: Scores of the first classifier ``[N]``.
        score_b: Scores of the second classifier on the same cases ``[N]``.

    Returns:
        The AUCs, their difference, its standard error, z and p. When the
        variance of the difference is zero (e.g. identically ranked scores) the
        p-value is 1 if the AUCs are equal and 0 otherwise.
    """
    aucs, cov = delong_covariance(is_pos, np.stack([score_a, score_b]))
    diff = float(aucs[0] - aucs[1])
    var = float(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1])
    if not var > 1e-12 * (cov[0, 0] + cov[1, 1]):  # zero up to rounding (or both perfect)
        equal = abs(diff) <= 1e-12
        return DeLongResult(
            float(aucs[0]),
            float(aucs[1]),
            diff,
            0.0,
            0.0 if equal else math.inf,
            1.0 if equal else 0.0,
        )
    se = math.sqrt(var)
    z = diff / se
    return DeLongResult(
        float(aucs[0]), float(aucs[1]), diff, se, z, math.erfc(abs(z) / math.sqrt(2))
    )


@dataclass(frozen=True)
class McNemarResult:
    """McNemar's exact test of equal accuracy on paired cases.

    Attributes:
        b: Cases the first classifier gets right and the second wrong.
        c: Cases the first classifier gets wrong and the second right.
        p_value: Two-sided exact p-value, ``min(1, 2 P(X <= min(b, c)))`` with
            ``X ~ Binomial(b + c, 1/2)``; 1 when there are no discordant pairs.
    """

    b: int
    c: int
    p_value: float


def mcnemar_exact_p(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts ``b`` and ``c``."""
    n = int(b) + int(c)
    if n == 0:
        return 1.0
    from scipy.stats import binom  # scipy.stats takes a second to import: only when needed

    return float(min(1.0, 2.0 * binom.cdf(min(int(b), int(c)), n, 0.5)))


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> McNemarResult:
    """McNemar's exact test from per-case correctness of two classifiers.

    Args:
        correct_a: Whether the first classifier is right on each case ``[N]``.
        correct_b: Whether the second classifier is right on the same cases ``[N]``.

    Returns:
        The discordant counts and the two-sided exact p-value.
    """
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    n_b = int(np.sum(a & ~b))
    n_c = int(np.sum(~a & b))
    return McNemarResult(n_b, n_c, mcnemar_exact_p(n_b, n_c))
