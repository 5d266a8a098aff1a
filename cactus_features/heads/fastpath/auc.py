"""ROC AUC in torch, batched over heads (cheap enough to run every epoch).

AUC is the Mann-Whitney statistic: the probability that a random positive scores
above a random negative, counting ties as one half. With mid-ranks ``r`` of the
scores (tied scores share the mean of their ranks)::

    AUC = (sum of r over positives - P (P + 1) / 2) / (P * N)

One sort per call; no host round trip (the result stays on the device).
"""

from __future__ import annotations

import torch


def roc_auc(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """ROC AUC of each row of ``scores`` against binary ``labels``.

    Args:
        scores: ``[N]`` or ``[K, N]`` scores (any monotone transform, e.g. logits).
        labels: ``[N]`` labels, truthy for the positive class.

    Returns:
        AUC of each row (a scalar for 1-D input), float64; NaN when ``labels``
        hold only one class.
    """
    squeeze = scores.dim() == 1
    s = scores.reshape(1, -1) if squeeze else scores
    k, n = s.shape
    pos = labels.to(device=s.device, dtype=torch.bool).reshape(-1)
    if n == 0:
        out = torch.full((k,), float("nan"), dtype=torch.float64, device=s.device)
        return out[0] if squeeze else out
    sorted_s, order = torch.sort(s, dim=1)
    idx = torch.arange(n, device=s.device).expand(k, n)
    new_group = torch.ones_like(sorted_s, dtype=torch.bool)
    new_group[:, 1:] = sorted_s[:, 1:] != sorted_s[:, :-1]
    end_group = torch.ones_like(new_group)
    end_group[:, :-1] = new_group[:, 1:]
    first = torch.cummax(torch.where(new_group, idx, 0), dim=1).values
    last = torch.cummin(torch.where(end_group, idx, n - 1).flip(1), dim=1).values.flip(1)
    mid_rank = (first + last).to(torch.float64) * 0.5 + 1.0
    pos_sorted = pos[order]
    rank_sum = (mid_rank * pos_sorted).sum(dim=1)
    n_pos_f = pos.sum().to(torch.float64)
    n_neg_f = n - n_pos_f
    auc = (rank_sum - n_pos_f * (n_pos_f + 1) * 0.5) / (n_pos_f * n_neg_f)
    return auc[0] if squeeze else auc
