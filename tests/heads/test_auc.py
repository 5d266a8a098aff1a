"""The torch AUC equals sklearn's, ties included, for single and batched scores."""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from cactus_features.heads.fastpath.auc import roc_auc


def test_matches_sklearn_with_ties_batched() -> None:
    rng = np.random.default_rng(0)
    labels = rng.random(500) < 0.3
    scores = np.round(rng.standard_normal((4, 500)) + labels, 1)  # many ties
    scores[3] = 0.0  # all tied: 0.5
    ours = roc_auc(torch.from_numpy(scores).float(), torch.from_numpy(labels))
    expected = [roc_auc_score(labels, s) for s in scores]
    np.testing.assert_allclose(ours.numpy(), expected, rtol=0, atol=1e-12)
    assert expected[3] == 0.5


def test_single_row_and_perfect_ranking() -> None:
    labels = torch.tensor([0, 0, 1, 1, 0, 1])
    assert float(roc_auc(labels.float() * 2 - 1, labels)) == 1.0
    assert float(roc_auc(-labels.float(), labels)) == 0.0
    s = torch.tensor([0.1, 0.4, 0.35, 0.8, 0.2, 0.4])
    assert float(roc_auc(s, labels)) == roc_auc_score(labels.numpy(), s.numpy())


def test_one_class_gives_nan() -> None:
    assert math.isnan(float(roc_auc(torch.rand(5), torch.ones(5))))
    assert math.isnan(float(roc_auc(torch.rand(5), torch.zeros(5))))
