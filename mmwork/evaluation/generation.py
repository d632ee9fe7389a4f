"""Metrics for generated samples, on any (N, D) feature arrays or tensors, computed in float64.

Every figure depends on the feature space and the sample counts: name the extractor ("FD-effnet-lite0",
"FD-classifier") and state both counts, compare figures only at equal counts, and report the
real-vs-real floor next to them. A Fréchet distance here is never an "FID": that name means Inception
features and published protocols we do not reproduce.

Library or own code: torch-fidelity 0.4.0 requires torchvision, which has no CPU wheel here, and the
``prdc`` package (0.2, its only release, 2020) prints to stdout and holds four full N x M float32
distance matrices. So these are small float64 functions of our own, each tested against a closed
form or a brute-force computation: :func:`frechet_distance` takes the matrix square root through
symmetric eigendecompositions (tr sqrt(A B) = sum of sqrt(eig(A^1/2 B A^1/2))), which stays real
and exact where ``scipy.linalg.sqrtm`` returns complex parts on near-singular products;
:func:`kid` follows Bińkowski et al. (2018) and torch-fidelity's defaults (cubic polynomial kernel,
100 subsets of 1000); :func:`prdc` follows Naeem et al. (2020) and the reference ``prdc`` code (strict
"<" against the k-th-neighbour radius), over distance blocks of bounded size.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> a = rng.normal(size=(2000, 2))
>>> round(frechet_distance(a, a + [3.0, 0.0]), 6)       # a shift only: |mean difference|^2
9.0
>>> round(prdc(a, a)["coverage"], 2)
1.0
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from mmwork.errors import MmworkError


def _features(x, what: str) -> np.ndarray:
    """``x`` (array, tensor or nested list) as a finite float64 (N, D) array."""
    if hasattr(x, "detach"):  # a torch tensor, on any device
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise MmworkError(f"{what} must be a non-empty (samples, features) array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise MmworkError(f"{what} holds NaN or infinite values")
    return x


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = _features(a, "the first set"), _features(b, "the second set")
    if a.shape[1] != b.shape[1]:
        raise MmworkError(f"the two sets have different feature sizes: {a.shape[1]} and {b.shape[1]}")
    return a, b


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
    mmwork.errors.MmworkError: a Fréchet distance in 3 dimensions needs ... at least 4 (...), got 3 and 500; ...
    """
    a, b = _pair(a, b)
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
    standard deviation over random subsets."""

    mean: float
    std: float
    subsets: int
    subset_size: int


def kid(a, b, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> KID:
    """Unbiased squared MMD with the kernel k(x, y) = (x.y / D + 1)^3, averaged over ``subsets``
    random subsets of ``subset_size`` from each set (fewer if a set is smaller), drawn with ``seed``.
    Unbiased: about 0 (within ``std``) for two samples of one distribution, at any sample size.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> same = kid(rng.normal(size=(400, 4)), rng.normal(size=(400, 4)), subsets=20, subset_size=200)
    >>> abs(same.mean) < 3 * same.std
    True
    """
    a, b = _pair(a, b)
    if subsets < 1:
        raise MmworkError(f"subsets must be at least 1, got {subsets}")
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise MmworkError(f"KID needs at least 2 samples in each set, got {len(a)} and {len(b)}")
    rng = np.random.default_rng(seed)
    dims = a.shape[1]
    values = []
    for _ in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        k_xx, k_yy, k_xy = (_cubic(u @ v.T / dims + 1) for u, v in ((x, x), (y, y), (x, y)))
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
        values.append(within - 2 * k_xy.mean())
    return KID(float(np.mean(values)), float(np.std(values)), subsets, m)


def _cubic(t: np.ndarray) -> np.ndarray:
    return t * t * t  # numpy's ** 3 goes through pow(), many times slower


def _distance_blocks(x: np.ndarray, y: np.ndarray, budget: int = 1 << 23):
    """Euclidean distances from blocks of ``x``'s rows to all of ``y``: (row slice, block), each block
    at most ``budget`` float64 values (64 MB)."""
    y_sq = (y ** 2).sum(1)
    step = max(1, budget // len(y))
    for start in range(0, len(x), step):
        rows = slice(start, start + step)
        sq = (x[rows] ** 2).sum(1)[:, None] + y_sq[None, :] - 2 * x[rows] @ y.T
        yield rows, np.sqrt(np.clip(sq, 0, None))


def _kth_neighbour_distance(x: np.ndarray, k: int) -> np.ndarray:
    """Each point's distance to its k-th nearest other point of the same set."""
    out = np.empty(len(x))
    for rows, d in _distance_blocks(x, x):
        out[rows] = np.partition(d, k, axis=1)[:, k]  # position 0 is the point itself
    return out


def prdc(real, fake, k: int = 5) -> dict[str, float]:
    """Precision, recall, density and coverage (Naeem et al., 2020) with k-nearest-neighbour balls.

    precision: share of fake samples inside some real sample's ball (quality); recall: share of real
    samples inside some fake sample's ball (diversity); density: fake samples counted once per real
    ball that holds them, divided by k (about 1 when fake matches real); coverage: share of real
    balls that hold at least one fake sample (mode coverage, robust to outliers).

    >>> import numpy as np
    >>> real = np.random.default_rng(0).normal(size=(200, 2))
    >>> collapsed = real[real[:, 0] > 0]       # only half of the modes' mass
    >>> r = prdc(real, collapsed)
    >>> r["precision"], r["coverage"] < 0.7
    (1.0, True)
    """
    real, fake = _pair(real, fake)
    if min(len(real), len(fake)) <= k:
        raise MmworkError(f"prdc with k={k} needs more than {k} samples in each set, got {len(real)} and {len(fake)}")
    real_radius, fake_radius = _kth_neighbour_distance(real, k), _kth_neighbour_distance(fake, k)
    in_real_ball = np.zeros(len(fake), dtype=np.int64)  # per fake sample: how many real balls hold it
    recall_hit = np.zeros(len(real), dtype=bool)
    coverage_hit = np.zeros(len(real), dtype=bool)
    for rows, d in _distance_blocks(real, fake):
        inside = d < real_radius[rows, None]
        in_real_ball += inside.sum(0)
        recall_hit[rows] = (d < fake_radius[None, :]).any(1)
        coverage_hit[rows] = inside.any(1)
    return {"precision": float((in_real_ball > 0).mean()), "recall": float(recall_hit.mean()),
            "density": float(in_real_ball.mean() / k), "coverage": float(coverage_hit.mean())}


def active_units(mu, threshold: float = 0.01) -> int:
    """Number of latent units whose posterior mean varies across the data by more than ``threshold``
    (variance, ddof=1; Burda et al., 2016): units below it carry no information about the input.

    >>> import numpy as np
    >>> mu = np.random.default_rng(0).normal(size=(100, 3)) * [1.0, 0.5, 0.001]
    >>> active_units(mu)
    2
    """
    mu = _features(mu, "mu")
    if len(mu) < 2:
        raise MmworkError(f"active_units needs the posterior means of at least 2 inputs, got {len(mu)}")
    return int((mu.var(axis=0, ddof=1) > threshold).sum())
