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
100 subsets of 1000; subsets always strictly smaller than the sets, so its std is never a false 0); :func:`prdc` follows Naeem et al. (2020) and the reference ``prdc`` code (strict
"<" against the k-th-neighbour radius), over distance blocks of bounded size.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> a = rng.normal(size=(2000, 2))
>>> round(frechet_distance(a, a + [3.0, 0.0]), 6)       # a shift only: |mean difference|^2
9.0
>>> round(prdc(a, a)["coverage"], 2)
1.0

For images there are two feature spaces we really have, :func:`effnet_features` (EfficientNet-Lite0,
1280-d, through the feature pipeline's own encoder) and :func:`classifier_space` (the in-project
Fashion-MNIST classifier's 128-d penultimate layer); :func:`image_generation_table` computes every
figure for several sources at once, with the real-vs-real floor and a noise baseline next to them;
:func:`memorisation` and :func:`mode_coverage` judge copying and mode collapse.
"""
from __future__ import annotations

import logging
from typing import Callable, NamedTuple

import numpy as np

from mmwork.core.errors import MmworkError

log = logging.getLogger("mmwork.evaluation")


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
    mmwork.core.errors.MmworkError: a Fréchet distance in 3 dimensions needs ... at least 4 (...), got 3 and 500; ...
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
    a, b = _pair(a, b)
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
    a, b = _pair(a, b)
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


# -- image feature spaces --------------------------------------------------------------------------------

EFFNET, CLASSIFIER, PIXELS = "effnet-lite0", "classifier", "pixels"
"""Names of the feature spaces in tables and messages (never "FID": no Inception network is involved)."""


def _images(x, what: str):
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


def effnet_features(images, batch_size: int = 64, device: str = "auto") -> np.ndarray:
    """EfficientNet-Lite0 (ImageNet weights, from the ``mmwork[cnn]`` packages) pooled last-layer
    features, float64 (N, 1280), of images (N, 1, H, W) or (N, 3, H, W) with pixels in [0, 1].

    The images take the feature pipeline's own path, :class:`mmwork.features.image.CnnEncoder` (what
    ``mmwork extract fashion-mnist --param image.cnn=true`` runs on the store's PNGs): pixels rounded
    to uint8 (the store's images come back exactly; a generated one moves by at most half a grey
    level), grey stacked to three channels, resized to 224 x 224 (bilinear, antialiased), ImageNet
    mean/std. So real and generated images meet one path. Slow on CPU (224 x 224 inputs: a few images
    per second per core); float16 autocast on CUDA.

    >>> import torch
    >>> effnet_features(torch.rand(2, 1, 28, 28)).shape            # doctest: +SKIP
    (2, 1280)
    """
    import torch

    from mmwork.features.image import get_cnn_encoder

    x = _images(images, "images")
    pixels = (x * 255).round_().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    pixels = pixels[..., 0] if pixels.shape[-1] == 1 else pixels
    return get_cnn_encoder(device, batch_size).encode(pixels).astype(np.float64)


effnet_features.dims, effnet_features.name = 1280, EFFNET  # read by image_generation_table, memorisation


def classifier_space(classifier) -> Callable:
    """A fitted :class:`mmwork.models.generators.Classifier`'s penultimate layer as a feature space: a function
    images (N, 1, 28, 28) in [0, 1] -> float64 (N, features) (128-d by default), named "classifier".

    >>> from mmwork.models.judges import Classifier
    >>> from mmwork.models.data import fashion_mnist
    >>> train = fashion_mnist("train", limit=2000)                                 # doctest: +SKIP
    >>> space = classifier_space(Classifier(epochs=2).fit(train.images, train.labels))  # doctest: +SKIP
    >>> space(train.images[:3]).shape, space.dims                                  # doctest: +SKIP
    ((3, 128), 128)
    >>> classifier_space(Classifier())                                             # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mmwork.core.errors.MmworkError: classifier_space needs a fitted mmwork.models.generators.Classifier; call fit(...) first ...
    """
    if not callable(getattr(classifier, "features", None)) or "net_" not in getattr(classifier, "__dict__", {}):
        raise MmworkError("classifier_space needs a fitted mmwork.models.generators.Classifier; call fit(images, labels) "
                          "first or Classifier.load(path)")

    def classifier_features(images) -> np.ndarray:
        return classifier.features(images).double().cpu().numpy()

    classifier_features.dims, classifier_features.name = classifier.config.features, CLASSIFIER
    return classifier_features


def image_spaces(classifier=None, *, effnet: bool = True, device: str = "auto", batch_size: int = 64) -> dict:
    """The feature spaces for :func:`image_generation_table`: {"classifier": ..., "effnet-lite0": ...},
    each present when asked for (a fitted classifier given; ``effnet``)."""
    spaces = {} if classifier is None else {CLASSIFIER: classifier_space(classifier)}
    if effnet:
        def effnet_lite0(images) -> np.ndarray:
            return effnet_features(images, batch_size=batch_size, device=device)
        effnet_lite0.dims, effnet_lite0.name = effnet_features.dims, EFFNET
        spaces[EFFNET] = effnet_lite0
    return spaces


# -- memorisation --------------------------------------------------------------------------------------

def _rows(x, what: str) -> np.ndarray:
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
    q, ref = _rows(queries, "queries"), _rows(reference, "reference")
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
    embed = (lambda x, what: _rows(x, what)) if space is None else (lambda x, what: _rows(space(x), what))  # noqa: E731
    ref = embed(train, "train")
    distance, nearest = nearest_neighbours(embed(samples, "samples"), ref)
    if test_distance is None:
        test_distance = nearest_neighbours(embed(test, "test"), ref)[0]
    name = PIXELS if space is None else getattr(space, "name", getattr(space, "__name__", "features"))
    return Memorisation(distance, nearest, test_distance, name, len(ref))


# -- mode coverage ----------------------------------------------------------------------------------------

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


# -- the metric table ---------------------------------------------------------------------------------------

FLOOR, NOISE, TEST = "train images", "uniform noise", "test images"
"""The sources :func:`image_generation_table` adds: the real-vs-real floor (training images against
test images), the noise baseline, and (memorisation only) the test images' own distances."""
TABLE_COLUMNS = ["source", "kind", "feature_space", "metric", "value", "std", "n_samples", "n_real", "detail"]
METRICS = ("FD", "KID", "prdc")
"""The metric groups :func:`image_generation_table` computes by default ("prdc": four rows)."""


def _counts(n, spaces: dict, limits: dict[str, int]) -> dict[str, int]:
    """Samples per feature space: ``n`` (one int, or a dict by space), the smallest set by default."""
    smallest = min(limits.values())
    if n is None or isinstance(n, dict):
        given = n or {}
        unknown = set(given) - set(spaces)
        if unknown:
            raise MmworkError(f"n names unknown feature spaces {sorted(unknown)}; the spaces are {sorted(spaces)}")
        counts = {space: given.get(space, smallest) for space in spaces}
    else:
        counts = dict.fromkeys(spaces, n)
    for space, count in counts.items():
        if not isinstance(count, (int, np.integer)) or isinstance(count, bool) or count < 2:
            raise MmworkError(f"n for the {space} space must be an integer of at least 2, got {count!r}")
        if count > smallest:
            what, size = min(limits.items(), key=lambda item: item[1])
            raise MmworkError(f"n={count} for the {space} space exceeds the smallest set ({what}: {size} images); "
                              f"draw more samples or pass n <= {size}")
    return {space: int(count) for space, count in counts.items()}


def _kid_detail(distance: KID, requested: int) -> str:
    if not np.isfinite(distance.std):
        return (f"unbiased MMD², cubic kernel, one estimate on the whole sets (fewer than 4 samples): std "
                "undefined")
    capped = "" if distance.subset_size == requested else f" (half the set: {requested} asked)"
    return f"unbiased MMD², cubic kernel, {distance.subsets} subsets of {distance.subset_size}{capped}"


def image_generation_table(samples: dict, *, test, train, spaces: dict, n=None, metrics=METRICS, k: int = 5,
                           kid_subsets: int = 100, kid_subset_size: int = 1000, memorise: bool = True, seed: int = 0):
    """Every sample-quality figure for several sources of images, as one tidy pandas table: one row per
    (source, feature_space, metric) with the columns :data:`TABLE_COLUMNS`.

    ``samples`` maps a name to its images (N, 1, H, W) in [0, 1]; the first ``n`` of each are used (draw
    them in the order to keep, e.g. classes in turn). ``spaces`` maps a feature space's name to a
    function images -> (N, D) features (:func:`image_spaces`). In each space, against ``n`` real test
    images drawn with ``seed``: "FD" (:func:`frechet_distance`), "KID" (mean, with its ``std`` over
    ``kid_subsets`` subsets of ``kid_subset_size``, or of half the set when ``n`` is not larger: see
    :func:`kid`), "precision"/"recall"/"density"/"coverage"
    (:func:`prdc` with ``k``). Two sources are added and marked in ``kind``: the real-vs-real "floor"
    (``n`` training images drawn with ``seed``) and a "baseline" of uniform noise. ``n`` is one count,
    or one per space (``{"classifier": 10000, "effnet-lite0": 2000}``), by default the smallest set;
    FD figures compare only at equal ``n``. ``metrics`` picks among :data:`METRICS`. With ``memorise``,
    :func:`memorisation` rows in "pixels" (the largest ``n`` samples against every training image; the
    test images' own row is the floor).

    Every input is checked before any compute; a Fréchet distance needs more samples than the space
    has dimensions (a function's ``dims`` attribute), and too few are refused.

    >>> import torch
    >>> rng = torch.Generator().manual_seed(0)
    >>> real = torch.rand(400, 1, 4, 4, generator=rng) ** 4     # dark images; real ones: fashion_mnist()
    >>> pool = lambda x: x.reshape(len(x), 4, 4).mean(2).double().numpy()    # a 4-d toy feature space
    >>> table = image_generation_table({"copy": real[200:]}, test=real[:200], train=real[200:], memorise=False,
    ...                                spaces={"pool": pool}, kid_subsets=10, kid_subset_size=100)
    >>> wide = table.pivot_table(index="source", columns="metric", values="value", sort=False)
    >>> wide[["FD", "coverage"]].round(2)                                       # doctest: +NORMALIZE_WHITESPACE
    metric           FD  coverage
    source
    copy           0.00      0.98
    train images   0.00      0.98
    uniform noise  0.36      0.07
    >>> image_generation_table({"few": real[:3]}, test=real, train=real, spaces={"pool": pool})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mmwork.core.errors.MmworkError: a Fréchet distance in the pool space (4 dimensions) needs more than 4 samples ...
    """
    import pandas as pd
    import torch

    if not isinstance(samples, dict) or not samples:
        raise MmworkError("samples must be a non-empty dict: source name -> images (N, 1, H, W) in [0, 1]")
    clash = {FLOOR, NOISE, TEST} & set(samples)
    if clash:
        raise MmworkError(f"{sorted(clash)[0]!r} names a source the table adds itself; rename that model's samples")
    if not isinstance(spaces, dict) or not spaces or not all(callable(f) for f in spaces.values()):
        raise MmworkError("spaces must be a non-empty dict: feature space name -> function(images) -> (N, D) features")
    metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    if not set(metrics) <= set(METRICS):
        raise MmworkError(f"unknown metrics {sorted(set(metrics) - set(METRICS))}; choose among {', '.join(METRICS)}")
    if not isinstance(k, int) or k < 1:
        raise MmworkError(f"k (neighbours for precision/recall/density/coverage) must be a positive integer, got {k!r}")
    test, train = _images(test, "test images"), _images(train, "training images")
    sources = {name: _images(x, f"the samples {name!r}") for name, x in samples.items()}
    shape = tuple(test.shape[1:])
    for name, x in {"training images": train, **{f"the samples {s!r}": x for s, x in sources.items()}}.items():
        if tuple(x.shape[1:]) != shape:
            raise MmworkError(f"{name} have shape {tuple(x.shape[1:])} per image, the test images {shape}")
    counts = _counts(n, spaces, {"test images": len(test), "training images": len(train),
                                 **{f"samples {s!r}": len(x) for s, x in sources.items()}})
    for space, count in counts.items():
        dims = getattr(spaces[space], "dims", None)
        if dims is None:  # an ad-hoc function: two test images tell its width
            dims = _features(spaces[space](test[:2]), f"the {space} features").shape[1]
        if "FD" in metrics and count <= dims:
            raise MmworkError(f"a Fréchet distance in the {space} space ({dims} dimensions) needs more than {dims} "
                              f"samples per set, got n={count}; draw at least {dims + 1} samples (many more for a "
                              f"stable figure), leave the {space} space out or ask for other metrics")
        if "prdc" in metrics and count <= k:
            raise MmworkError(f"precision/recall with k={k} needs more than {k} samples per set, got n={count}")

    rng = np.random.default_rng(seed)
    most = max(counts.values())
    noise = torch.rand((most, *shape), generator=torch.Generator().manual_seed(seed))
    kinds = {**dict.fromkeys(sources, "model"), FLOOR: "floor", NOISE: "baseline"}
    rows = []
    for space, count in counts.items():
        embed = spaces[space]
        real_rows, floor_rows = (np.sort(rng.choice(size, count, replace=False)) for size in (len(test), len(train)))
        log.info("%s space: features of %d test images", space, count)
        real = _features(embed(test[real_rows]), f"the {space} features of the test images")
        sets = {**{name: x[:count] for name, x in sources.items()}, FLOOR: train[floor_rows], NOISE: noise[:count]}
        for source, images in sets.items():
            log.info("%s space: features and metrics of %s (%d images)", space, source, count)
            fake = _features(embed(images), f"the {space} features of {source}")
            base = {"source": source, "kind": kinds[source], "feature_space": space, "n_samples": count,
                    "n_real": count}
            if "FD" in metrics:
                rows.append({**base, "metric": "FD", "value": frechet_distance(real, fake), "std": np.nan,
                             "detail": f"Fréchet distance, {count} vs {count} test images, {real.shape[1]}-d"})
            if "KID" in metrics:
                distance = kid(real, fake, kid_subsets, kid_subset_size, seed)
                rows.append({**base, "metric": "KID", "value": distance.mean, "std": distance.std,
                             "detail": _kid_detail(distance, kid_subset_size)})
            if "prdc" in metrics:
                rows += [{**base, "metric": metric, "value": value, "std": np.nan, "detail": f"k={k}"}
                         for metric, value in prdc(real, fake, k).items()]
    if memorise:
        test_rows = np.sort(rng.choice(len(test), most, replace=False))
        log.info("memorisation: %d test images against %d training images", most, len(train))
        test_distance = nearest_neighbours(test[test_rows], train)[0]
        test_p1 = float(np.percentile(test_distance, 1))
        detail = (f"L2 over pixels to the nearest of {len(train)} training images; test images' 1st percentile "
                  f"{test_p1:.4g}")
        for source, images in {**{name: x[:most] for name, x in sources.items()}, NOISE: noise, TEST: None}.items():
            if source == TEST:
                distance = test_distance
            else:
                log.info("memorisation: %s (%d images)", source, most)
                distance = nearest_neighbours(images, train)[0]
            base = {"source": source, "kind": kinds.get(source, "floor"), "feature_space": PIXELS, "n_samples": most,
                    "n_real": len(train), "std": np.nan, "detail": detail}
            rows += [{**base, "metric": "nn_train_median", "value": float(np.median(distance))},
                     {**base, "metric": "nn_train_p5", "value": float(np.percentile(distance, 5))},
                     {**base, "metric": "share_below_test_p1", "value": float((distance < test_p1).mean())}]
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)
