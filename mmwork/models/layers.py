"""Small building blocks the models share, written once.

``seeded_dropout`` is inverted dropout drawn from the model's own ``torch.Generator``: ``nn.Dropout``
draws from torch's global generator, which would make fits depend on (and disturb) the caller's
random state. ``ConvAsMatmul`` and ``ConvTransposeAsMatmul`` are ``nn.Conv2d`` and
``nn.ConvTranspose2d`` (same weights, same state, same function) computed as one matrix product over
unfolded patches: for layers with one channel or few output positions this was 1.3-10x faster on the
2-core AVX2 machine than torch 2.13's oneDNN kernels (``benchmarks/gan_speed.py``,
``benchmarks/bench_generators.py``).

>>> import torch
>>> h = torch.ones(2, 4)
>>> seeded_dropout(h, 0.5, torch.Generator().manual_seed(0)).unique().tolist()
[0.0, 2.0]
>>> seeded_dropout(h, 0.5, None, active=False) is h
True
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def seeded_dropout(h: torch.Tensor, p: float, generator: torch.Generator | None, active: bool = True) -> torch.Tensor:
    """``h`` with each value zeroed with probability ``p`` (drawn with ``generator``) and the rest
    scaled by 1 / (1 - p); ``h`` itself when not ``active`` or ``p`` is 0."""
    if not active or p == 0:
        return h
    keep = torch.rand(h.shape, generator=generator, device=h.device) >= p
    return h * keep / (1 - p)


class ConvAsMatmul(nn.Conv2d):
    """``nn.Conv2d`` (square kernel, stride and padding) as im2col and one matrix product, returned in
    channels-last memory (which a following convolution runs faster in)."""

    def forward(self, x):
        (k, _), (s, _), (p, _) = self.kernel_size, self.stride, self.padding
        cols = F.unfold(x, k, padding=p, stride=s)                          # N, C*k*k, L
        out = cols.transpose(1, 2) @ self.weight.flatten(1).T + self.bias   # N, L, C_out
        size = ((x.shape[2] + 2 * p - k) // s + 1, (x.shape[3] + 2 * p - k) // s + 1)
        return out.unflatten(1, size).permute(0, 3, 1, 2)                  # channels-last, no copy


class ConvTransposeAsMatmul(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` (square kernel, stride and padding) as one matrix product and col2im
    (``fold``, the adjoint of unfolding), reading channels-last input without a copy."""

    def forward(self, x):
        (k, _), (s, _), (p, _), (extra, _) = self.kernel_size, self.stride, self.padding, self.output_padding
        rows = x.permute(0, 2, 3, 1).flatten(1, 2)                          # N, H*W, C_in
        cols = (rows @ self.weight.flatten(1)).transpose(1, 2)              # N, C_out*k*k, H*W
        size = ((x.shape[2] - 1) * s - 2 * p + k + extra, (x.shape[3] - 1) * s - 2 * p + k + extra)
        return F.fold(cols, size, k, padding=p, stride=s) + self.bias[:, None, None]
