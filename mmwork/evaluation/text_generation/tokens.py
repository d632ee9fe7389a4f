"""Input checks shared by the text metrics: a list of token lists, an n-gram order.

>>> token_lists([["a", "b"], ("c",)], "samples")
[['a', 'b'], ('c',)]
>>> check_order(4)
4
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from mmwork.core.errors import MmworkError


def token_lists(samples, what: str) -> list[Sequence]:
    """``samples`` as a non-empty list of token lists; a plain string is refused (it would be read as
    a list of characters)."""
    if isinstance(samples, str) or not isinstance(samples, Iterable):
        raise MmworkError(f"{what} must be a list of token lists, got {type(samples).__name__}")
    samples = list(samples)
    if not samples:
        raise MmworkError(f"{what} is empty; pass at least one token list")
    for sample in samples:
        if isinstance(sample, str) or not isinstance(sample, (Sequence, np.ndarray)):
            raise MmworkError(f"{what} must hold token lists (e.g. text.split()), not "
                              f"{type(sample).__name__} values such as {sample!r:.40}")
    return samples


def check_order(n) -> int:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise MmworkError(f"the n-gram order n must be a positive integer, got {n!r}")
    return int(n)
