"""The tuned protocol: one fit per L2 strength of a grid, the best on validation kept.

Linear head: a warm-started regularisation path. The strengths ``lam`` of
``HeadConfig.l2_grid`` are fitted from the strongest to the weakest, each by
full-batch L-BFGS to convergence (:func:`~cactus_features.heads.solvers.lbfgs.fit_logistic_lbfgs`,
gradient tolerance ``HeadConfig.tol``), each starting from the previous
solution; once a strength needs more than :data:`PRECONDITION_AFTER` iterations,
the rest of the path is preconditioned by the training rows' covariance
(:class:`~cactus_features.heads.solvers.precondition.CovariancePreconditioner`).
The objective is the class-weighted *mean* log loss plus ``lam / 2 * ||w||^2``
on the standardised inputs, so ``lam`` is scale-free (see ``HeadConfig.l2_grid``).
``backend="sklearn"`` fits the same path with scikit-learn's
``LogisticRegression(solver="lbfgs", warm_start=True)`` instead (``C = 1 / (lam *
sum of sample weights)``); the library's own path is the default because it was
faster in ``benchmarks/bench_probe.py`` (see benchmarks/README.md).

MLP head: the strengths are Adam weight decays; all heads train as one stack
through the batched engine (:class:`~cactus_features.heads.solvers.adam.AdamSolver`),
each keeping its best validation epoch (early stopping by selection).

Multi-label data: the linear head fits one such path per label, each an independent
binary probe (:mod:`cactus_features.heads.solvers.multilabel`).

Selection (``HeadConfig.select``): ``"val_loss"`` (the tuned preset) keeps the
strength with the lowest class-weighted validation log loss: a proper scoring
rule, smooth in ``lam`` and less noisy than AUC on a few thousand rows (which
moves in steps of one mis-ranked pair); ``"val_auc"`` keeps the highest
validation AUC. Ties go to the stronger regularisation. The test split is not
seen by the solver at all.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cactus_features.data.classes import MULTILABEL
from cactus_features.heads.config import HeadConfig
from cactus_features.heads.fastpath.auc import roc_auc
from cactus_features.heads.nn.models import LAST_PREFIX
from cactus_features.heads.prepare.data import PreparedData, SplitTensors
from cactus_features.heads.solvers.adam import AdamSolver
from cactus_features.heads.solvers.base import Fit, Progress
from cactus_features.heads.solvers.lbfgs import LbfgsFit, fit_logistic_lbfgs, gradient_convergence
from cactus_features.heads.solvers.multinomial import (
    fit_softmax_lbfgs,
    softmax_terms,
    softmax_validation_scores,
)
from cactus_features.heads.solvers.precondition import (
    CovariancePreconditioner,
    SoftmaxPreconditioner,
    mean_curvature,
    softmax_curvature,
)

PRECONDITION_AFTER = 20
"""L-BFGS iterations one strength may take before the path switches to the covariance
preconditioner (which costs a ``D x D`` covariance and eigendecomposition, once): well
conditioned features never pay for it, correlated backbone embeddings do, and converge
several times faster with it."""
BACKENDS = ("torch", "sklearn")
"""Who fits the linear path: the library's L-BFGS, or scikit-learn's."""


@dataclass
class PathPoint:
    """One strength of a linear regularisation path.

    Attributes:
        l2: The strength ``lam``.
        weight: Coefficients ``[D]`` (float64; ``[K, D]`` for a K-class softmax head).
        bias: Intercept (a ``[K]`` tensor for a softmax head).
        iterations: L-BFGS iterations for this strength (from the previous solution).
        converged: Whether the gradient tolerance was met.
        grad_max: Largest gradient entry at the solution (NaN for scikit-learn).
        val_loss: Class-weighted mean validation log loss.
        val_auc: Validation ROC AUC.
        history: The fit's per-iteration curves (empty for scikit-learn).
    """

    l2: float
    weight: torch.Tensor
    bias: float | torch.Tensor
    iterations: int
    converged: bool
    grad_max: float
    val_loss: float
    val_auc: float
    history: dict[str, np.ndarray]


def l2_path(
    tensors: SplitTensors,
    l2_grid: Sequence[float],
    *,
    max_iter: int = 500,
    tol: float = 1e-5,
    backend: str = "torch",
    precondition: bool = True,
    n_classes: int = 2,
) -> list[PathPoint]:
    """Fit a warm-started L2 path of weighted logistic regressions, strongest first.

    Args:
        tensors: Standardised training and validation rows.
        l2_grid: Strengths ``lam`` (any order; fitted in decreasing order).
        max_iter: L-BFGS iteration limit per strength.
        tol: Gradient tolerance (largest entry of the mean objective's gradient).
        backend: ``"torch"`` (the library's L-BFGS) or ``"sklearn"``.
        precondition: Switch to the covariance preconditioner when a strength needs more
            than :data:`PRECONDITION_AFTER` iterations (``torch`` backend; its softmax form,
            :class:`~cactus_features.heads.solvers.precondition.SoftmaxPreconditioner`,
            for K classes).
        n_classes: ``K``; above 2 each strength is a softmax (multinomial) fit
            (:func:`~cactus_features.heads.solvers.multinomial.fit_softmax_lbfgs`) with
            ``weight [K, D]`` and ``bias [K]``.

    Returns:
        One point per strength, in the order of ``l2_grid``.
    """
    order = sorted(range(len(l2_grid)), key=lambda i: -float(l2_grid[i]))
    fit_one = _sklearn_path(tensors, max_iter, tol) if backend == "sklearn" else None
    if fit_one is None and n_classes > 2:
        return _softmax_path(tensors, l2_grid, order, n_classes, max_iter, tol, precondition)
    pre: CovariancePreconditioner | None = None
    x, s = tensors.x_train, tensors.w_train
    total = float(s.double().sum())
    theta = torch.zeros(x.shape[1] + 1, dtype=torch.float64, device=x.device)
    points: dict[int, PathPoint] = {}
    for i in order:
        lam = float(l2_grid[i])
        c_value = 1.0 / (max(lam, 1e-12) * total)
        if fit_one is not None:
            points[i] = fit_one(lam, c_value)
            continue

        first = min(max_iter, PRECONDITION_AFTER) if pre is None and precondition else max_iter
        lb = _fit_strength(tensors, lam, c_value, first, tol, theta, pre)
        if not lb.converged and lb.iterations >= first and first < max_iter:
            # slow without it: ill-conditioned features; the preconditioner pays off
            pre = CovariancePreconditioner(x, s)
            rest = _fit_strength(
                tensors, lam, c_value, max_iter - lb.iterations, tol, _theta(lb), pre
            )
            lb = _joined(lb, rest)
        theta = _theta(lb)
        points[i] = _point(lam, lb, tensors)
    return [points[i] for i in range(len(l2_grid))]


def _softmax_path(
    tensors: SplitTensors,
    l2_grid: Sequence[float],
    order: Sequence[int],
    n_classes: int,
    max_iter: int,
    tol: float,
    precondition: bool = True,
) -> list[PathPoint]:
    """The warm-started path of K-class softmax fits (in ``order``, strongest first),
    switching to the softmax covariance preconditioner by the binary path's rule."""
    x, y, s = tensors.x_train, tensors.y_train, tensors.w_train
    total = float(s.double().sum())
    theta = torch.zeros(n_classes * (x.shape[1] + 1), dtype=torch.float64, device=x.device)
    pre: SoftmaxPreconditioner | None = None
    points: dict[int, PathPoint] = {}
    with contextlib.closing(softmax_terms(x, y, s, n_classes, tol=tol)) as terms:

        def fit(lam: float, limit: int, start: torch.Tensor) -> LbfgsFit:
            if pre is not None:
                w = start.view(n_classes, -1)
                z = (x @ w[:, :-1].T.to(x.dtype)).double().add_(w[:, -1])
                pre.set(lam, softmax_curvature(z, s))
            c_value = 1.0 / (max(lam, 1e-12) * total)
            return fit_softmax_lbfgs(
                x, y, s, n_classes, C=c_value, max_iter=limit, tol=tol, init=start,
                preconditioner=pre, terms=terms,
            )  # fmt: skip

        for i in order:
            lam = float(l2_grid[i])
            first = min(max_iter, PRECONDITION_AFTER) if pre is None and precondition else max_iter
            lb = fit(lam, first, theta)
            if not lb.converged and lb.iterations >= first and first < max_iter:
                pre = SoftmaxPreconditioner(x, s, n_classes)
                lb = _joined(lb, fit(lam, max_iter - lb.iterations, _softmax_theta(lb)))
            theta = _softmax_theta(lb)
            points[i] = _point(lam, lb, tensors)
    return [points[i] for i in range(len(l2_grid))]


def _softmax_theta(lb: LbfgsFit) -> torch.Tensor:
    """A softmax fit's ``[K, D]`` weights and ``[K]`` intercepts as one vector."""
    return torch.cat([lb.weight, lb.bias[:, None]], dim=1).reshape(-1)  # type: ignore[index]


def _fit_strength(
    tensors: SplitTensors,
    lam: float,
    c_value: float,
    limit: int,
    tol: float,
    start: torch.Tensor,
    pre: CovariancePreconditioner | None,
) -> LbfgsFit:
    """One strength of the path by L-BFGS from ``start`` (no validation curves: the
    validation rows are scored once per strength, at its solution)."""
    x, y, s = tensors.x_train, tensors.y_train, tensors.w_train
    if pre is not None:
        z = torch.mv(x, start[:-1].to(x.dtype)).double().add_(start[-1])
        pre.set(lam, mean_curvature(z, s))
    return fit_logistic_lbfgs(
        x, y, s, C=c_value, max_iter=limit, tol=tol, init=start, preconditioner=pre
    )


def _theta(lb: LbfgsFit) -> torch.Tensor:
    """Weights and intercept of a fit as one vector (a warm start)."""
    return torch.cat([lb.weight, lb.weight.new_tensor([lb.bias])])


def _joined(a: LbfgsFit, b: LbfgsFit) -> LbfgsFit:
    """Fit ``b`` continued from fit ``a``: ``b``'s solution, both fits' curves and time."""
    history = {k: np.concatenate([a.history[k], b.history[k]]) for k in a.history}
    return replace(
        b, history=history, iterations=a.iterations + b.iterations, seconds=a.seconds + b.seconds
    )


def _point(lam: float, lb: LbfgsFit, tensors: SplitTensors) -> PathPoint:
    """A fitted strength: its validation scores at the solution, and its curves (the
    per-iteration validation curves are not computed on the path, to save a pass over
    the validation rows per iteration: their last entry is the solution's)."""
    loss, auc = validation_scores(lb.weight, lb.bias, tensors)  # type: ignore[arg-type]
    if lb.iterations:
        lb.history["val_loss"][-1] = loss
        lb.history["val_auc"][-1] = auc
    return PathPoint(
        l2=lam,
        weight=lb.weight,
        bias=lb.bias,
        iterations=lb.iterations,
        converged=lb.converged,
        grad_max=lb.grad_max,
        val_loss=loss,
        val_auc=auc,
        history=lb.history,
    )


def validation_scores(
    weight: torch.Tensor, bias: float | torch.Tensor, tensors: SplitTensors
) -> tuple[float, float]:
    """Class-weighted mean validation log loss and AUC of a linear head (macro
    one-vs-rest AUC for a ``[K, D]`` softmax head)."""
    if weight.dim() == 2:
        assert isinstance(bias, torch.Tensor)
        return softmax_validation_scores(weight, bias, tensors)
    xv = tensors.x_val.double()
    z = torch.mv(xv, weight.to(xv)).add_(bias)
    wv = tensors.w_val.double()
    yv = tensors.y_val.double()
    loss = F.binary_cross_entropy_with_logits(z, yv, weight=wv / wv.sum(), reduction="sum")
    return float(loss), float(roc_auc(z, yv > 0.5))


def _sklearn_path(tensors: SplitTensors, max_iter: int, tol: float):  # type: ignore[no-untyped-def]
    """A closure fitting one strength with a warm-started scikit-learn model."""
    from sklearn.linear_model import LogisticRegression

    x = tensors.x_train.cpu().numpy()
    y = tensors.y_train.cpu().numpy().astype(np.int64)
    s = tensors.w_train.cpu().numpy().astype(np.float64)
    model = LogisticRegression(solver="lbfgs", warm_start=True, max_iter=max_iter, tol=tol)
    binary = len(np.unique(y)) <= 2

    def fit_one(lam: float, c_value: float) -> PathPoint:
        model.set_params(C=c_value)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning: recorded as converged=False
            model.fit(x, y, sample_weight=s)
        iterations = int(model.n_iter_[0])
        if binary:
            weight = torch.as_tensor(model.coef_[0], dtype=torch.float64)
            bias: float | torch.Tensor = float(model.intercept_[0])
        else:  # multinomial: coef_ [K, D], intercept_ [K]
            weight = torch.as_tensor(model.coef_, dtype=torch.float64)
            bias = torch.as_tensor(model.intercept_, dtype=torch.float64)
        loss, auc = validation_scores(weight.to(tensors.x_val.device), bias, tensors)
        return PathPoint(
            l2=lam,
            weight=weight,
            bias=bias,
            iterations=iterations,
            converged=iterations < max_iter,
            grad_max=float("nan"),
            val_loss=loss,
            val_auc=auc,
            history={},
        )

    return fit_one


def choose(
    val_loss: Sequence[float], val_auc: Sequence[float], l2: Sequence[float], select: str
) -> int:
    """Index of the chosen strength: lowest validation loss (``select="val_loss"``) or
    highest validation AUC (otherwise); ties (and NaNs last) go to the larger ``l2``."""

    def key(i: int) -> tuple[float, float]:
        if select == "val_loss":
            score = val_loss[i] if np.isfinite(val_loss[i]) else np.inf
        else:
            score = -val_auc[i] if np.isfinite(val_auc[i]) else np.inf
        return (score, -float(l2[i]))

    return min(range(len(l2)), key=key)


def grid_info(
    config: HeadConfig,
    values: Sequence[float],
    val_loss: Sequence[float],
    val_auc: Sequence[float],
    converged: Sequence[bool],
    steps: Sequence[int],
    chosen: int,
    extra: dict[str, Sequence[Any]] | None = None,
) -> dict[str, Any]:
    """The run's ``info["grid"]``: every strength's validation scores and the choice."""
    edge = len(values) > 1 and float(values[chosen]) in (min(values), max(values))
    return {
        "param": "l2" if config.head == "linear" else "weight_decay",
        "values": [float(v) for v in values],
        "val_loss": [float(v) for v in val_loss],
        "val_auc": [float(v) for v in val_auc],
        "converged": [bool(v) for v in converged],
        "steps": [int(v) for v in steps],
        "criterion": config.select,
        "chosen": int(chosen),
        "chosen_value": float(values[chosen]),
        "chosen_val_loss": float(val_loss[chosen]),
        "chosen_val_auc": float(val_auc[chosen]),
        "at_edge": bool(edge),
        **{k: [float(x) for x in v] for k, v in (extra or {}).items()},
    }


def path_choice(points: Sequence[PathPoint], config: HeadConfig) -> tuple[int, dict[str, Any]]:
    """The chosen strength of a fitted linear path (:func:`choose` by ``config.select``)
    and the path's ``info["grid"]`` (:func:`grid_info`, with each strength's ``grad_max``)."""
    loss = [p.val_loss for p in points]
    auc = [p.val_auc for p in points]
    k = choose(loss, auc, config.l2_grid, config.select)
    grid = grid_info(
        config,
        config.l2_grid,
        loss,
        auc,
        [p.converged for p in points],
        [p.iterations for p in points],
        k,
        extra={"grad_max": [p.grad_max for p in points]},
    )
    return k, grid


class GridSolver:
    """The ``grid`` solver: a grid of L2 strengths per head, the best on validation kept.

    Args:
        backend: ``"torch"`` or ``"sklearn"`` for the linear path (see :func:`l2_path`).
        precondition: Covariance preconditioning of the linear path.
        max_group: Most MLP heads trained in one batch (default: what fits memory).
    """

    def __init__(
        self, backend: str = "torch", precondition: bool = True, max_group: int | None = None
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend {backend!r}; use one of {BACKENDS}")
        self.backend = backend
        self.precondition = precondition
        self.max_group = max_group

    def fit(
        self,
        data: PreparedData,
        configs: Sequence[HeadConfig],
        device: torch.device,
        progress: Progress | None = None,
    ) -> Fit:
        """Train one tuned head per configuration; the chosen strength's weights are
        kept, the whole grid is in ``info["grid"]``. ``progress`` is not reported."""
        if len(configs) != 1:
            raise ValueError("the grid solver trains one configuration at a time")
        config = configs[0]
        if config.head == "linear":
            return self._linear(data, config, device)
        return self._mlp(data, config, device)

    def _linear(self, data: PreparedData, config: HeadConfig, device: torch.device) -> Fit:
        if data.task == MULTILABEL:  # one binary path per label
            return self._multilabel(data, config, device)
        start = time.perf_counter()
        tensors = data.tensors(device)
        points = l2_path(
            tensors,
            config.l2_grid,
            max_iter=config.epochs,
            tol=config.tol,
            backend=self.backend,
            precondition=self.precondition,
            n_classes=len(data.class_names),
        )
        del tensors
        seconds = time.perf_counter() - start
        k, grid = path_choice(points, config)
        best = points[k]
        if best.weight.dim() == 2:  # K-class softmax head
            state = {
                "linear.weight": best.weight.float().cpu().numpy(),
                "linear.bias": torch.as_tensor(best.bias).float().cpu().numpy(),
            }
        else:
            state = {
                "linear.weight": best.weight.float().cpu().numpy()[None, :],
                "linear.bias": np.array([best.bias], dtype=np.float32),
            }
        state.update({LAST_PREFIX + name: v.copy() for name, v in list(state.items())})
        if not best.history or not len(next(iter(best.history.values()))):
            # No iteration ran (the start already met the tolerance, e.g. constant features).
            history = {n: np.array([v]) for n, v in _final(best).items()}
        else:
            history = best.history
        steps = max(1, len(next(iter(history.values()))))
        return Fit(
            history={
                n: np.asarray(v, dtype=np.float64).reshape(steps, 1) for n, v in history.items()
            },
            best_epoch=np.array([best.iterations]),
            best_val_auc=np.array([best.val_auc]),
            best_val_loss=np.array([best.val_loss]),
            epochs_run=best.iterations,
            seconds=seconds,
            info={
                "solver": "grid",
                "backend": self.backend,
                "grid": grid,
                "convergence": gradient_convergence(best.converged, best.grad_max, best.iterations),
            },
            group_size=1,
            weights=lambda _k: state,
            note=_note(grid),
        )

    def _multilabel(self, data: PreparedData, config: HeadConfig, device: torch.device) -> Fit:
        """The linear multi-label head (:mod:`cactus_features.heads.solvers.multilabel`)."""
        from cactus_features.heads.solvers.multilabel import fit_multilabel_linear  # uses l2_path

        return fit_multilabel_linear(
            data, config, device, backend=self.backend, precondition=self.precondition
        )

    def _mlp(self, data: PreparedData, config: HeadConfig, device: torch.device) -> Fit:
        heads = [config.with_(solver="adam", weight_decay=float(v)) for v in config.l2_grid]
        inner = AdamSolver(self.max_group).fit(data, heads, device)
        loss, auc = list(inner.best_val_loss), list(inner.best_val_auc)
        k = choose(loss, auc, config.l2_grid, config.select)
        epochs = [int(e) for e in inner.best_epoch]
        grid = grid_info(
            config,
            config.l2_grid,
            loss,
            auc,
            [e < inner.epochs_run for e in epochs],
            epochs,
            k,
        )
        history = {n: v[:, k : k + 1].copy() for n, v in inner.history.items()}
        return Fit(
            history=history,
            best_epoch=inner.best_epoch[k : k + 1].copy(),
            best_val_auc=inner.best_val_auc[k : k + 1].copy(),
            best_val_loss=inner.best_val_loss[k : k + 1].copy(),
            epochs_run=inner.epochs_run,
            seconds=inner.seconds,
            info={**inner.info, "solver": "grid", "grid": grid},
            group_size=inner.group_size,
            weights=lambda _k: inner.weights(k),
            note=_note(grid),
            one_off_seconds=inner.one_off_seconds,
        )


def _final(point: PathPoint) -> dict[str, float]:
    """Curves of a fit that took no iteration (or scikit-learn's): its final scores."""
    return {"train_loss": float("nan"), "val_loss": point.val_loss, "val_auc": point.val_auc}


def _note(grid: dict[str, Any]) -> str:
    """One console line: the chosen strength and its validation scores."""
    return (
        f"grid over {grid['param']} ({len(grid['values'])} values, by {grid['criterion']}): "
        f"chose {grid['chosen_value']:g} (val loss {grid['chosen_val_loss']:.4f}, "
        f"val AUC {grid['chosen_val_auc']:.4f})"
    )
