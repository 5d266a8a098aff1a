"""Full-batch L-BFGS logistic regression, with scikit-learn's objective.

Minimises (parameters, sums and the L-BFGS recursion in float64; the two
matrix-vector products per evaluation in float32 for float32 inputs, as sklearn
does, unless ``tol`` is below :data:`FLOAT32_TOL`)::

    f(w, b) = [ sum_i s_i * logloss(y_i, x_i.w + b) + 0.5 / C * ||w||^2 ] / sum_i s_i

with sample weights ``s_i = class_weight[y_i]`` and no penalty on the intercept:
the objective of ``sklearn.linear_model.LogisticRegression(C=C,
class_weight=class_weight)`` (L2 penalty, lbfgs solver), which scales it the same
way, so ``tol`` means the same: stop when the largest gradient entry is below it.

The solver is a plain L-BFGS (two-loop recursion, ``history_size`` pairs) with a
backtracking Armijo line search. ``f`` is strictly convex for finite ``C``, so
every step has positive curvature and the first trial step is nearly always
accepted: about one evaluation (two passes over ``x``) per iteration. Gradients
are computed by hand (no autograd).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cactus_features.heads.config import HeadConfig
from cactus_features.heads.fastpath.auc import roc_auc
from cactus_features.heads.nn.models import LAST_PREFIX
from cactus_features.heads.prepare.data import PreparedData
from cactus_features.heads.solvers.base import Fit, Progress

FLOAT32_TOL = 1e-5
"""Smallest tolerance met with float32 matrix-vector products."""


@dataclass
class LbfgsFit:
    """Result of :func:`fit_logistic_lbfgs`.

    Attributes:
        weight: Coefficients ``[D]`` (float64).
        bias: Intercept.
        history: Per-iteration ``train_loss`` (the objective), ``val_loss``, ``val_auc``.
        iterations: Iterations run.
        converged: Whether the gradient tolerance was reached.
        seconds: Wall time.
        grad_max: Largest gradient entry of the objective at the returned point.
    """

    weight: torch.Tensor
    bias: float
    history: dict[str, np.ndarray]
    iterations: int
    converged: bool
    seconds: float
    grad_max: float = float("nan")


def fit_logistic_lbfgs(
    x: torch.Tensor,
    y: torch.Tensor,
    sample_weight: torch.Tensor,
    *,
    C: float = 1.0,
    max_iter: int = 500,
    tol: float = 1e-6,
    x_val: torch.Tensor | None = None,
    y_val: torch.Tensor | None = None,
    w_val: torch.Tensor | None = None,
    history_size: int = 10,
    init: torch.Tensor | None = None,
    preconditioner: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> LbfgsFit:
    """Fit L2-regularised weighted logistic regression.

    Args:
        x: Training inputs ``[N, D]``; float32 inputs keep float32 matrix-vector
            products when ``tol >= FLOAT32_TOL`` (half the memory traffic), else float64.
        y: Targets ``[N]`` in ``{0, 1}``.
        sample_weight: Per-row weights ``[N]`` (class weight of each row).
        C: Inverse regularisation strength.
        max_iter: Iteration limit.
        tol: Gradient tolerance (max-abs entry of the gradient of ``f``).
        x_val: Optional validation inputs, for the per-iteration curves.
        y_val: Validation targets.
        w_val: Validation sample weights (for the weighted validation loss).
        history_size: L-BFGS memory.
        init: Starting point ``[D + 1]`` (weights, then intercept; default zeros), e.g.
            the solution at a neighbouring ``C`` (a warm-started regularisation path).
        preconditioner: Applies an approximate inverse Hessian ``[D + 1] -> [D + 1]``
            (float64), used as the L-BFGS initial matrix instead of the scaled identity
            (see :class:`~cactus_features.heads.solvers.precondition.CovariancePreconditioner`);
            its first step is then a full quasi-Newton step.

    Returns:
        The fitted coefficients, intercept and curves.
    """
    start = time.perf_counter()
    dt = torch.float64
    # float32 products are accurate enough for gradients down to ~1e-5 (and halve the
    # memory traffic); stricter tolerances need float64
    mat = torch.float32 if x.dtype == torch.float32 and tol >= FLOAT32_TOL else dt
    x = x.to(mat)
    y = y.to(dt)
    s = sample_weight.to(dt)
    total = float(s.sum())
    d = x.shape[1]

    def evaluate(theta: torch.Tensor) -> tuple[float, torch.Tensor]:
        w, b = theta[:d], theta[d]
        z = torch.mv(x, w.to(mat)).to(dt).add_(b)
        loss = float((F.softplus(z).sub_(y * z)).mul_(s).sum() + 0.5 / C * torch.dot(w, w))
        r = torch.sigmoid(z).sub_(y).mul_(s)
        grad = torch.empty_like(theta)
        grad[:d] = torch.mv(x.T, r.to(mat))
        grad[:d].add_(w, alpha=1.0 / C)
        grad[d] = r.sum()
        return loss / total, grad.div_(total)

    has_val = x_val is not None and y_val is not None and len(y_val) > 0
    if has_val:
        assert x_val is not None and y_val is not None
        xv, yv = x_val.to(mat), y_val.to(dt)
        wv = (w_val if w_val is not None else torch.ones_like(y_val)).to(dt)
        wv = wv / wv.sum()
    curves: dict[str, list[float]] = {"train_loss": [], "val_loss": [], "val_auc": []}

    def record(theta: torch.Tensor, loss: float) -> None:
        curves["train_loss"].append(loss)
        if has_val:
            zv = torch.mv(xv, theta[:d].to(mat)).to(dt).add_(theta[d])
            vloss = F.binary_cross_entropy_with_logits(zv, yv, weight=wv, reduction="sum")
            curves["val_loss"].append(float(vloss))
            curves["val_auc"].append(float(roc_auc(zv, yv > 0.5)))
        else:
            curves["val_loss"].append(float("nan"))
            curves["val_auc"].append(float("nan"))

    theta = torch.zeros(d + 1, dtype=dt, device=x.device)
    if init is not None:
        theta.copy_(init)
    theta, grad, iterations, converged = minimize_lbfgs(
        evaluate,
        theta,
        max_iter=max_iter,
        tol=tol,
        history_size=history_size,
        preconditioner=preconditioner,
        on_step=record,
    )
    return LbfgsFit(
        weight=theta[:d].clone(),
        bias=float(theta[d]),
        history={k: np.asarray(v, dtype=np.float64) for k, v in curves.items()},
        iterations=iterations,
        converged=converged,
        seconds=time.perf_counter() - start,
        grad_max=float(grad.abs().max()),
    )


def gradient_convergence(converged: bool, grad_max: float, iterations: int) -> dict[str, Any]:
    """The run ``info["convergence"]`` of an L-BFGS fit: converged, and by what measure."""
    return {
        "converged": bool(converged),
        "measure": "max |gradient| of the objective",
        "value": float(grad_max),
        "iterations": int(iterations),
    }


def minimize_lbfgs(
    evaluate: Callable[[torch.Tensor], tuple[float, torch.Tensor]],
    theta: torch.Tensor,
    *,
    max_iter: int,
    tol: float,
    history_size: int = 10,
    preconditioner: Callable[[torch.Tensor], torch.Tensor] | None = None,
    on_step: Callable[[torch.Tensor, float], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, int, bool]:
    """Minimise a smooth convex function by L-BFGS with a backtracking Armijo search.

    Args:
        evaluate: ``theta -> (f, gradient)`` (float64 vectors).
        theta: The starting point (1-D, float64).
        max_iter: Iteration limit.
        tol: Stop when the largest gradient entry is at most this.
        history_size: L-BFGS memory.
        preconditioner: The initial inverse-Hessian approximation (default: scaled identity).
        on_step: Called with ``(theta, f)`` after each accepted step.

    Returns:
        ``(theta, gradient, iterations, converged)`` at the last accepted point.
    """
    loss, grad = evaluate(theta)
    pairs: list[tuple[torch.Tensor, torch.Tensor, float]] = []  # (s, y, 1 / y.s)
    converged = float(grad.abs().max()) <= tol
    iterations = 0
    while not converged and iterations < max_iter:
        iterations += 1
        direction = _two_loop(grad, pairs, preconditioner)
        slope = float(torch.dot(grad, direction))
        if slope >= 0:  # not a descent direction (numerical trouble): restart
            pairs.clear()
            direction, slope = -grad, -float(torch.dot(grad, grad))
        step = 1.0 if pairs or preconditioner is not None else _first_step(grad)
        for _ in range(30):
            new_theta = theta + step * direction
            new_loss, new_grad = evaluate(new_theta)
            if new_loss <= loss + 1e-4 * step * slope:
                break
            step *= 0.5
        else:
            break  # the line search cannot decrease f any more (at float64 precision)
        s_k, y_k = new_theta - theta, new_grad - grad
        sy = float(torch.dot(s_k, y_k))
        if sy > 1e-12 * float(torch.dot(y_k, y_k)):
            pairs.append((s_k, y_k, 1.0 / sy))
            if len(pairs) > history_size:
                pairs.pop(0)
        stalled = loss - new_loss <= 1e-16 * max(1.0, abs(loss))
        theta, loss, grad = new_theta, new_loss, new_grad
        if on_step is not None:
            on_step(theta, loss)
        converged = float(grad.abs().max()) <= tol
        if stalled:
            break
    return theta, grad, iterations, converged


def _first_step(grad: torch.Tensor) -> float:
    """Length of the first (steepest-descent) trial step without a preconditioner."""
    return min(1.0, 1.0 / max(float(grad.abs().sum()), 1e-12))


def _two_loop(
    grad: torch.Tensor,
    pairs: list[tuple[torch.Tensor, torch.Tensor, float]],
    preconditioner: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """L-BFGS direction ``-H grad`` from the stored ``(s, y, 1/y.s)`` pairs, with the
    initial matrix ``preconditioner`` (default: the last pair's scaled identity)."""
    q = grad.clone()
    alphas = []
    for s_k, y_k, rho in reversed(pairs):
        a = rho * float(torch.dot(s_k, q))
        q.add_(y_k, alpha=-a)
        alphas.append(a)
    if preconditioner is not None:
        q = preconditioner(q)
    elif pairs:
        s_k, y_k, _ = pairs[-1]
        q.mul_(float(torch.dot(s_k, y_k)) / float(torch.dot(y_k, y_k)))
    for (s_k, y_k, rho), a in zip(pairs, reversed(alphas), strict=True):
        b = rho * float(torch.dot(y_k, q))
        q.add_(s_k, alpha=a - b)
    return q.neg_()


class LbfgsSolver:
    """Full-batch L-BFGS of linear heads (:func:`fit_logistic_lbfgs`), one at a time.

    The saved weights are the last (converged) iterate; the "epochs" of the curves
    are iterations.
    """

    def fit(
        self,
        data: PreparedData,
        configs: Sequence[HeadConfig],
        device: torch.device,
        progress: Progress | None = None,
    ) -> Fit:
        """Train one linear head per configuration (``C``, ``epochs`` as the iteration
        limit, ``tol``); ``progress`` is not reported."""
        tensors = data.tensors(device)
        fits = [
            fit_logistic_lbfgs(
                tensors.x_train,
                tensors.y_train,
                tensors.w_train,
                C=c.C,
                max_iter=c.epochs,
                tol=c.tol,
                x_val=tensors.x_val,
                y_val=tensors.y_val,
                w_val=tensors.w_val,
            )
            for c in configs
        ]
        del tensors
        return _as_fit(fits)


def _state(lb: LbfgsFit) -> dict[str, np.ndarray]:
    """A linear head's state dict, the selected and (the same) last weights."""
    state = {
        "linear.weight": lb.weight.float().cpu().numpy()[None, :],
        "linear.bias": np.array([lb.bias], dtype=np.float32),
    }
    state.update({LAST_PREFIX + k: v.copy() for k, v in list(state.items())})
    return state


def _as_fit(fits: Sequence[LbfgsFit]) -> Fit:
    """Single L-BFGS fits as one :class:`Fit` (curves as long as the longest run)."""
    iterations = max(lb.iterations for lb in fits)

    def curves(name: str) -> np.ndarray:
        out = np.full((iterations, len(fits)), np.nan)
        for k, lb in enumerate(fits):
            out[: lb.iterations, k] = lb.history[name]
        return out

    def last(name: str) -> np.ndarray:
        return np.array([lb.history[name][-1] if lb.iterations else np.nan for lb in fits])

    states = [_state(lb) for lb in fits]
    return Fit(
        history={name: curves(name) for name in fits[0].history},
        best_epoch=np.array([lb.iterations for lb in fits]),
        best_val_auc=last("val_auc"),
        best_val_loss=last("val_loss"),
        epochs_run=iterations,
        seconds=sum(lb.seconds for lb in fits),
        info={
            "solver": "lbfgs",
            "lbfgs_converged": all(lb.converged for lb in fits),
            "convergence": gradient_convergence(
                all(lb.converged for lb in fits),
                max(lb.grad_max for lb in fits),
                max(lb.iterations for lb in fits),
            ),
        },
        group_size=1,
        weights=lambda k: states[k],
        note=", ".join(
            f"L-BFGS: {lb.iterations} iterations, converged={lb.converged}" for lb in fits
        ),
    )
