"""Every sample-quality figure for several sources of images as one tidy table, with the
real-vs-real floor and a noise baseline next to the models' figures.

>>> TABLE_COLUMNS[:4]
['source', 'kind', 'feature_space', 'metric']
"""
from __future__ import annotations

import logging

import numpy as np

from mmwork.core.errors import MmworkError
from mmwork.evaluation.generation.distances import KID, frechet_distance, kid
from mmwork.evaluation.generation.inputs import feature_rows, image_batch
from mmwork.evaluation.generation.neighbours import nearest_neighbours, prdc
from mmwork.evaluation.generation.spaces import PIXELS


log = logging.getLogger("mmwork.evaluation")


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
    test, train = image_batch(test, "test images"), image_batch(train, "training images")
    sources = {name: image_batch(x, f"the samples {name!r}") for name, x in samples.items()}
    shape = tuple(test.shape[1:])
    for name, x in {"training images": train, **{f"the samples {s!r}": x for s, x in sources.items()}}.items():
        if tuple(x.shape[1:]) != shape:
            raise MmworkError(f"{name} have shape {tuple(x.shape[1:])} per image, the test images {shape}")
    counts = _counts(n, spaces, {"test images": len(test), "training images": len(train),
                                 **{f"samples {s!r}": len(x) for s, x in sources.items()}})
    for space, count in counts.items():
        dims = getattr(spaces[space], "dims", None)
        if dims is None:  # an ad-hoc function: two test images tell its width
            dims = feature_rows(spaces[space](test[:2]), f"the {space} features").shape[1]
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
        real = feature_rows(embed(test[real_rows]), f"the {space} features of the test images")
        sets = {**{name: x[:count] for name, x in sources.items()}, FLOOR: train[floor_rows], NOISE: noise[:count]}
        for source, images in sets.items():
            log.info("%s space: features and metrics of %s (%d images)", space, source, count)
            fake = feature_rows(embed(images), f"the {space} features of {source}")
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
