"""Reading the feature cache: :class:`FeatureSet` and :func:`load_features`.

The public import path of :mod:`cactus_features.store.features`, where the code
lives (writing lives in :mod:`cactus_features.store.entries`).
"""

from __future__ import annotations

from cactus_features.store.features import (
    FORMAT_VERSION,
    JSON_ATTRS,
    SPLIT_NAMES,
    SPLIT_NONE,
    UNLABELLED,
    FeatureSet,
    concat_features,
    load_features,
    split_code,
)
from cactus_features.store.format import read_json_attr

__all__ = [
    "FORMAT_VERSION",
    "JSON_ATTRS",
    "SPLIT_NAMES",
    "SPLIT_NONE",
    "UNLABELLED",
    "FeatureSet",
    "concat_features",
    "load_features",
    "read_json_attr",
    "split_code",
]
