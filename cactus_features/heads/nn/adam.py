"""Adam over a stack of heads, each with its own learning rate and weight decay.

Same update as ``torch.optim.Adam`` (L2 weight decay added to the gradient, no
AMSGrad), vectorised over the leading head axis ``K`` and done in place on
preallocated buffers. Hyper-parameters live on the parameters' device, so a step
never waits for the host.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class StackedAdam:
    """In-place Adam for stacked parameters ``[K, ...]``.

    Args:
        params: Parameters with a leading head axis (updated in place).
        lr: Learning rate of each head ``[K]``.
        weight_decay: L2 weight decay of each head ``[K]``.
        betas: Moment decay rates.
        eps: Denominator epsilon.
    """

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        lr: Sequence[float] | torch.Tensor,
        weight_decay: Sequence[float] | torch.Tensor,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.params = list(params)
        dev, dtype = self.params[0].device, self.params[0].dtype
        self.lr = torch.as_tensor(lr, dtype=dtype, device=dev).reshape(-1)
        self.weight_decay = torch.as_tensor(weight_decay, dtype=dtype, device=dev).reshape(-1)
        self.use_decay = bool((self.weight_decay != 0).any())
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.step_count = 0
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self._denom = [torch.empty_like(p) for p in self.params]
        self._lr_view = [self.lr.view(-1, *[1] * (p.dim() - 1)) for p in self.params]
        self._wd_view = [self.weight_decay.view(-1, *[1] * (p.dim() - 1)) for p in self.params]

    def step(self, grads: Sequence[torch.Tensor]) -> None:
        """Apply one update; ``grads`` (same shapes as the parameters) are modified."""
        self.step_count += 1
        t = self.step_count
        bias1 = 1.0 - self.beta1**t
        bias2_sqrt = (1.0 - self.beta2**t) ** 0.5
        for i, (p, g) in enumerate(zip(self.params, grads, strict=True)):
            if self.use_decay:
                g.addcmul_(p, self._wd_view[i])
            m, v, denom = self.exp_avg[i], self.exp_avg_sq[i], self._denom[i]
            m.lerp_(g, 1.0 - self.beta1)
            v.mul_(self.beta2).addcmul_(g, g, value=1.0 - self.beta2)
            torch.sqrt(v, out=denom)
            denom.div_(bias2_sqrt).add_(self.eps)
            # p -= (lr / bias1) * m / denom, with a per-head lr
            torch.div(m, denom, out=denom)
            denom.mul_(self._lr_view[i])
            p.sub_(denom, alpha=1.0 / bias1)
