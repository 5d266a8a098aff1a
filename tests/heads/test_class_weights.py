"""Class weights: values, direction (minority weighted up), sklearn parity, parsing."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.utils.class_weight import compute_class_weight

from cactus_features.errors import ConfigError
from cactus_features.heads import compute_class_weights, parse_class_weight, train_head

from .synthetic import make_features

NAMES = ["no_cactus", "cactus"]


def cactus_labels() -> np.ndarray:
    """The aerial-cactus class balance: 4,364 without cactus (0), 13,136 with (1)."""
    return np.array([0] * 4364 + [1] * 13136)


def test_inverse_weights_match_the_cactus_values() -> None:
    weights, mode = compute_class_weights(cactus_labels(), NAMES, "inverse")
    assert mode == "inverse"
    np.testing.assert_allclose(weights, [13136 / 17500, 4364 / 17500], rtol=1e-12)
    assert weights.round(4).tolist() == [0.7506, 0.2494]
    assert weights.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("minority", [0, 1])
def test_minority_class_gets_the_larger_weight(minority: int) -> None:
    labels = cactus_labels() if minority == 0 else 1 - cactus_labels()
    weights, _ = compute_class_weights(labels, NAMES, "inverse")
    assert weights[minority] > 3 * weights[1 - minority]
    # both classes then carry the same total weight
    counts = np.bincount(labels)
    assert counts[0] * weights[0] == pytest.approx(counts[1] * weights[1])


def test_balanced_matches_sklearn() -> None:
    labels = np.array([0] * 7 + [1] * 30 + [2] * 3)
    ours, mode = compute_class_weights(labels, ["a", "b", "c"], "balanced")
    expected = compute_class_weight("balanced", classes=np.arange(3), y=labels)
    assert mode == "balanced"
    np.testing.assert_allclose(ours, expected, rtol=1e-12)


def test_none_and_explicit_weights() -> None:
    labels = cactus_labels()
    assert compute_class_weights(labels, NAMES, "none")[0].tolist() == [1.0, 1.0]
    assert compute_class_weights(labels, NAMES, (2.0, 0.5))[0].tolist() == [2.0, 0.5]
    by_name, mode = compute_class_weights(labels, NAMES, {"cactus": 0.4, "no_cactus": 0.6})
    assert by_name.tolist() == [0.6, 0.4] and mode == "explicit"


@pytest.mark.parametrize(
    "spec",
    [(1.0,), (1.0, 2.0, 3.0), {"cactus": 1.0}, {"cactus": 1.0, "dog": 1.0}, (-1.0, 2.0), (0, 0)],
)
def test_invalid_explicit_weights_are_config_errors(spec: object) -> None:
    with pytest.raises(ConfigError):
        compute_class_weights(cactus_labels(), NAMES, spec)  # type: ignore[arg-type]


def test_class_absent_from_training_split_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no training samples"):
        compute_class_weights(np.ones(10, dtype=int), NAMES, "inverse")


def test_parse_class_weight() -> None:
    assert parse_class_weight("balanced") == "balanced"
    assert parse_class_weight("0.75, 0.25") == (0.75, 0.25)
    assert parse_class_weight("no_cactus=0.75,cactus=0.25") == {"no_cactus": 0.75, "cactus": 0.25}
    with pytest.raises(ConfigError, match="invalid"):
        parse_class_weight("inversed")


@pytest.mark.parametrize(("mode", "expected_mean"), [("inverse", 0.5), ("none", 0.75)])
def test_weighting_direction_in_training(mode: str, expected_mean: float) -> None:
    """On features without signal, 75% positives: inverse weights pull the mean
    predicted P(positive) to 0.5 (classes count equally); no weights leave it at the prior."""
    fs = make_features(n=800, d=4, signal=0.0, pos_frac=0.75, seed=3)
    result = train_head(fs, solver="lbfgs", C=1e-3, class_weight=mode, save=False)
    train = result.predictions.select("train")
    assert train.score.mean() == pytest.approx(expected_mean, abs=0.02)
