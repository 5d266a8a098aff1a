"""The K-class softmax linear head: multinomial logistic regression by full-batch L-BFGS.

Minimises, over ``W [K, D]`` and ``b [K]`` (float64 parameters and sums; the two
matrix products per evaluation in float32 for float32 inputs when ``tol >=``
:data:`~cactus_features.heads.solvers.lbfgs.FLOAT32_TOL`)::

    f(W, b) = [ sum_i s_i * CE(y_i, softmax(W x_i + b)) + 0.5 / C * ||W||^2 ] / sum_i s_i

with ``s_i = class_weight[y_i]`` and no penalty on the intercepts: scikit-learn's
multinomial ``LogisticRegression(C=C)`` objective (lbfgs solver, K > 2 classes),
scaled the same way, so ``tol`` (the largest gradient entry) means the same as for
the binary head. The tuned protocol fits it along the same warm-started
path over the L2 strengths as :func:`~cactus_features.heads.solvers.grid.l2_path` does for two
classes (with the softmax form of the covariance preconditioner,
:class:`~cactus_features.heads.solvers.precondition.SoftmaxPreconditioner`), and
``GridSolver`` takes it for feature sets of more than two classes.

An evaluation needs the logits ``X W^T + b`` and the gradient ``R^T X``: on the
CPU both come from one read of the rows, chunk by chunk
(:class:`~cactus_features.heads.fastpath.softmax_pass.ChunkedSoftmax`); elsewhere
from two matrix products (:class:`TwoPassSoftmax`); see :func:`softmax_terms`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from cactus_features.heads.fastpath.auc import roc_auc
from cactus_features.heads.fastpath.softmax_pass import ChunkedSoftmax, DataTerm
from cactus_features.heads.prepare.data import SplitTensors
from cactus_features.heads.solvers.lbfgs import FLOAT32_TOL, LbfgsFit, minimize_lbfgs

PASSES = ("auto", "chunked", "two_pass")
"""How an evaluation reads the training rows: ``chunked`` (one read, row chunks on the
CPU's worker threads, :class:`~cactus_features.heads.fastpath.softmax_pass.ChunkedSoftmax`),
``two_pass`` (two matrix products over all rows, :class:`TwoPassSoftmax`), or ``auto``
(chunked on the CPU, two products on an accelerator)."""


class SoftmaxTerms(Protocol):
    """The data term of the softmax objective: ``(W, b) -> (loss, grad_W, grad_b)``."""

    name: str

    def __call__(self, w: torch.Tensor, b: torch.Tensor) -> DataTerm:
        """Weighted log-loss sum, ``R^T X [K, D]`` and ``sum_i R_i [K]`` (float64)."""
        ...

    def close(self) -> None:
        """Release what the pass holds (worker threads)."""
        ...


class TwoPassSoftmax:
    """The data term as two matrix products over all rows (reads ``X`` twice).

    Args:
        x: Training inputs ``[N, D]`` (products in their dtype).
        y: Class indices ``[N]``.
        sample_weight: Per-row weights ``[N]``.
        n_classes: ``K``.
    """

    name = "two_pass"
    """The kind of pass, as benchmarks print it."""

    def __init__(
        self, x: torch.Tensor, y: torch.Tensor, sample_weight: torch.Tensor, n_classes: int
    ) -> None:
        self.x = x
        self.onehot = F.one_hot(y.to(torch.int64), n_classes).to(torch.float64)
        self.s = sample_weight.to(torch.float64)

    def __call__(self, w: torch.Tensor, b: torch.Tensor) -> DataTerm:
        """Weighted log-loss sum, ``R^T X [K, D]`` and ``sum_i R_i [K]`` (float64)."""
        dt, mat = torch.float64, self.x.dtype
        z = (self.x @ w.T.to(mat)).to(dt).add_(b)
        logp = torch.log_softmax(z, dim=1)
        loss = -(logp * self.onehot).sum(1).mul_(self.s).sum()
        r = logp.exp_().sub_(self.onehot).mul_(self.s[:, None])
        return float(loss), (r.T.to(mat) @ self.x).to(dt), r.sum(0)

    def close(self) -> None:
        """Nothing to release."""


def softmax_terms(
    x: torch.Tensor,
    y: torch.Tensor,
    sample_weight: torch.Tensor,
    n_classes: int,
    *,
    tol: float = 1e-5,
    kind: str = "auto",
) -> SoftmaxTerms:
    """The data term of :func:`fit_softmax_lbfgs`'s objective, built once for a whole path.

    Args:
        x: Training inputs ``[N, D]``; float32 inputs keep float32 products when
            ``tol >= FLOAT32_TOL``, else they are copied to float64.
        y: Class indices ``[N]``.
        sample_weight: Per-row weights ``[N]``.
        n_classes: ``K``.
        tol: The fits' gradient tolerance (chooses the product dtype).
        kind: One of :data:`PASSES`.

    Raises:
        ValueError: Unknown ``kind``, or ``chunked`` for rows not on the CPU.
    """
    if kind not in PASSES:
        raise ValueError(f"pass must be one of {', '.join(PASSES)}; got {kind!r}")
    cpu = x.device.type == "cpu"
    if kind == "chunked" and not cpu:
        raise ValueError(f"the chunked pass runs on the CPU; the rows are on {x.device}")
    mat = torch.float32 if x.dtype == torch.float32 and tol >= FLOAT32_TOL else torch.float64
    x = x.to(mat)
    if kind == "two_pass" or (kind == "auto" and not cpu):
        return TwoPassSoftmax(x, y, sample_weight, n_classes)
    return ChunkedSoftmax(x, y, sample_weight, n_classes)


def fit_softmax_lbfgs(
    x: torch.Tensor,
    y: torch.Tensor,
    sample_weight: torch.Tensor,
    n_classes: int,
    *,
    C: float = 1.0,
    max_iter: int = 500,
    tol: float = 1e-5,
    init: torch.Tensor | None = None,
    preconditioner: Callable[[torch.Tensor], torch.Tensor] | None = None,
    terms: SoftmaxTerms | None = None,
) -> LbfgsFit:
    """Fit L2-regularised, weighted multinomial logistic regression.

    Args:
        x: Training inputs ``[N, D]``.
        y: Class indices ``[N]`` (any numeric dtype).
        sample_weight: Per-row weights ``[N]``.
        n_classes: ``K``.
        C: Inverse regularisation strength.
        max_iter: Iteration limit.
        tol: Gradient tolerance (max-abs entry of the gradient of ``f``).
        init: Starting point ``[K * (D + 1)]`` (row ``k`` is ``W_k`` then ``b_k``;
            default zeros), e.g. the solution at a neighbouring ``C``.
        preconditioner: The L-BFGS initial inverse-Hessian approximation
            ``[K * (D + 1)] -> [K * (D + 1)]`` (see
            :class:`~cactus_features.heads.solvers.precondition.SoftmaxPreconditioner`).
        terms: The data term over these rows (:func:`softmax_terms`, built once for a
            path of fits; closed by its owner); default: built (and closed) here.

    Returns:
        ``weight [K, D]`` and ``bias`` (a ``[K]`` tensor) of the solution; the history
        holds the training objective per iteration (validation curves are NaN).
    """
    start = time.perf_counter()
    dt = torch.float64
    k, d = n_classes, x.shape[1]
    theta = torch.zeros(k * (d + 1), dtype=dt, device=x.device)
    if init is not None:
        theta.copy_(init)
    losses: list[float] = []
    with contextlib.ExitStack() as stack:
        if terms is None:
            terms = softmax_terms(x, y, sample_weight, n_classes, tol=tol)
            stack.callback(terms.close)
        objective = _Objective(terms, k, d, C, float(sample_weight.to(dt).sum()))
        theta, grad, iterations, converged = minimize_lbfgs(
            objective,
            theta,
            max_iter=max_iter,
            tol=tol,
            preconditioner=preconditioner,
            on_step=lambda _t, f: losses.append(f),
        )
    t = theta.view(k, d + 1)
    nan = np.full(len(losses), np.nan)
    return LbfgsFit(
        weight=t[:, :d].clone(),
        bias=t[:, d].clone(),  # type: ignore[arg-type]
        history={
            "train_loss": np.asarray(losses, dtype=np.float64),
            "val_loss": nan,
            "val_auc": nan.copy(),
        },
        iterations=iterations,
        converged=converged,
        seconds=time.perf_counter() - start,
        grad_max=float(grad.abs().max()),
    )


@dataclass
class _Objective:
    """``theta -> (f, gradient)`` of :func:`fit_softmax_lbfgs` (``total``: the weights' sum)."""

    terms: SoftmaxTerms
    k: int
    d: int
    C: float
    total: float

    def __call__(self, theta: torch.Tensor) -> tuple[float, torch.Tensor]:
        t = theta.view(self.k, self.d + 1)
        w, b = t[:, : self.d], t[:, self.d]
        data_loss, grad_w, grad_b = self.terms(w, b)
        loss = data_loss + float(0.5 / self.C * (w * w).sum())
        grad = torch.empty_like(t)
        grad[:, : self.d] = grad_w
        grad[:, : self.d].add_(w, alpha=1.0 / self.C)
        grad[:, self.d] = grad_b
        return loss / self.total, grad.view(-1).div_(self.total)


def softmax_validation_scores(
    weight: torch.Tensor, bias: torch.Tensor, tensors: SplitTensors
) -> tuple[float, float]:
    """Class-weighted mean validation log loss and macro one-vs-rest AUC of a softmax head.

    Classes absent from the validation rows are left out of the macro AUC.
    """
    xv = tensors.x_val.double()
    z = xv @ weight.to(xv).T + bias.to(xv)
    yv = tensors.y_val.to(torch.int64)
    wv = tensors.w_val.double()
    loss = F.cross_entropy(z, yv, reduction="none").mul_(wv).sum() / wv.sum()
    proba = torch.softmax(z, dim=1)
    aucs = torch.stack([roc_auc(proba[:, c], yv == c) for c in range(z.shape[1])])
    finite = aucs[torch.isfinite(aucs)]
    return float(loss), float(finite.mean()) if finite.numel() else float("nan")
