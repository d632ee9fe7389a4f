"""The one place mmwork calls torch's private (underscore) API, each call with a public fallback.

Private functions can change or vanish in any torch release; keeping them here means one module to
check when torch moves, and ``tests/models/test_torch_private.py`` fails the day one disappears
(the fallbacks keep mmwork working meanwhile, only slower).

- ``torch._fused_adam_``: the fused Adam kernel behind ``torch.optim.Adam(fused=True)``, called
  directly by :class:`mmwork.models.recommenders.optim.Adam` because constructing any
  ``torch.optim`` optimizer imports ``torch._dynamo`` (about a second per process: as long as a
  whole BPR fit on MovieLens-100K). Fallback: ``torch.optim.Adam``.
- ``torch._foreach_add_``: one call for the step counters of every parameter. Fallback: a loop.

>>> fused_adam_available() in (True, False)
True
"""
from __future__ import annotations

import torch

PRIVATE_NAMES = ("_fused_adam_", "_foreach_add_")  # what this module relies on
FUSED_DEVICES = ("cpu", "cuda")  # devices torch's fused Adam kernel has a version for


def fused_adam_available(devices: set[str] | None = None) -> bool:
    """Whether the fused Adam kernel exists (and, given ``devices``, runs on all of them)."""
    return hasattr(torch, "_fused_adam_") and (devices is None or (len(devices) == 1 and devices <= set(FUSED_DEVICES)))


def fused_adam_(params, grads, exp_avgs, exp_avg_sqs, steps, *, lr, beta1, beta2, weight_decay, eps) -> None:
    """One in-place Adam update of every parameter (torch.optim.Adam's formula), ``steps`` already
    incremented."""
    torch._fused_adam_(params, grads, exp_avgs, exp_avg_sqs, [], steps, lr=lr, beta1=beta1, beta2=beta2,
                       weight_decay=weight_decay, eps=eps, amsgrad=False, maximize=False)


def foreach_add_(tensors: list[torch.Tensor], value) -> None:
    """Add ``value`` to each tensor in place."""
    if hasattr(torch, "_foreach_add_"):
        torch._foreach_add_(tensors, value)
    else:
        for tensor in tensors:
            tensor.add_(value)
