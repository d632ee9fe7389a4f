"""Nearest neighbours between sets: precision/recall/density/coverage and memorisation of training images.

:func:`prdc` follows Naeem et al. (2020) and the reference ``prdc`` code (strict "<" against the
k-th-neighbour radius), over distance blocks of bounded size: the ``prdc`` package (0.2, its only
release, 2020) prints to stdout and holds four full N x M float32 distance matrices.
:func:`memorisation` compares each sample's distance to its nearest training image with the same for
real unseen images.

>>> import numpy as np
>>> a = np.random.default_rng(0).normal(size=(2000, 2))
>>> round(prdc(a, a)["coverage"], 2)
1.0
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from mmwork.core.errors import MmworkError
from mmwork.evaluation.generation.inputs import feature_pair, flat_rows
from mmwork.evaluation.generation.spaces import PIXELS


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
    real, fake = feature_pair(real, fake)
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


def nearest_neighbours(queries, reference, candidates: int = 4, budget: int = 1 << 24) -> tuple[np.ndarray, np.ndarray]:
    """Each query's Euclidean distance to its nearest reference row, float64 (N,), and that row's index,
    int64 (N,). Images are flattened (L2 over pixels).

    Float32 products over blocks of at most ``budget`` values (64 MB; the 10,000 Fashion-MNIST test
    images against the 60,000 training images: 44 s on one shared CPU core) shortlist ``candidates`` rows per query, whose distances
    are then computed exactly in float64: an exact copy reads 0.0, which the squared-norm expansion
    alone would blur by ~1e-3.

    >>> import numpy as np
    >>> ref = np.array([[0.0, 0.0], [3.0, 4.0]])
    >>> nearest_neighbours(np.array([[3.0, 4.0], [0.0, 1.0]]), ref)
    (array([0., 1.]), array([1, 0]))
    """
    q, ref = flat_rows(queries, "queries"), flat_rows(reference, "reference")
    if q.shape[1] != ref.shape[1]:
        raise MmworkError(f"queries and reference have different sizes per row: {q.shape[1]} and {ref.shape[1]}")
    c = min(candidates, len(ref))
    ref_sq = (ref.astype(np.float64) ** 2).sum(1).astype(np.float32)
    distance, index = np.empty(len(q)), np.empty(len(q), dtype=np.int64)
    step = max(1, budget // len(ref))
    for start in range(0, len(q), step):
        block = q[start:start + step]
        sq = ref_sq[None, :] - 2 * block @ ref.T  # + |q|^2, the same along each row: not needed to rank
        shortlist = np.argpartition(sq, c - 1, axis=1)[:, :c] if c < len(ref) else np.broadcast_to(
            np.arange(len(ref)), sq.shape)
        exact = np.sqrt(((block[:, None, :].astype(np.float64) - ref[shortlist]) ** 2).sum(-1))
        best = exact.argmin(1)
        rows = np.arange(len(block))
        distance[start:start + step], index[start:start + step] = exact[rows, best], shortlist[rows, best]
    return distance, index


class Memorisation(NamedTuple):
    """How close samples come to the training set, next to how close real unseen images come."""

    distance: np.ndarray
    """(N,) each sample's distance to its nearest training image."""
    nearest: np.ndarray
    """(N,) int64: the index of that training image (for a nearest-neighbour panel)."""
    test_distance: np.ndarray
    """(M,) each real test image's distance to its nearest training image: where a model that does
    not copy should sit."""
    space: str
    """"pixels" (L2 over the flattened [0, 1] pixels) or the name of the feature space used."""
    n_train: int
    """Training images searched."""

    def summary(self) -> dict:
        """Median and 5th percentile of both distributions, and the share of samples closer to the
        training set than the 1st percentile of the test images' distances (about 0.01 for a model
        that generalises like unseen data; far more for one that copies)."""
        test_p1 = float(np.percentile(self.test_distance, 1))
        return {"space": self.space, "n_samples": len(self.distance), "n_test": len(self.test_distance),
                "n_train": self.n_train, "median": float(np.median(self.distance)),
                "p5": float(np.percentile(self.distance, 5)), "test_median": float(np.median(self.test_distance)),
                "test_p5": float(np.percentile(self.test_distance, 5)), "test_p1": test_p1,
                "share_below_test_p1": float((self.distance < test_p1).mean())}


def memorisation(samples, train, test=None, *, test_distance=None, space: Callable | None = None) -> Memorisation:
    """Each sample's distance to its nearest training image against the same for real ``test`` images
    (see :class:`Memorisation`). Distances are L2 over pixels, or in ``space`` (a function images ->
    features, e.g. :func:`classifier_space`; it then embeds the whole training set). Pass
    ``test_distance`` (an earlier result's ``test_distance``) instead of ``test`` to reuse it.

    >>> import numpy as np
    >>> train = np.random.default_rng(0).random((50, 1, 4, 4))
    >>> m = memorisation(train[[7, 3]], train, train[:5] + 0.1)
    >>> m.distance.round(6), m.nearest, m.summary()["share_below_test_p1"]
    (array([0., 0.]), array([7, 3]), 1.0)
    """
    if (test is None) == (test_distance is None):
        raise MmworkError("memorisation needs either test images or test_distance (from an earlier result), not both")
    if test_distance is not None:
        test_distance = np.asarray(test_distance, dtype=np.float64)
        if test_distance.ndim != 1 or len(test_distance) == 0:
            raise MmworkError(f"test_distance must be a non-empty 1-D array, got shape {test_distance.shape}")
    embed = (lambda x, what: flat_rows(x, what)) if space is None else (lambda x, what: flat_rows(space(x), what))  # noqa: E731
    ref = embed(train, "train")
    distance, nearest = nearest_neighbours(embed(samples, "samples"), ref)
    if test_distance is None:
        test_distance = nearest_neighbours(embed(test, "test"), ref)[0]
    name = PIXELS if space is None else getattr(space, "name", getattr(space, "__name__", "features"))
    return Memorisation(distance, nearest, test_distance, name, len(ref))
