"""Collapse checks: which classes the samples fall into, whether every mode is covered, and how many
latent units a VAE really uses.

>>> mode_coverage(class_histogram([0, 1, 2, 2], 3)).covered
False
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from mmwork.core.errors import MmworkError
from mmwork.evaluation.generation.inputs import feature_rows


def active_units(mu, threshold: float = 0.01) -> int:
    """Number of latent units whose posterior mean varies across the data by more than ``threshold``
    (variance, ddof=1; Burda et al., 2016): units below it carry no information about the input.

    >>> import numpy as np
    >>> mu = np.random.default_rng(0).normal(size=(100, 3)) * [1.0, 0.5, 0.001]
    >>> active_units(mu)
    2
    """
    mu = feature_rows(mu, "mu")
    if len(mu) < 2:
        raise MmworkError(f"active_units needs the posterior means of at least 2 inputs, got {len(mu)}")
    return int((mu.var(axis=0, ddof=1) > threshold).sum())


def class_histogram(labels, n_classes: int) -> np.ndarray:
    """The share of each class among predicted ``labels`` (integers in 0..n_classes-1): float64
    (n_classes,), summing to 1.

    >>> class_histogram([0, 2, 2, 2], 3)
    array([0.25, 0.  , 0.75])
    """
    if hasattr(labels, "detach"):
        labels = labels.detach().cpu().numpy()
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) == 0 or labels.dtype.kind not in "iu":
        raise MmworkError(f"labels must be a non-empty 1-D array of integer classes, got {labels.dtype} of "
                          f"shape {labels.shape}")
    if not isinstance(n_classes, int) or n_classes < 1:
        raise MmworkError(f"n_classes must be a positive integer, got {n_classes!r}")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise MmworkError(f"labels must lie in 0..{n_classes - 1}, got {labels.min()}..{labels.max()}")
    return np.bincount(labels, minlength=n_classes) / len(labels)


class ModeCoverage(NamedTuple):
    """The verdict on a class histogram: every class present and none below ``low`` nor above ``high``."""

    covered: bool
    """True when no class is missing, below ``low`` or above ``high``."""
    missing: list
    """Classes with no sample."""
    below: list
    """Classes present with a share below ``low``."""
    above: list
    """Classes with a share above ``high``."""
    low: float
    high: float


def mode_coverage(histogram, low: float = 0.05, high: float = 0.15) -> ModeCoverage:
    """Judge a :func:`class_histogram` (issue 11's bar for 10 classes: all present, none < 5% nor > 15%).

    >>> mode_coverage(class_histogram([0, 1, 1, 1], 3))
    ModeCoverage(covered=False, missing=[2], below=[], above=[0, 1], low=0.05, high=0.15)
    """
    h = np.asarray(histogram, dtype=np.float64)
    if h.ndim != 1 or len(h) == 0 or (h < 0).any() or abs(h.sum() - 1) > 1e-6:
        raise MmworkError("mode_coverage needs a histogram of class shares summing to 1 (from class_histogram)")
    if not 0 <= low <= high <= 1:
        raise MmworkError(f"need 0 <= low <= high <= 1, got low={low} and high={high}")
    missing = [int(i) for i in np.flatnonzero(h == 0)]
    below = [int(i) for i in np.flatnonzero((h > 0) & (h < low))]
    above = [int(i) for i in np.flatnonzero(h > high)]
    return ModeCoverage(not (missing or below or above), missing, below, above, low, high)
