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
classes (without the covariance preconditioner, which is binary-only), and
``GridSolver`` takes it for feature sets of more than two classes.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from cactus_features.heads.fastpath.auc import roc_auc
from cactus_features.heads.prepare.data import SplitTensors
from cactus_features.heads.solvers.lbfgs import FLOAT32_TOL, LbfgsFit, minimize_lbfgs


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

    Returns:
        ``weight [K, D]`` and ``bias`` (a ``[K]`` tensor) of the solution; the history
        holds the training objective per iteration (validation curves are NaN).
    """
    start = time.perf_counter()
    dt = torch.float64
    mat = torch.float32 if x.dtype == torch.float32 and tol >= FLOAT32_TOL else dt
    x = x.to(mat)
    onehot = F.one_hot(y.to(torch.int64), n_classes).to(dt)
    s = sample_weight.to(dt)
    total = float(s.sum())
    k, d = n_classes, x.shape[1]

    def evaluate(theta: torch.Tensor) -> tuple[float, torch.Tensor]:
        t = theta.view(k, d + 1)
        w, b = t[:, :d], t[:, d]
        z = (x @ w.T.to(mat)).to(dt).add_(b)
        logp = torch.log_softmax(z, dim=1)
        loss = float(-(logp * onehot).sum(1).mul_(s).sum() + 0.5 / C * (w * w).sum())
        r = logp.exp_().sub_(onehot).mul_(s[:, None])
        grad = torch.empty_like(t)
        grad[:, :d] = (r.T.to(mat) @ x).to(dt)
        grad[:, :d].add_(w, alpha=1.0 / C)
        grad[:, d] = r.sum(0)
        return loss / total, grad.view(-1).div_(total)

    losses: list[float] = []
    theta = torch.zeros(k * (d + 1), dtype=dt, device=x.device)
    if init is not None:
        theta.copy_(init)
    theta, grad, iterations, converged = minimize_lbfgs(
        evaluate, theta, max_iter=max_iter, tol=tol, on_step=lambda _t, f: losses.append(f)
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
