"""Input checks shared by the generation metrics: feature rows, pairs of sets, image batches.

Each turns what a caller may pass (arrays, tensors on any device, nested lists) into the one form the
metrics compute on, or raises one readable error before any compute.

>>> feature_rows([[1, 2], [3, 4]], "x").dtype
dtype('float64')
>>> image_batch(np.zeros((2, 1, 4, 4)), "images").shape
torch.Size([2, 1, 4, 4])
"""
from __future__ import annotations

import numpy as np

from mmwork.core.errors import MmworkError


def feature_rows(x, what: str) -> np.ndarray:
    """``x`` (array, tensor or nested list) as a finite float64 (N, D) array."""
    if hasattr(x, "detach"):  # a torch tensor, on any device
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise MmworkError(f"{what} must be a non-empty (samples, features) array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise MmworkError(f"{what} holds NaN or infinite values")
    return x


def feature_pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = feature_rows(a, "the first set"), feature_rows(b, "the second set")
    if a.shape[1] != b.shape[1]:
        raise MmworkError(f"the two sets have different feature sizes: {a.shape[1]} and {b.shape[1]}")
    return a, b


def image_batch(x, what: str):
    """``x`` as a float32 CPU tensor (N, C, H, W), C in {1, 3}, of finite pixels in [0, 1]."""
    import torch

    if not isinstance(x, (torch.Tensor, np.ndarray)):
        raise MmworkError(f"{what} must be a tensor or numpy array of images, got {type(x).__name__}")
    x = torch.as_tensor(x).detach().cpu()
    if not x.is_floating_point():
        raise MmworkError(f"{what} must hold floats in [0, 1], got {x.dtype}; divide uint8 pixels by 255")
    if x.ndim != 4 or len(x) == 0 or x.shape[1] not in (1, 3):
        raise MmworkError(f"{what} must be a non-empty (N, 1, H, W) or (N, 3, H, W) batch, got shape {tuple(x.shape)}")
    x = x.float()
    if not torch.isfinite(x).all():
        raise MmworkError(f"{what} holds NaN or infinite values")
    if x.min() < 0 or x.max() > 1:
        raise MmworkError(f"{what} must lie in [0, 1], got values from {float(x.min()):.4g} to {float(x.max()):.4g}")
    return x


def flat_rows(x, what: str) -> np.ndarray:
    """Images or feature rows as a float32 (N, D) array (images flattened)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float32)
    if x.ndim < 2 or x.shape[0] == 0 or x[0].size == 0:
        raise MmworkError(f"{what} must be a non-empty batch (N, ...), got shape {x.shape}")
    x = x.reshape(len(x), -1)
    if not np.isfinite(x).all():
        raise MmworkError(f"{what} holds NaN or infinite values")
    return x
