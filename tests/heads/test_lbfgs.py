"""The L-BFGS solver reaches scikit-learn's LogisticRegression optimum.

Stated tolerance: on standardised synthetic data with inverse class weights,
coefficients and intercept within 1e-5 and probabilities within 1e-6 of sklearn's
(lbfgs, tol 1e-10); through ``train_head`` (weights saved as float32)
probabilities within 1e-4.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from cactus_features.heads import compute_class_weights, train_head
from cactus_features.heads.solvers.lbfgs import fit_logistic_lbfgs

from .synthetic import make_features


def standardised_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((600, 15)) * rng.uniform(0.5, 3.0, 15) + 2.0
    y = (x @ rng.standard_normal(15) + rng.standard_normal(600) > 4.0).astype(np.int64)
    return (x - x.mean(0)) / x.std(0), y


@pytest.mark.parametrize("C", [0.01, 1.0, 100.0])
def test_matches_sklearn_with_class_weights(C: float) -> None:
    x, y = standardised_data()
    weights, _ = compute_class_weights(y, ["0", "1"], "inverse")
    assert abs(weights[0] - weights[1]) > 0.2  # the weights matter here
    sk = LogisticRegression(C=C, class_weight=dict(enumerate(weights)), tol=1e-10, max_iter=10**5)
    sk.fit(x, y)  # default penalty is L2
    fit = fit_logistic_lbfgs(
        torch.from_numpy(x),
        torch.from_numpy(y),
        torch.from_numpy(weights[y]),
        C=C,
        tol=1e-10,
        max_iter=10**4,
    )
    np.testing.assert_allclose(fit.weight.numpy(), sk.coef_[0], rtol=0, atol=1e-5)
    assert fit.bias == pytest.approx(sk.intercept_[0], abs=1e-5)
    ours = torch.sigmoid(torch.from_numpy(x) @ fit.weight + fit.bias).numpy()
    np.testing.assert_allclose(ours, sk.predict_proba(x)[:, 1], rtol=0, atol=1e-6)
    assert np.all(np.diff(fit.history["train_loss"]) <= 1e-12)  # monotone descent


def test_train_head_lbfgs_matches_sklearn_probabilities() -> None:
    fs = make_features(n=500, d=10, seed=2)
    result = train_head(fs, solver="lbfgs", C=0.5, save=False, **{"tol": 1e-9})
    assert result.run.config["select"] == "last"
    assert result.best_epoch == result.run.info["epochs_run"] >= 1
    assert result.run.info["lbfgs_converged"] is True
    train = fs.split == 0
    mean = fs.embeddings[train].astype(np.float64).mean(0)
    std = fs.embeddings[train].astype(np.float64).std(0)
    weights = result.class_weights
    sk = LogisticRegression(C=0.5, class_weight=dict(enumerate(weights)), tol=1e-10, max_iter=10**5)
    sk.fit((fs.embeddings[train] - mean) / std, fs.labels[train])
    rows = fs.split <= 2
    expected = sk.predict_proba((fs.embeddings[rows] - mean) / std)[:, 1]
    np.testing.assert_allclose(result.predictions.score, expected, rtol=0, atol=1e-4)


def test_lbfgs_only_for_linear_full_batch() -> None:
    from cactus_features.errors import ConfigError

    fs = make_features(n=100, d=4)
    with pytest.raises(ConfigError, match="linear head only"):
        train_head(fs, head="mlp", solver="lbfgs", save=False)
    with pytest.raises(ConfigError, match="full-batch"):
        train_head(fs, solver="lbfgs", batch_size=16, save=False)
