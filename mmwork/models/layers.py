"""Small building blocks the models share, written once.

``seeded_dropout`` is inverted dropout drawn from the model's own ``torch.Generator``: ``nn.Dropout``
draws from torch's global generator, which would make fits depend on (and disturb) the caller's
random state.

>>> import torch
>>> h = torch.ones(2, 4)
>>> seeded_dropout(h, 0.5, torch.Generator().manual_seed(0)).unique().tolist()
[0.0, 2.0]
>>> seeded_dropout(h, 0.5, None, active=False) is h
True
"""
from __future__ import annotations

import torch


def seeded_dropout(h: torch.Tensor, p: float, generator: torch.Generator | None, active: bool = True) -> torch.Tensor:
    """``h`` with each value zeroed with probability ``p`` (drawn with ``generator``) and the rest
    scaled by 1 / (1 - p); ``h`` itself when not ``active`` or ``p`` is 0."""
    if not active or p == 0:
        return h
    keep = torch.rand(h.shape, generator=generator, device=h.device) >= p
    return h * keep / (1 - p)
