"""Integration test on a 1,000-image slice of the real Kaggle data (CI has ../shared)."""

from __future__ import annotations

import numpy as np
import pytest

from cactus_features import extract_features
from tests.conftest import REAL_DATA

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (REAL_DATA / "train.csv").is_file(),
        reason=f"real Aerial Cactus data not found at {REAL_DATA}",
    ),
]


def test_lite0_on_real_cactus_slice(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    native, up = extract_features(
        REAL_DATA / "train",
        ["efficientnet_lite0@32", "efficientnet_lite0@64"],
        labels=REAL_DATA / "train.csv",
        limit=1000,
        cache_dir=tmp_path,
        quiet=True,
    )
    assert native.embeddings.shape == up.embeddings.shape == (1000, 1280)
    assert native.class_names == ["0", "1"]
    assert np.array_equal(native.split, up.split)
    # the documented pitfall: the native 32 px input collapses, 64 px does not
    assert native.attrs["health"]["collapsed"] is True
    assert up.attrs["health"]["collapsed"] is False
    x, y = up.embeddings, up.labels
    train, test = up.mask("train"), up.mask("test")
    clf = LogisticRegression(max_iter=2000, C=0.1).fit(x[train], y[train])
    auc = roc_auc_score(y[test], clf.predict_proba(x[test])[:, 1])
    assert auc > 0.95
