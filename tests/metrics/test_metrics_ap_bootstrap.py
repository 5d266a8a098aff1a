"""Ranking metrics of bootstrap resamples: defined for every resample, equal to scikit-learn's.

A resample that does not draw the top-scored case(s) gives those scores weight 0. Average
precision used to divide ``0 / 0`` there and came out NaN, so AP intervals used only the
resamples that drew the top case (about 63% of them: a biased subset).
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from cactus_features.metrics.core import cumulative_counts
from cactus_features.metrics.multiclass import column_ranking
from cactus_features.metrics.stats import multiplicities, paired_bootstrap


def _cases(seed: int, n: int, rounding: int | None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.4
    s = 1.0 / (1.0 + np.exp(-(rng.normal(0, 1.5, n) + 1.0 * (2 * y - 1))))
    return y, (s if rounding is None else np.round(s, rounding))


def _resamples(n: int, b: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(b, n))


@pytest.mark.parametrize("rounding", [None, 1, 2])
@pytest.mark.parametrize("seed", range(3))
def test_resampled_ap_and_auc_equal_sklearn_on_the_resampled_rows(
    seed: int, rounding: int | None
) -> None:
    y, s = _cases(seed, n=30, rounding=rounding)
    idx = _resamples(len(y), 200, seed)
    w = multiplicities(idx, len(y))
    curve = cumulative_counts(y, s, w)
    ap, auc = curve.average_precision(), curve.roc_auc()
    col_auc, col_ap = column_ranking(y[:, None], s[:, None], w, average_precision=True)
    top = s == s.max()
    missed_top = 0
    for b in range(len(idx)):
        yb, sb = y[idx[b]], s[idx[b]]
        if not yb.any():
            assert np.isnan(ap[b]) and np.isnan(col_ap[b, 0])
            continue
        missed_top += int(w[b, top].sum() == 0)
        expected = skm.average_precision_score(yb, sb)
        assert ap[b] == pytest.approx(expected, abs=1e-12), b
        assert col_ap[b, 0] == pytest.approx(expected, abs=1e-12), b
        if not yb.all():
            expected_auc = skm.roc_auc_score(yb, sb)
            assert auc[b] == pytest.approx(expected_auc, abs=1e-12), b
            assert col_auc[b, 0] == pytest.approx(expected_auc, abs=1e-12), b
    assert missed_top >= 10  # the case that used to give NaN is exercised


def test_ap_is_defined_for_every_bootstrap_resample_with_a_positive() -> None:
    y, s = _cases(5, n=40, rounding=None)

    def statistic(w: np.ndarray) -> dict[str, np.ndarray]:
        return {
            "ap": cumulative_counts(y, s, w).average_precision(),
            "n_pos": w[:, y].sum(axis=1),
        }

    r = paired_bootstrap(statistic, len(y), n_resamples=2000, seed=0)
    has_pos = r["n_pos"] > 0
    assert has_pos.all()
    assert np.isfinite(r["ap"]).all()  # before the fix: ~63% (only those drawing the top case)
