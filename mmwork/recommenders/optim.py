"""Adam for the trained recommenders.

The update is torch.optim.Adam's (same formula, bias corrections and eps placement). It is written
out because constructing any ``torch.optim`` optimizer imports ``torch._dynamo`` on first use, about
a second per process: as long as a whole BPR fit on MovieLens-100K.

>>> weights = torch.zeros(3, requires_grad=True)                       # doctest: +SKIP
>>> adam = Adam([weights], lr=1e-3); loss(weights).backward(); adam.step()  # doctest: +SKIP
"""
from __future__ import annotations

import math

import torch


class Adam:
    """Adam (Kingma & Ba, 2015) over ``params``, reading each parameter's ``.grad``; ``weight_decay``
    adds ``weight_decay * param`` to the gradient (L2, as torch.optim.Adam does)."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        self.params = list(params)
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.steps = 0
        self._first = [torch.zeros_like(p) for p in self.params]
        self._second = [torch.zeros_like(p) for p in self.params]
        # reused every step: a fresh tensor per step made glibc unmap and re-fault its pages
        self._denominator = [torch.empty_like(p) for p in self.params]

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        beta1, beta2 = self.betas
        step_size = self.lr / (1 - beta1 ** self.steps)
        correction2 = math.sqrt(1 - beta2 ** self.steps)
        for param, first, second, denominator in zip(self.params, self._first, self._second, self._denominator):
            grad = param.grad
            if grad is None:
                continue
            if self.weight_decay:
                grad = grad.add(param, alpha=self.weight_decay)
            first.lerp_(grad, 1 - beta1)
            second.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            torch.sqrt(second, out=denominator).div_(correction2).add_(self.eps)
            param.addcdiv_(first, denominator, value=-step_size)

    def zero_grad(self) -> None:
        for param in self.params:
            param.grad = None
