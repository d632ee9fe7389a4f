"""Pick the torch device a model runs on.

>>> resolve_device("cpu")
device(type='cpu')
"""
from __future__ import annotations

import torch

from mmwork.core.errors import MmworkError


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then Apple MPS, then CPU; anything else must be a device torch knows
    and that is present on this machine."""
    if isinstance(device, torch.device):
        return device
    name = str(device).strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(name)
    except RuntimeError as exc:
        raise MmworkError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise MmworkError(f"device {device!r} asked for but no CUDA GPU is visible; use device='auto' or 'cpu'")
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise MmworkError(f"device {device!r} does not exist: {torch.cuda.device_count()} CUDA device(s) visible")
    if resolved.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise MmworkError(f"device {device!r} asked for but MPS is not available here; use device='auto' or 'cpu'")
    return resolved
