"""Standardisation uses training statistics only and travels with the head."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from cactus_features.heads import Standardizer, predict_scores, train_head

from .synthetic import make_features


def test_statistics_come_from_the_training_split_only() -> None:
    fs = make_features(n=300, d=8)
    emb = fs.embeddings.copy()
    emb[fs.split != 0] += 100.0  # val/test far away: must not move the statistics
    fs = replace(fs, _embeddings=emb)
    train = emb[fs.split == 0].astype(np.float64)
    result = train_head(fs, epochs=5, preset="report", save=False)
    np.testing.assert_allclose(result.run.standardize["mean"], train.mean(0), rtol=1e-5)
    np.testing.assert_allclose(result.run.standardize["std"], train.std(0), rtol=1e-5)
    assert result.run.info["standardized"] is True
    # the tuned default: per-feature centring, one global scale (root mean variance)
    tuned = train_head(fs, save=False)
    np.testing.assert_allclose(tuned.run.standardize["mean"], train.mean(0), rtol=1e-5)
    global_std = np.sqrt(train.var(0).mean())
    np.testing.assert_allclose(tuned.run.standardize["std"], global_std, rtol=1e-5)


def test_near_constant_features_are_only_centred() -> None:
    x = np.random.default_rng(0).standard_normal((50, 3)).astype(np.float32)
    x[:, 1] = 7.0
    st = Standardizer.fit(x)
    assert st.std[1] == 1.0 and st.mean[1] == pytest.approx(7.0)
    out = st.transform(np.array([[0.0, 7.5, 0.0]], dtype=np.float32))
    assert out[0, 1] == pytest.approx(0.5)
    z = st.transform(x)
    np.testing.assert_allclose(z[:, [0, 2]].mean(0), 0.0, atol=1e-6)
    np.testing.assert_allclose(z[:, [0, 2]].std(0), 1.0, atol=1e-5)


@pytest.mark.parametrize("standardize", [True, False])
def test_predict_scores_reproduces_saved_scores(standardize: bool) -> None:
    fs = make_features(n=200, d=8, n_unlabelled=7)
    result = train_head(
        fs, head="mlp", hidden=(8,), epochs=20, lr=1e-2, standardize=standardize, save=False
    )
    assert bool(result.run.standardize) is standardize
    rows = fs.split <= 2
    scores = predict_scores(result.run, fs.embeddings[rows])
    np.testing.assert_allclose(scores, result.predictions.score, rtol=0, atol=1e-12)
    assert ((scores > 0) & (scores < 1)).all()


def test_predict_scores_from_a_loaded_run_and_wrong_dimension(cache_file) -> None:
    from cactus_features.errors import CacheError
    from cactus_features.features import load_features
    from cactus_features.runfile import load_run

    result = train_head(cache_file, epochs=5)
    run = load_run(result.path)
    fs = load_features(cache_file)
    unlabelled = fs.split == 255
    scores = predict_scores(run, fs.embeddings[unlabelled])  # e.g. Kaggle test images
    assert scores.shape == (int(unlabelled.sum()),) and scores.dtype == np.float64
    rows = fs.split <= 2
    np.testing.assert_allclose(predict_scores(run, fs.embeddings[rows]), run.predictions.score,
                               rtol=0, atol=1e-12)  # fmt: skip
    with pytest.raises(CacheError, match="input dim 16"):
        predict_scores(run, fs.embeddings[:, :8])
