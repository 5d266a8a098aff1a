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

For a K-class softmax head the Hessian over the weights ``W [K, D]`` is
``sum_i s_i (diag(p_i) - p_i p_i^T) (x) x_i x_i^T / sum(s) + lam * I``; replacing
the per-row ``K x K`` curvature by its weighted mean ``A`` gives the Kronecker
product ``A (x) Cov + lam * I``, whose inverse is diagonal in the product of the
two eigenbases: the same ``D x D`` rotation of the inputs for every class row,
then a ``K x K`` one across classes (:class:`SoftmaxPreconditioner`). ``A`` is
singular along the all-ones direction (adding one vector to every class row
changes no probability), where ``1 / lam`` is the exact inverse.
"""

from __future__ import annotations

import torch


def covariance_eigen(
    x: torch.Tensor, sample_weight: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (float64, clamped at 0) and eigenvectors (``x``'s dtype) of the
    weighted second-moment matrix ``X^T diag(s) X / sum(s)`` of the rows ``x [N, D]``."""
    s = sample_weight.to(x.dtype)
    cov = ((x * s[:, None]).T @ x).to(torch.float64).div_(float(s.sum()))
    values, vectors = torch.linalg.eigh(cov)
    return values.clamp_(min=0.0), vectors.to(x.dtype)


class CovariancePreconditioner:
    """``q -> (c * Cov + lam * I)^-1 q`` for the weights, ``q / c`` for the intercept.

    Args:
        x: Training inputs ``[N, D]`` (centred: the intercept then barely couples).
        sample_weight: Per-row weights ``[N]``.
    """

    def __init__(self, x: torch.Tensor, sample_weight: torch.Tensor) -> None:
        self.values, self.vectors = covariance_eigen(x, sample_weight)
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


class SoftmaxPreconditioner:
    """``(A (x) Cov + lam * I)^-1`` for a softmax head's weights, ``A^+`` for its intercepts.

    Vectors are laid out as :func:`~cactus_features.heads.solvers.multinomial.fit_softmax_lbfgs`
    takes them: ``[K * (D + 1)]``, row ``k`` being ``W_k`` then ``b_k``.

    Args:
        x: Training inputs ``[N, D]`` (centred).
        sample_weight: Per-row weights ``[N]``.
        n_classes: ``K``.
    """

    def __init__(self, x: torch.Tensor, sample_weight: torch.Tensor, n_classes: int) -> None:
        self.values, self.vectors = covariance_eigen(x, sample_weight)
        self.k, self.d = n_classes, x.shape[1]
        self._set: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def set(self, lam: float, curvature: torch.Tensor) -> None:
        """Use strength ``lam`` and mean curvature ``A [K, K]`` (:func:`softmax_curvature`)."""
        a, u = torch.linalg.eigh(curvature.to(torch.float64))
        a = a.clamp_(min=0.0)
        weights = (1.0 / (a[:, None] * self.values[None, :] + lam)).to(self.vectors.dtype)
        # the intercepts' curvature is A itself (centred inputs); along its all-ones null
        # direction f is flat and the gradient zero (the residuals sum to zero per row),
        # so a bounded 1 / max(A) there keeps rounding from being amplified
        top = max(float(a.max()), 1e-12)
        bias = 1.0 / torch.where(a > 1e-10 * top, a, a.new_tensor(top))
        self._set = (u, weights, bias)

    def __call__(self, q: torch.Tensor) -> torch.Tensor:
        """The preconditioned vector ``[K * (D + 1)]`` (a new tensor of ``q``'s dtype)."""
        if self._set is None:
            raise RuntimeError("call set(lam, curvature) before using the preconditioner")
        u, weights, bias = self._set
        k, d, v = self.k, self.d, self.vectors
        t = q.view(k, d + 1)
        out = torch.empty_like(t)
        u_v = u.to(v.dtype)
        rotated = (u_v.T @ t[:, :d].to(v.dtype) @ v).mul_(weights)
        out[:, :d] = (u_v @ rotated @ v.T).to(q.dtype)
        out[:, d] = u @ (bias * (u.T @ t[:, d].to(u.dtype))).to(q.dtype)
        return out.view(-1)


def softmax_curvature(z: torch.Tensor, sample_weight: torch.Tensor) -> torch.Tensor:
    """Weighted mean of ``diag(p) - p p^T`` at logits ``z [N, K]`` (the ``A`` of
    :class:`SoftmaxPreconditioner`), ``[K, K]`` float64."""
    p = torch.softmax(z.to(torch.float64), dim=1)
    s = sample_weight.to(torch.float64)
    return (torch.diag(s @ p) - (p * s[:, None]).T @ p) / float(s.sum())
