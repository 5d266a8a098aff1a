"""A preconditioner for L2-regularised logistic regression on correlated features.

Backbone embeddings are strongly correlated, so plain L-BFGS needs hundreds of
iterations at weak regularisation. The Hessian of the weighted-mean log loss
plus ``lam / 2 * ||w||^2`` is ``X^T diag(s_i p_i (1 - p_i)) X / sum(s) + lam * I``;
replacing ``p_i (1 - p_i)`` by its weighted mean ``c`` gives
``c * Cov + lam * I`` with the weighted second-moment matrix ``Cov`` of the
(centred) training rows. Its eigendecomposition, computed once for the whole
path, gives ``(c * Cov + lam * I)^-1`` for every strength at the cost of two
``D x D`` matrix-vector products; it is the L-BFGS initial matrix, so the
pairs only have to learn how the curvature varies between rows. (A triangular
solve with a Cholesky factor per strength was far slower per application.)
"""

from __future__ import annotations

import torch


class CovariancePreconditioner:
    """``q -> (c * Cov + lam * I)^-1 q`` for the weights, ``q / c`` for the intercept.

    Args:
        x: Training inputs ``[N, D]`` (centred: the intercept then barely couples).
        sample_weight: Per-row weights ``[N]``.
    """

    def __init__(self, x: torch.Tensor, sample_weight: torch.Tensor) -> None:
        s = sample_weight.to(x.dtype)
        cov = ((x * s[:, None]).T @ x).to(torch.float64).div_(float(s.sum()))
        values, vectors = torch.linalg.eigh(cov)
        self.values = values.clamp_(min=0.0)
        self.vectors = vectors.to(x.dtype)
        self.d = x.shape[1]
        self._inverse: torch.Tensor | None = None
        self._c = 0.25

    def set(self, lam: float, c: float) -> None:
        """Use strength ``lam`` and mean curvature ``c``: ``(c * Cov + lam * I)^-1``."""
        self._c = max(float(c), 1e-8)
        self._inverse = (1.0 / (self._c * self.values + lam)).to(self.vectors.dtype)

    def __call__(self, q: torch.Tensor) -> torch.Tensor:
        """The preconditioned vector ``[D + 1]`` (a new tensor of ``q``'s dtype)."""
        if self._inverse is None:
            raise RuntimeError("call set(lam, c) before using the preconditioner")
        out = torch.empty_like(q)
        v = self.vectors
        rotated = torch.mv(v.T, q[: self.d].to(v.dtype)).mul_(self._inverse)
        out[: self.d] = torch.mv(v, rotated).to(q.dtype)
        out[self.d] = q[self.d] / self._c
        return out


def mean_curvature(z: torch.Tensor, sample_weight: torch.Tensor) -> float:
    """Weighted mean of ``p (1 - p)`` at logits ``z`` (the ``c`` of the preconditioner)."""
    p = torch.sigmoid(z.to(torch.float64))
    s = sample_weight.to(torch.float64)
    return float((s * p * (1 - p)).sum() / s.sum())
