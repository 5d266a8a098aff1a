"""The training losses of stacked heads and their gradients w.r.t. the logits.

One loss per task kind (:mod:`cactus_features.data.classes`), each computing the loss of
``K`` heads at once and its gradient in closed form (no autograd):

* binary -- :func:`weighted_bce`: one logit per row, sigmoid cross-entropy;
* multiclass -- :func:`weighted_softmax_ce`: ``C`` logits per row, softmax cross-entropy
  against the row's class index;
* multilabel -- :func:`weighted_multilabel_bce`: ``L`` logits per row, one sigmoid
  cross-entropy per label.

Weights come normalised by :func:`normalise_weights`: the loss of a head is then a sum of
``w * loss`` over its entries, and equals

* binary, multiclass: the class-weighted mean over rows, ``sum_i c_i l_i / sum_i c_i``
  (``c_i`` the class weight of row ``i``), from ``w_i = c_i / sum_j c_j``;
* multilabel: the mean over labels of each label's weighted-mean BCE,
  ``(1 / L) sum_l [sum_i c_il bce_il / sum_i c_il]`` (``c_il`` the weight of row ``i``'s
  entry for label ``l``), from ``w_il = c_il / (L sum_j c_jl)``.

:class:`TaskLoss` bundles the normalisation and the loss of one task for the training
engine, including the per-column sums a mini-batch epoch needs to report its loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cactus_features.data.classes import BINARY, MULTICLASS, MULTILABEL, TASKS


def weighted_bce(
    logits: torch.Tensor, y: torch.Tensor, weight: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted binary cross-entropy and its gradient w.r.t. the logits.

    Args:
        logits: ``[K, N]``.
        y: Targets in ``{0, 1}``, ``[N]`` or ``[K, N]``.
        weight: Sample weights, normalised to sum to 1 along the rows, ``[N]`` or ``[K, N]``.

    Returns:
        ``(loss [K], dloss/dlogits [K, N])`` with ``loss = sum_i w_i * bce_i``.
    """
    loss, grad = _bce_terms(logits, y, weight)
    return loss.sum(-1), grad


def weighted_softmax_ce(
    logits: torch.Tensor, y: torch.Tensor, weight: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted softmax cross-entropy and its gradient w.r.t. the logits.

    Args:
        logits: ``[K, N, C]``.
        y: Class indices (int64), ``[N]`` or ``[K, N]``.
        weight: Row weights, normalised to sum to 1 along the rows, ``[N]`` or ``[K, N]``.

    Returns:
        ``(loss [K], dloss/dlogits [K, N, C])`` with
        ``loss = sum_i w_i * -log softmax(z_i)[y_i]`` and gradient
        ``w_i * (softmax(z_i) - onehot(y_i))``.
    """
    k, n, _ = logits.shape
    idx = y.expand(k, n).unsqueeze(-1)
    w = weight.expand(k, n).unsqueeze(-1)
    logp = torch.log_softmax(logits, dim=-1)
    loss = logp.gather(-1, idx).mul_(w).sum((1, 2)).neg_()
    grad = logp.exp_().mul_(w)
    grad.scatter_add_(-1, idx, w.neg())
    return loss, grad


def weighted_multilabel_bce(
    logits: torch.Tensor, y: torch.Tensor, weight: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted per-label binary cross-entropy and its gradient w.r.t. the logits.

    Args:
        logits: ``[K, N, L]``.
        y: Targets in ``{0, 1}``, ``[N, L]`` or ``[K, N, L]``.
        weight: Entry weights ``[N, L]`` or ``[K, N, L]``, normalised by
            :func:`normalise_weights` (each label's column sums to ``1 / L``).

    Returns:
        ``(loss [K], dloss/dlogits [K, N, L])`` with ``loss = sum_il w_il * bce_il``.
    """
    loss, grad = _bce_terms(logits, y, weight)
    return loss.sum((1, 2)), grad


def _bce_terms(
    logits: torch.Tensor, y: torch.Tensor, weight: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-entry ``w * bce`` and its gradient ``w * (sigmoid(z) - y)`` (``y`` and
    ``weight`` broadcast to the logits' shape)."""
    y = y.expand_as(logits)
    weight = weight.expand_as(logits)
    loss = F.binary_cross_entropy_with_logits(logits, y, weight=weight, reduction="none")
    grad = torch.sigmoid(logits).sub_(y).mul_(weight)
    return loss, grad


def normalise_weights(weight: torch.Tensor, task: str) -> torch.Tensor:
    """Weights normalised along the rows as the module docstring says.

    Args:
        weight: Raw weights: ``[N]`` or ``[K, N]`` (binary, multiclass), ``[N, L]`` or
            ``[K, N, L]`` (multilabel).
        task: The task kind.

    Returns:
        ``weight`` divided by its sum along the rows (per head; per label and times
        ``L`` for multilabel).
    """
    if task == MULTILABEL:
        return weight / (weight.sum(-2, keepdim=True) * weight.shape[-1])
    if weight.dim() == 1:
        return weight / weight.sum()
    return weight / weight.sum(-1, keepdim=True)


@dataclass(frozen=True)
class TaskLoss:
    """The training loss of one task kind, for the engines.

    Attributes:
        task: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
    """

    task: str

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task {self.task!r}; use one of {TASKS}")

    def targets(self, y: torch.Tensor) -> torch.Tensor:
        """Targets as the loss takes them (class indices as int64 for multiclass)."""
        return y.to(torch.int64) if self.task == MULTICLASS else y

    def __call__(
        self, logits: torch.Tensor, y: torch.Tensor, weight: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loss [K], dloss/dlogits)`` for weights normalised by :func:`normalise_weights`."""
        if self.task == BINARY:
            return weighted_bce(logits, y, weight)
        if self.task == MULTICLASS:
            return weighted_softmax_ce(logits, y, weight)
        return weighted_multilabel_bce(logits, y, weight)

    def mass(self, weight: torch.Tensor) -> torch.Tensor:
        """Raw weight of each normalisation group: per head ``[K]`` (multilabel: per head
        and label ``[K, L]``; for rows without a head axis ``[]`` or ``[L]``)."""
        if self.task == MULTILABEL:
            return weight.sum(-2)
        return weight.sum() if weight.dim() == 1 else weight.sum(-1)

    def batch_loss(
        self, logits: torch.Tensor, y: torch.Tensor, weight: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One mini-batch with raw ``weight``: ``(column sums, gradient)``.

        The gradient is that of the batch's loss (weights normalised within the batch).
        The column sums are ``sum_i c_i l_i`` per head (``[K]``; multilabel: per head
        and label, ``[K, L]``): summed over an epoch's batches, divided by the
        epoch's :meth:`mass` and passed through :meth:`reduce`, they give the epoch's
        loss (the loss of all its rows at the weights each batch saw).
        """
        mass = self.mass(weight)
        if self.task != MULTILABEL:
            loss, grad = self(logits, y, weight / mass.unsqueeze(-1))
            return loss * mass, grad
        bce, grad = _bce_terms(logits, y, weight)
        return bce.sum(-2), grad.div_(mass.unsqueeze(-2) * weight.shape[-1])

    def reduce(self, column_loss: torch.Tensor) -> torch.Tensor:
        """The loss ``[K]`` from per-column weighted means (multilabel: their mean over
        labels)."""
        return column_loss.mean(-1) if self.task == MULTILABEL else column_loss
