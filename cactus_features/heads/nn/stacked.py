"""Forward and hand-written backward of ``K`` heads with the same layer sizes.

Activations are sample-major, ``[K, rows, features]`` per head, so every layer
after the first is one batched matmul. The first layer reads the inputs:

* shared inputs ``x: [N, D]`` (full batch: every head sees the same rows) -- one
  large matmul ``[N, D] @ [D, K*out]`` for all heads together, whose ``[N, K*out]``
  result is viewed as ``[K, N, out]`` (the layout MKL computes fastest, and the
  same for the weight gradient ``[N, K*out].T @ [N, D]``);
* per-head inputs ``x: [K, B, D]`` (mini-batches drawn per head) -- a batched matmul.

Each head has ``C`` outputs (the last layer's size): one logit (a binary head: logits
``[K, rows]``) or ``C > 1`` (K-class softmax or multi-label heads: logits
``[K, rows, C]``); :meth:`StackedNet.backward` takes the gradient in the same shape.
The losses and their gradients are in :mod:`~cactus_features.heads.nn.losses`.

No autograd: gradients are computed explicitly, into reused buffers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cactus_features.heads.nn.losses import weighted_bce

__all__ = ["StackedNet", "Workspace", "weighted_bce"]


class Workspace:
    """Named, reused scratch buffers (grown when a larger one is needed)."""

    def __init__(self, device: torch.device, dtype: torch.dtype = torch.float32) -> None:
        self.device, self.dtype = device, dtype
        self._bufs: dict[str, torch.Tensor] = {}

    def get(self, name: str, *shape: int) -> torch.Tensor:
        """A contiguous tensor of ``shape`` (contents undefined)."""
        n = 1
        for s in shape:
            n *= s
        buf = self._bufs.get(name)
        if buf is None or buf.numel() < n:
            buf = torch.empty(n, device=self.device, dtype=self.dtype)
            self._bufs[name] = buf
        return buf[:n].view(*shape)


class StackedNet:
    """``K`` MLP (or linear, with no hidden layer) heads evaluated together.

    Args:
        params: ``[W_0, b_0, W_1, b_1, ...]`` with ``W_l: [K, out, in]``, ``b_l: [K, out]``.
        dropout: Dropout probability after each hidden ReLU (training only).
        generators: One generator per head for its dropout masks (``None`` if no dropout).
    """

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        dropout: float = 0.0,
        generators: Sequence[torch.Generator] | None = None,
    ) -> None:
        self.params = list(params)
        self.weights = self.params[0::2]
        self.biases = self.params[1::2]
        self.k = self.weights[0].shape[0]
        self.dropout = dropout
        self.generators = list(generators) if generators is not None else None
        self.ws = Workspace(self.weights[0].device, self.weights[0].dtype)
        self.grads = [torch.empty_like(p) for p in self.params]
        self._inputs: list[torch.Tensor] = []
        self._x: torch.Tensor | None = None
        self._scale = 1.0

    @property
    def n_layers(self) -> int:
        """Number of linear layers."""
        return len(self.weights)

    def forward(self, x: torch.Tensor, train: bool = False) -> torch.Tensor:
        """Logits ``[K, rows]`` (one output per head) or ``[K, rows, C]`` (``C > 1``).

        Args:
            x: Shared ``[N, D]`` or per-head ``[K, B, D]`` inputs.
            train: Apply dropout and keep activations for :meth:`backward`.
        """
        k = self.k
        n = x.shape[-2]
        tag = "t" if train else "e"
        drop = train and self.dropout > 0
        keep = 1.0 - self.dropout
        self._inputs = []
        h = torch.empty(0)
        for layer, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            out = w.shape[1]
            if layer == 0 and x.dim() == 2:
                flat = self.ws.get(f"{tag}a0", n, k * out)
                torch.addmm(b.reshape(k * out), x, w.reshape(k * out, -1).T, out=flat)
                a = flat.view(n, k, out).transpose(0, 1)  # [K, N, out] view
            else:
                a = self.ws.get(f"{tag}a{layer}", k, n, out)
                inp = x if layer == 0 else h
                torch.baddbmm(b.unsqueeze(1), inp, w.transpose(1, 2), out=a)
            if layer < self.n_layers - 1:
                a.relu_()
                if drop:
                    # keep where u < keep, u ~ U[0, 1) per head from its own generator
                    # (uniform_ is ~2.5x cheaper than bernoulli_ on the CPU)
                    mask = self.ws.get(f"mask{layer}", *a.shape)
                    for i, gen in enumerate(self.generators or []):
                        mask[i].uniform_(generator=gen)
                    a.mul_(mask.lt_(keep)).mul_(1.0 / keep)
                if train:
                    self._inputs.append(a)
                h = a
        if train:
            self._x = x
            self._scale = 1.0 / keep if drop else 1.0
        return a.reshape(k, n) if a.shape[2] == 1 else a

    def backward(self, dlogits: torch.Tensor) -> list[torch.Tensor]:
        """Gradients of all parameters for ``d loss / d logits`` (shaped as the logits:
        ``[K, rows]`` or ``[K, rows, C]``).

        Uses the activations of the last ``forward(..., train=True)``.

        Returns:
            Gradients in parameter order (buffers reused by the next call).
        """
        x = self._x
        assert x is not None, "backward() needs a forward(train=True) first"
        k, n = dlogits.shape[:2]
        da = dlogits.reshape(k, n, 1) if dlogits.dim() == 2 else dlogits
        for layer in range(self.n_layers - 1, -1, -1):
            gw, gb = self.grads[2 * layer], self.grads[2 * layer + 1]
            torch.sum(da, dim=1, out=gb)
            if layer == 0:
                out = gw.shape[1]
                if x.dim() == 2:
                    # da: a [K, N, out] view of a [N, K*out] buffer (MLP), or the logits'
                    # gradient (linear; the reshape then copies it)
                    flat = da.transpose(0, 1).reshape(n, k * out)
                    torch.mm(flat.T, x, out=gw.view(k * out, -1))
                else:
                    torch.bmm(da.transpose(1, 2), x, out=gw)
                break
            h = self._inputs[layer - 1]
            torch.bmm(da.transpose(1, 2), h, out=gw)
            if layer == 1 and x.dim() == 2:
                dflat = self.ws.get("dh_first", n, k * h.shape[2])
                dh = dflat.view(n, k, h.shape[2]).transpose(0, 1)
            else:
                dh = self.ws.get(f"dh{layer}", k, n, h.shape[2])
            torch.bmm(da, self.weights[layer], out=dh)
            # ReLU and dropout: the gradient passes where the kept activation is > 0
            dh.masked_fill_(h <= 0, 0.0)
            if self._scale != 1.0:
                dh.mul_(self._scale)
            da = dh
        return self.grads
