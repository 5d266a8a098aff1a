"""Multi-label cache keys add the task and label spec; single-label keys stay unchanged."""

from __future__ import annotations

import numpy as np

from cactus_features.data.multilabel import label_spec
from cactus_features.extract.config import ExtractConfig
from cactus_features.store.format import key_hash

FP = "0123456789abcdef" * 4


def test_multilabel_key_adds_task_and_label_spec_only():
    config = ExtractConfig(data="x", backbones="resnet18@32", weights="none")
    request = config.requests()[0]
    single = config.entry_key(request, dataset_fingerprint=FP, precision="fp32")
    assert "task" not in single and "label_spec" not in single
    y = np.eye(3, dtype=np.uint8)[[0, 1, 2, 1]]
    spec = label_spec(["a", "b", "c"], y, {"label_column": ["a", "b", "c"]})
    multi = config.entry_key(request, dataset_fingerprint=FP, precision="fp32", labels=spec)
    assert {k: v for k, v in multi.items() if k not in ("task", "label_spec")} == single
    assert multi["task"] == "multilabel" and multi["label_spec"]["separator"] is None
    y[0] = [1, 1, 0]
    edited = label_spec(["a", "b", "c"], y, {"label_column": ["a", "b", "c"]})
    other = config.entry_key(request, dataset_fingerprint=FP, precision="fp32", labels=edited)
    assert len({key_hash(single), key_hash(multi), key_hash(other)}) == 3
