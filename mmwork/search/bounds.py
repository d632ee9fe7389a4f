"""Proven float32 error bounds of cosine scores, and the exact float64 re-score that breaks ties the same way
on every CPU: what lets the streamed search drop rows without ever dropping one of the true best ``k``.

>>> arithmetic_bound(120) < 2e-5     # how far a float32 cosine of raw 120-d vectors can be off
True
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mmwork.core.errors import MmworkError

if TYPE_CHECKING:
    from mmwork.search.stats import ColumnStats

UNIT_ROUNDOFF = 2.0 ** -24  # float32


def arithmetic_bound(dim: int) -> float:
    """A bound on |float32 score − exact cosine| for raw float32 rows (which float32 holds exactly) and
    a unit-length query: (1.5·d + 3)·u with u = 2⁻²⁴, for any summation order (γ_d = d·u/(1 − d·u)
    bounds a d-term float32 dot product however it is summed, FMA or not; the norm adds γ_d/2, the
    query's own rounding, the square root and the division u each). The factor 1.1 covers γ_d's
    denominator and the second-order terms while d·u < 0.01 (d below 167,000: checked), and 2u the
    rounding of a score ± its bound in float32.

    >>> arithmetic_bound(120) < 2e-5
    True
    """
    if dim * UNIT_ROUNDOFF >= 0.01:
        raise MmworkError(f"{dim}-dimensional vectors are too long for a float32 pass with a proven error bound")
    return 1.1 * (1.5 * dim + 3) * UNIT_ROUNDOFF + 2 * UNIT_ROUNDOFF


def error_bound(norms: np.ndarray, dim: int, offset: float) -> np.ndarray:
    """Per row, a bound on |float32 score − exact cosine| for rows z-scored in float32.

    ``norms`` are the float32 norms of the z-scored rows, ``offset`` is ‖scale ⊙ mean‖. Beyond
    :func:`arithmetic_bound`, z-scoring in float32 moves each row by ε ≤ 3.01·u·(‖r‖ + offset) (the
    rounded mean, the subtraction, the rounded scale, the product; taken as 4·u·(‖r̃‖ + offset), which
    also covers ‖r‖ ≤ ‖r̃‖ + ε and the float32 norm), and that moves its cosine by at most
    2ε / (‖r̃‖ − ε). A dimension whose mean is large next to its spread makes the offset, hence the
    bound, large; a row with ‖r̃‖ ≤ 2ε has no usable float32 direction and an infinite bound (it is
    always re-scored).

    >>> bound = error_bound(np.array([10.0, 1e-6]), 120, offset=5.0)
    >>> bool(bound[0] < 1e-4), bool(np.isinf(bound[1]))
    (True, True)
    """
    norms = np.asarray(norms, np.float64)
    shift = 4 * UNIT_ROUNDOFF * (norms + offset)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        moved = np.where(norms > 2 * shift, 2 * shift / (norms - shift), np.inf)
    return arithmetic_bound(dim) + moved


def exact_cosines(vectors: np.ndarray, unit_query: np.ndarray, stats: "ColumnStats | None" = None) -> np.ndarray:
    """float64 cosines of raw ``vectors`` (z-scored by ``stats`` first) to a unit-length float64 query.

    Each similarity is a function of its own row only: element-wise products, then sums taken one
    dimension at a time in the same order for every row (element-wise IEEE additions, no BLAS), so
    no kernel, SIMD width or position in the array can make two equal vectors score differently,
    on any CPU. A zero vector scores 0.

    >>> exact_cosines(np.array([[3.0, 4.0], [3.0, 4.0], [0.0, 0.0], [0.0, 5.0]]), np.array([1.0, 0.0])).tolist()
    [0.6, 0.6, 0.0, 0.0]
    """
    x = np.asarray(vectors, np.float64)
    if stats is not None:
        x = (x - stats.mean) * stats.scale()
    norms = np.sqrt(_row_sums(x * x))
    return _row_sums(x * unit_query) / np.where(norms == 0, np.inf, norms)  # one query, or one per row


def _row_sums(terms: np.ndarray) -> np.ndarray:
    """Each row's sum, added column by column: the same operations in the same order for every row."""
    columns = np.ascontiguousarray(terms.T)
    total = columns[0].copy() if len(columns) else np.zeros(len(terms))
    for column in columns[1:]:
        total += column
    return total
