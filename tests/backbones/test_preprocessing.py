"""The recorded pre-processing: normalisation choice and why an old entry is stale."""

from __future__ import annotations

import pytest

from cactus_features.backbones.preprocessing import (
    PREPROCESSING_VERSION,
    TRAIN_SPLIT_STATS,
    Preprocessing,
    choose_normalization,
    stale_reason,
)
from cactus_features.errors import ConfigError

WEIGHTS = ((0.1, 0.2, 0.3), (0.4, 0.5, 0.6))


def test_normalization_modes():
    assert choose_normalization("weights", WEIGHTS, None) == WEIGHTS
    assert choose_normalization("dataset", WEIGHTS, ((1, 1, 1), (2, 2, 2))) == (
        (1.0, 1.0, 1.0),
        (2.0, 2.0, 2.0),
    )
    assert choose_normalization("dataset", WEIGHTS, None) == (TRAIN_SPLIT_STATS,) * 2
    assert choose_normalization("none", WEIGHTS, None) == ((0.0,) * 3, (1.0,) * 3)
    with pytest.raises(
        ConfigError, match="--normalization 'imagenet': use weights, dataset or none"
    ):
        choose_normalization("imagenet", WEIGHTS, None)


def _key(version: int | None) -> dict:
    key = {"backbone": "resnet18"}
    if version is not None:
        key["preprocessing"] = {**Preprocessing(*WEIGHTS, "bilinear").as_key(), "version": version}
    return key


def test_stale_reasons_name_the_version():
    assert stale_reason(_key(PREPROCESSING_VERSION)) is None
    assert stale_reason(_key(None)) == (
        "stale: written without recorded preprocessing (before preprocessing version 2); "
        "it is never served again, extract again"
    )
    assert stale_reason(_key(1)) == (
        "stale: written with preprocessing version 1 (this library applies version 2); "
        "it is never served again, extract again"
    )
    assert "newer than this library's (2); upgrade cactus-features" in stale_reason(_key(3))
