"""Distances between two sets of feature rows: the Fréchet distance, KID and the unbiased MMD².

Library or own code: torch-fidelity 0.4.0 requires torchvision, which has no CPU wheel here, so these
are small float64 functions of our own, each tested against a closed form. :func:`frechet_distance`
takes the matrix square root through symmetric eigendecompositions (tr sqrt(A B) = sum of
sqrt(eig(A^1/2 B A^1/2))), which stays real and exact where ``scipy.linalg.sqrtm`` returns complex
parts on near-singular products; :func:`kid` follows Bińkowski et al. (2018) and torch-fidelity's
defaults (cubic polynomial kernel, 100 subsets of 1000; subsets always strictly smaller than the
sets, so its std is never a false 0).

>>> import numpy as np
>>> a = np.random.default_rng(0).normal(size=(2000, 2))
>>> round(frechet_distance(a, a + [3.0, 0.0]), 6)       # a shift only: |mean difference|^2
9.0
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from mmwork.core.errors import MmworkError
from mmwork.evaluation.generation.inputs import feature_pair


def frechet_distance(a, b) -> float:
    """Fréchet distance between Gaussians fitted to two sample sets: |mu_a - mu_b|^2 +
    tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2), sample covariances (ddof=1).

    It is biased upward at small N, so each set needs more samples than dimensions (refused
    otherwise) and, for a stable figure, many more; with few samples use :func:`kid`.

    >>> import numpy as np
    >>> x = np.random.default_rng(1).normal(size=(500, 3))
    >>> round(frechet_distance(x, x), 9)
    0.0
    >>> frechet_distance(x[:3], x)                         # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mmwork.core.errors.MmworkError: a Fréchet distance in 3 dimensions needs ... at least 4 (...), got 3 and 500; ...
    """
    a, b = feature_pair(a, b)
    dims = a.shape[1]
    if min(len(a), len(b)) <= dims:
        raise MmworkError(f"a Fréchet distance in {dims} dimensions needs more samples than dimensions in each "
                          f"set: at least {dims + 1} (and many more for a stable figure), got {len(a)} and "
                          f"{len(b)}; with few samples use kid()")
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    middle = root_a @ cov_b @ root_a
    cross = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    distance = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * cross
    return float(max(distance, 0.0))  # it cannot be negative; rounding can make it -1e-13


class KID(NamedTuple):
    """Kernel Inception-style distance in our own feature space: the unbiased MMD^2 estimate's mean and
    standard deviation over random subsets (``std`` is NaN, "undefined", when the sets were too small
    for two different subsets: see :func:`kid`)."""

    mean: float
    std: float
    subsets: int
    subset_size: int


def kid_subset(requested: int, n_a: int, n_b: int) -> int:
    """The subset size :func:`kid` draws: ``requested`` when it is smaller than both sets, else half
    the smaller set (rounded down), so that every subset is strictly smaller than each set and two
    subsets differ (at half the set, in about half their members); 0 when the smaller set has fewer
    than 4 samples (no subsets: one estimate on the whole sets, std undefined).

    >>> kid_subset(1000, 10000, 10000), kid_subset(1000, 1000, 5000), kid_subset(1000, 301, 400)
    (1000, 500, 150)
    >>> kid_subset(1000, 3, 400)
    0
    """
    smallest = min(n_a, n_b)
    if requested < smallest:
        return requested
    return smallest // 2 if smallest >= 4 else 0


def mmd2(a, b) -> float:
    """The unbiased squared MMD with :func:`kid`'s kernel on the whole sets, which may differ in size:
    mean k over distinct pairs within ``a`` and within ``b``, minus twice the mean k across them. One
    estimate, no spread (for a spread use :func:`kid`).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=(300, 4)), rng.normal(size=(200, 4))
    >>> abs(mmd2(x, y)) < 0.1 < 5 < mmd2(x, y + 1.0)
    True
    """
    a, b = feature_pair(a, b)
    if min(len(a), len(b)) < 2:
        raise MmworkError(f"an unbiased MMD needs at least 2 samples in each set, got {len(a)} and {len(b)}")
    dims = a.shape[1]
    kernel = lambda u, v: _cubic(u @ v.T / dims + 1)  # noqa: E731
    return _unbiased(kernel(a, a), kernel(b, b), kernel(a, b))


def _unbiased(k_xx: np.ndarray, k_yy: np.ndarray, k_xy: np.ndarray) -> float:
    m, n = len(k_xx), len(k_yy)
    within = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1)) + (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(within - 2 * k_xy.mean())


def kid(a, b, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> KID:
    """Unbiased squared MMD with the kernel k(x, y) = (x.y / D + 1)^3, averaged over ``subsets``
    random subsets drawn with ``seed``; ``std`` is the spread of the subsets' estimates. Unbiased:
    about 0 (within ``std``) for two samples of one distribution, at any sample size.

    Subsets are strictly smaller than each set (:func:`kid_subset`): ``subset_size`` when both
    sets are larger, else half the smaller set. A subset as large as its set would be the set itself
    every time, and the std over identical subsets a false 0. With fewer than 4 samples in a set there
    is one estimate on the whole sets (:func:`mmd2`) and the std is NaN (undefined; tables show
    "n/a"). The std is the spread at the subset size drawn, not the standard error of the mean: at half
    the set it overstates the spread of a whole-set estimate.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> same = kid(rng.normal(size=(400, 4)), rng.normal(size=(400, 4)), subsets=20, subset_size=200)
    >>> abs(same.mean) < 3 * same.std
    True
    >>> small = kid(rng.normal(size=(40, 4)), rng.normal(size=(60, 4)), subsets=20)   # 1000 asked: 20 drawn
    >>> small.subset_size, small.std > 0
    (20, True)
    >>> kid(rng.normal(size=(3, 4)), rng.normal(size=(60, 4))).std
    nan
    """
    a, b = feature_pair(a, b)
    if subsets < 1:
        raise MmworkError(f"subsets must be at least 1, got {subsets}")
    if min(len(a), len(b)) < 2:
        raise MmworkError(f"KID needs at least 2 samples in each set, got {len(a)} and {len(b)}")
    if not isinstance(subset_size, (int, np.integer)) or isinstance(subset_size, bool) or subset_size < 2:
        raise MmworkError(f"subset_size must be an integer of at least 2, got {subset_size!r}")
    m = kid_subset(int(subset_size), len(a), len(b))
    if m == 0:
        return KID(mmd2(a, b), float("nan"), 1, min(len(a), len(b)))
    rng = np.random.default_rng(seed)
    dims = a.shape[1]
    kernel = lambda u, v: _cubic(u @ v.T / dims + 1)  # noqa: E731
    # Subsets overlap when the sets are small: three whole kernel matrices, indexed per subset, then
    # cost a fraction of a hundred subsets' products (2,000 x 1280-d: ~25x less).
    whole = (len(a) + len(b)) ** 2 <= 1 << 25 and subsets * m * m > (len(a) + len(b)) ** 2
    if whole:
        gram_aa, gram_bb, gram_ab = kernel(a, a), kernel(b, b), kernel(a, b)
    values = []
    for _ in range(subsets):
        i, j = rng.choice(len(a), m, replace=False), rng.choice(len(b), m, replace=False)
        if whole:
            k_xx, k_yy, k_xy = gram_aa[np.ix_(i, i)], gram_bb[np.ix_(j, j)], gram_ab[np.ix_(i, j)]
        else:
            x, y = a[i], b[j]
            k_xx, k_yy, k_xy = kernel(x, x), kernel(y, y), kernel(x, y)
        values.append(_unbiased(k_xx, k_yy, k_xy))
    return KID(float(np.mean(values)), float(np.std(values)), subsets, m)


def format_kid(mean: float, std: float, digits: int = 4) -> str:
    """A KID as "mean ± std", with "n/a" for an undefined std (NaN: see :func:`kid`).

    >>> format_kid(0.01234, 0.0005), format_kid(0.01234, float("nan"))
    ('0.0123 ± 0.0005', '0.0123 ± n/a')
    """
    spread = "n/a" if std is None or not np.isfinite(std) else f"{std:.{digits}f}"
    return f"{mean:.{digits}f} ± {spread}"


def _cubic(t: np.ndarray) -> np.ndarray:
    return t * t * t  # numpy's ** 3 goes through pow(), many times slower
