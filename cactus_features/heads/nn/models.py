"""Head architectures, their initialisation and their saved weights.

Two views of the same head:

* :class:`LinearHead` / :class:`MLPHead` -- plain ``nn.Module`` s used to rebuild a
  saved head (:func:`head_from_state`) and as the autograd reference.
* *stacked parameters* -- ``[W_0, b_0, W_1, b_1, ...]`` with a leading head axis
  ``K`` (``W_l: [K, out, in]``, ``b_l: [K, out]``), trained by the batched engines.

Both use the same state-dict names, so one trained head of a stack saves exactly
like the module would.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from cactus_features.data.classes import MULTILABEL
from cactus_features.errors import CacheError, ConfigError

LAST_PREFIX = "last."
"""Prefix of the last-epoch weights saved next to the selected ones in a run file."""


MULTICLASS_HEADS: dict[str, tuple[str, ...]] = {
    "linear": ("grid", "adam"),
    "mlp": ("grid", "adam"),
    "knn": ("knn",),
}
"""The solvers of each head kind that take more than two classes: the single place to
extend. Linear and MLP heads: a softmax over K logits, by the tuned protocol (the linear
head's softmax L-BFGS path, the MLP's grid of Adam weight decays) or by Adam; the kNN
probe: each class's share of the votes. Multi-label data has its own table,
:data:`~cactus_features.heads.prepare.multilabel.MULTILABEL_HEADS`."""


def output_dim(n_classes: int, task: str | None = None) -> int:
    """Number of logits: 1 for two classes (a sigmoid), ``K`` for ``K > 2`` (a softmax),
    one per label for ``task="multilabel"`` (one sigmoid each).

    Args:
        n_classes: Number of classes (of labels, for multi-label data).
        task: The task kind; ``None`` or another kind than ``"multilabel"``: single-label.

    Raises:
        ConfigError: For fewer than two classes (labels).
    """
    if task == MULTILABEL:
        if n_classes < 2:
            raise ConfigError(
                f"need two labels to train a multi-label head, got {n_classes}; "
                "train one label as a binary task"
            )
        return n_classes
    if n_classes < 2:
        raise ConfigError(f"need two classes to train a head, got {n_classes}")
    return 1 if n_classes == 2 else n_classes


def check_takes_classes(head: str, solver: str, n_classes: int) -> None:
    """Refuse a head that cannot train on ``n_classes`` classes (one label per image).

    Multi-label data is checked by
    :func:`~cactus_features.heads.prepare.multilabel.check_takes_labels` (its table
    ``MULTILABEL_HEADS``), not here.

    Raises:
        ConfigError: For fewer than two classes, or more than two and a head and solver
            outside :data:`MULTICLASS_HEADS`.
    """
    output_dim(n_classes)
    if n_classes > 2 and solver not in MULTICLASS_HEADS.get(head, ()):
        raise ConfigError(
            f"{n_classes} classes: the {head} head with solver {solver!r} takes two classes "
            "only so far; use the linear or mlp head with the tuned or report preset (solver "
            "grid or adam), or the knn head"
        )


def layer_sizes(dim: int, hidden: Sequence[int], out_dim: int = 1) -> list[tuple[int, int]]:
    """``(in, out)`` of each linear layer: ``dim -> hidden... -> out_dim``."""
    sizes = [dim, *hidden, out_dim]
    return list(itertools.pairwise(sizes))


def state_names(n_hidden: int) -> list[tuple[str, str]]:
    """``(weight name, bias name)`` of each layer, as in the ``nn.Module`` state dict."""
    if n_hidden == 0:
        return [("linear.weight", "linear.bias")]
    return [(f"layers.{3 * i}.weight", f"layers.{3 * i}.bias") for i in range(n_hidden + 1)]


class LinearHead(nn.Module):
    """One linear layer: ``logit = x @ w + b``."""

    def __init__(self, dim: int, out_dim: int = 1) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[N, out_dim]``."""
        return self.linear(x)


class MLPHead(nn.Module):
    """``Linear -> ReLU -> Dropout`` per hidden size, then a linear output layer."""

    def __init__(
        self, dim: int, hidden: Sequence[int], dropout: float = 0.2, out_dim: int = 1
    ) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        for fan_in, fan_out in layer_sizes(dim, hidden, out_dim)[:-1]:
            mods += [nn.Linear(fan_in, fan_out), nn.ReLU(), nn.Dropout(dropout)]
        mods.append(nn.Linear(hidden[-1], out_dim))
        self.layers = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[N, out_dim]``."""
        return self.layers(x)


def build_head(
    dim: int, hidden: Sequence[int] = (), dropout: float = 0.0, out_dim: int = 1
) -> nn.Module:
    """The ``nn.Module`` of a head (linear when ``hidden`` is empty)."""
    if not hidden:
        return LinearHead(dim, out_dim)
    return MLPHead(dim, hidden, dropout, out_dim)


def init_stacked(
    sizes: Sequence[tuple[int, int]],
    seeds: Sequence[int],
    device: torch.device | str = "cpu",
) -> list[torch.Tensor]:
    """Initial stacked parameters, one head per seed.

    Each head draws from its own CPU generator seeded with its seed, with
    PyTorch's default ``nn.Linear`` distribution (``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``
    for weights and biases), so a head's start does not depend on the device or on
    the other heads in the stack.

    Returns:
        ``[W_0, b_0, W_1, b_1, ...]`` with shapes ``[K, out, in]`` and ``[K, out]``.
    """
    per_head: list[list[torch.Tensor]] = []
    for seed in seeds:
        gen = torch.Generator().manual_seed(int(seed))
        tensors = []
        for fan_in, fan_out in sizes:
            bound = 1.0 / float(np.sqrt(fan_in))
            tensors.append((torch.rand(fan_out, fan_in, generator=gen) * 2 - 1) * bound)
            tensors.append((torch.rand(fan_out, generator=gen) * 2 - 1) * bound)
        per_head.append(tensors)
    return [torch.stack(ts).to(device).contiguous() for ts in zip(*per_head, strict=True)]


def stacked_state(
    params: Sequence[torch.Tensor], k: int, n_hidden: int, prefix: str = ""
) -> dict[str, np.ndarray]:
    """State dict (float32 numpy) of head ``k`` of a stack."""
    state: dict[str, np.ndarray] = {}
    layers = zip(state_names(n_hidden), params[0::2], params[1::2], strict=True)
    for (w_name, b_name), w, b in layers:
        state[prefix + w_name] = w[k].detach().float().cpu().numpy().copy()
        state[prefix + b_name] = b[k].detach().float().cpu().numpy().copy()
    return state


def head_from_state(state: dict[str, np.ndarray], dropout: float = 0.0) -> nn.Module:
    """Rebuild a head module (in eval mode) from saved weights.

    Keys starting with :data:`LAST_PREFIX` (the last-epoch copy) are ignored.

    Raises:
        CacheError: If the weights are neither a linear nor an MLP head.
    """
    state = {k: v for k, v in state.items() if not k.startswith(LAST_PREFIX)}
    if "linear.weight" in state:
        w = state["linear.weight"]
        module: nn.Module = LinearHead(w.shape[1], w.shape[0])
    else:
        weights = sorted(
            (int(k.split(".")[1]), v) for k, v in state.items() if k.endswith(".weight")
        )
        if not weights or not all(k.startswith("layers.") for k in state):
            raise CacheError(f"run file head weights {sorted(state)} are not a known head")
        hidden = [v.shape[0] for _, v in weights[:-1]]
        module = MLPHead(weights[0][1].shape[1], hidden, dropout, weights[-1][1].shape[0])
    try:
        module.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})
    except RuntimeError as exc:
        raise CacheError(f"run file head weights do not fit the head: {exc}") from None
    return module.eval()
