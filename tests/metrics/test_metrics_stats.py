"""DeLong, McNemar and the paired bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

from cactus_features.metrics.stats import (
    delong_covariance,
    delong_test,
    mcnemar_exact,
    mcnemar_exact_p,
    midrank,
    multiplicities,
    paired_bootstrap,
    percentile_interval,
)


def _slow_delong(is_pos: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong et al. (1988) by explicit O(n^2) placement values (structural components)."""
    x = scores[:, is_pos]
    y = scores[:, ~is_pos]
    m, n = x.shape[1], y.shape[1]
    k = scores.shape[0]
    v10 = np.zeros((k, m))
    v01 = np.zeros((k, n))
    aucs = np.zeros(k)
    for r in range(k):
        psi = np.zeros((m, n))
        for i in range(m):
            for j in range(n):
                psi[i, j] = 1.0 if x[r, i] > y[r, j] else (0.5 if x[r, i] == y[r, j] else 0.0)
        aucs[r] = psi.mean()
        v10[r] = psi.mean(axis=1)
        v01[r] = psi.mean(axis=0)
    s10 = np.zeros((k, k))
    s01 = np.zeros((k, k))
    for a in range(k):
        for b in range(k):
            s10[a, b] = np.sum((v10[a] - aucs[a]) * (v10[b] - aucs[b])) / (m - 1)
            s01[a, b] = np.sum((v01[a] - aucs[a]) * (v01[b] - aucs[b])) / (n - 1)
    return aucs, s10 / m + s01 / n


@pytest.mark.parametrize("seed", range(5))
def test_fast_delong_matches_slow_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 90
    y = rng.random(n) < 0.4
    y[:2], y[2:4] = True, False
    base = y * 1.0 + rng.normal(0, 1, n)
    scores = np.stack(
        [
            np.round(base + rng.normal(0, 0.5, n), 1),  # ties
            base + rng.normal(0, 1.0, n),
            np.round(rng.random(n), 2),  # uninformative
        ]
    )
    aucs, cov = delong_covariance(y, scores)
    ref_aucs, ref_cov = _slow_delong(y, scores)
    np.testing.assert_allclose(aucs, ref_aucs, atol=1e-12)
    np.testing.assert_allclose(cov, ref_cov, atol=1e-12)
    for r in range(3):
        assert aucs[r] == pytest.approx(roc_auc_score(y, scores[r]), abs=1e-12)


def test_delong_hand_checked_case() -> None:
    # A: positives (0.8, 0.6), negatives (0.7, 0.2): placements V10 = (1, 0.5), V01 = (0.5, 1)
    # B: positives (0.9, 0.3), negatives (0.2, 0.1): perfect, placements all 1
    # AUC_A = 0.75, AUC_B = 1; var(A) = 0.125/2 + 0.125/2 = 0.125, var(B) = cov = 0
    # z = -0.25 / sqrt(0.125) = -0.7071; p = erfc(0.5) = 0.4795
    y = np.array([True, True, False, False])
    a = np.array([0.8, 0.6, 0.7, 0.2])
    b = np.array([0.9, 0.3, 0.2, 0.1])
    res = delong_test(y, a, b)
    assert res.auc_a == pytest.approx(0.75)
    assert res.auc_b == pytest.approx(1.0)
    assert res.std_error == pytest.approx(math.sqrt(0.125))
    assert res.z == pytest.approx(-1 / math.sqrt(2))
    assert res.p_value == pytest.approx(math.erfc(0.5)) == pytest.approx(0.4795001222)


def test_delong_identical_scores_give_p_one() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(50) < 0.5
    s = rng.random(50)
    res = delong_test(y, s, s)
    assert res.difference == 0.0 and res.p_value == 1.0


def test_delong_detects_a_real_difference() -> None:
    rng = np.random.default_rng(1)
    y = rng.random(400) < 0.5
    good = y + rng.normal(0, 0.5, 400)
    bad = y + rng.normal(0, 3.0, 400)
    assert delong_test(y, good, bad).p_value < 1e-6


def test_delong_needs_two_of_each_class() -> None:
    with pytest.raises(ValueError, match="two positive"):
        delong_test(np.array([True, False, False]), np.zeros(3), np.zeros(3))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.floats(0, 1), st.floats(0, 1)), min_size=4, max_size=40)
)
def test_delong_auc_in_unit_interval(cases: list[tuple[bool, float, float]]) -> None:
    y = np.array([c[0] for c in cases])
    if y.sum() < 2 or (~y).sum() < 2:
        return
    scores = np.array([[c[1] for c in cases], [c[2] for c in cases]])
    aucs, cov = delong_covariance(y, scores)
    assert np.all((aucs >= 0) & (aucs <= 1))
    assert np.all(np.diag(cov) >= -1e-15)
    res = delong_test(y, scores[0], scores[1])
    assert 0.0 <= res.p_value <= 1.0


def test_midrank_matches_scipy() -> None:
    x = np.array([3.0, 1.0, 3.0, 2.0, 3.0, 0.5, 1.0])
    np.testing.assert_allclose(midrank(x), rankdata(x, method="average"))


@pytest.mark.parametrize(
    ("b", "c", "p"),
    [
        (1, 9, 0.021484375),  # 2 * (1 + 10) / 2**10
        (9, 1, 0.021484375),
        (0, 0, 1.0),
        (5, 5, 1.0),
        (0, 5, 0.0625),  # 2 / 2**5
        (2, 3, 1.0),
        (3, 12, 0.03515625),  # 2 * (1 + 15 + 105 + 455) / 2**15
    ],
)
def test_mcnemar_exact_hand_checked(b: int, c: int, p: float) -> None:
    assert mcnemar_exact_p(b, c) == pytest.approx(p, rel=1e-12)


def test_mcnemar_from_correctness_vectors() -> None:
    # 4 both right, 1 only A right, 9 only B right, 2 both wrong
    a = np.array([1] * 4 + [1] + [0] * 9 + [0] * 2, dtype=bool)
    b = np.array([1] * 4 + [0] + [1] * 9 + [0] * 2, dtype=bool)
    res = mcnemar_exact(a, b)
    assert (res.b, res.c) == (1, 9)
    assert res.p_value == pytest.approx(0.021484375)


def test_multiplicities() -> None:
    idx = np.array([[0, 0, 2], [1, 2, 2]])
    np.testing.assert_array_equal(multiplicities(idx, 4), [[2, 0, 1, 0], [0, 1, 2, 0]])


def _mean_statistic(values: np.ndarray):
    def stat(w: np.ndarray) -> dict:
        return {"mean": (w @ values) / w.sum(axis=1), "first": (w @ values * 0) + w[:, 0]}

    return stat


def test_bootstrap_reproducible_by_seed() -> None:
    values = np.random.default_rng(5).normal(size=150)
    a = paired_bootstrap(_mean_statistic(values), 150, n_resamples=500, seed=3)
    b = paired_bootstrap(_mean_statistic(values), 150, n_resamples=500, seed=3)
    c = paired_bootstrap(_mean_statistic(values), 150, n_resamples=500, seed=4)
    np.testing.assert_array_equal(a["mean"], b["mean"])
    assert percentile_interval(a["mean"]) == percentile_interval(b["mean"])
    assert percentile_interval(a["mean"]) != percentile_interval(c["mean"])
    assert a["mean"].shape == (500,)


def test_bootstrap_chunking_does_not_change_results() -> None:
    values = np.random.default_rng(6).normal(size=100)
    whole = paired_bootstrap(_mean_statistic(values), 100, 300, seed=1, chunk_elements=10**7)
    chunked = paired_bootstrap(_mean_statistic(values), 100, 300, seed=1, chunk_elements=700)
    np.testing.assert_array_equal(whole["first"], chunked["first"])  # same resampled indices
    np.testing.assert_allclose(whole["mean"], chunked["mean"], rtol=1e-12)


def test_bootstrap_interval_covers_the_mean() -> None:
    values = np.random.default_rng(7).normal(loc=2.0, size=400)
    reps = paired_bootstrap(_mean_statistic(values), 400, 1000, seed=0)["mean"]
    low, high = percentile_interval(reps, 0.95)
    se = values.std(ddof=1) / math.sqrt(len(values))
    assert low < values.mean() < high
    assert high - low == pytest.approx(2 * 1.96 * se, rel=0.15)


def test_percentile_interval_ignores_undefined_replicates() -> None:
    assert percentile_interval(np.array([np.nan, 1.0, 1.0, 1.0])) == (1.0, 1.0)
    low, high = percentile_interval(np.array([np.nan, np.nan]))
    assert math.isnan(low) and math.isnan(high)
