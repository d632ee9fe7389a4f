"""Generated images per class, large enough to judge, beside their nearest training images: a reader
sees at once whether a row looks like its class and whether a sample is new or a copy.

Nearness is Euclidean distance over the 784 pixels in [0, 1] (the same "pixels" space as the
memorisation rows of :func:`mmwork.apps.generate.evaluate`), searched exactly among the images the
model was trained on.

>>> fig, table = beside_nearest_training("fashion-mnist", "cvae", per_class=6)      # doctest: +SKIP
>>> table.loc["Trouser", "median_distance"]                                        # doctest: +SKIP
4.1
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from mmwork.core.errors import MmworkError

TILE_INCHES = 0.62  # one 28x28 image at the notebook's 100 dpi: about 60 pixels, a little over twice its size


def _pixels(images) -> np.ndarray:
    if hasattr(images, "detach"):
        images = images.detach().cpu().numpy()
    images = np.asarray(images, dtype=np.float32)
    return images[:, 0] if images.ndim == 4 else images


def _mosaic(images: np.ndarray, rows: int, pad: int = 2) -> np.ndarray:
    """(rows * cols, H, W) in row-major order as one image with white gaps."""
    n, h, w = images.shape
    cols = n // rows
    out = np.ones((rows * (h + pad) - pad, cols * (w + pad) - pad), dtype=np.float32)
    for i, image in enumerate(images):
        r, c = divmod(i, cols)
        out[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = image
    return out


def rows_beside_neighbours(samples, neighbours, row_titles, distances=None, title: str = "",
                           right_title: str = "nearest training image of each"):
    """A figure of two mosaics with one row per entry of ``row_titles``: the ``samples`` (row-major,
    the same number per row) on the left, each one's nearest training image at the same place on the
    right; ``distances`` (one per sample) put each row's median distance at its right end.

    >>> x = np.random.default_rng(0).random((6, 1, 28, 28))
    >>> fig = rows_beside_neighbours(x, x[::-1], ["a", "b"], np.arange(6.0))
    >>> [t.get_text() for t in fig.axes[0].get_yticklabels()], fig.axes[1].get_yticklabels()[0].get_text()
    (['a', 'b'], 'median 1.00')
    """
    import matplotlib.pyplot as plt
    samples, neighbours = _pixels(samples), _pixels(neighbours)
    rows = len(row_titles)
    if len(samples) != len(neighbours) or rows == 0 or len(samples) % rows:
        raise MmworkError(f"one neighbour per sample and the same number of samples per row: got {len(samples)} "
                          f"samples, {len(neighbours)} neighbours, {rows} rows")
    cols, h = len(samples) // rows, samples.shape[1]
    fig, axes = plt.subplots(1, 2, figsize=(2 * cols * TILE_INCHES + 2.4, rows * (TILE_INCHES + 0.04) + 0.7))
    for ax, images, heading in zip(axes, (samples, neighbours), ("generated", right_title)):
        ax.imshow(_mosaic(images, rows), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks([])
        ax.set_title(heading, fontsize=9)
        ax.tick_params(length=0)
        for side in ax.spines.values():
            side.set_visible(False)
    centres = np.arange(rows) * (h + 2) + h / 2
    axes[0].set_yticks(centres, [str(t) for t in row_titles], fontsize=9)
    if distances is None:
        axes[1].set_yticks([])
    else:
        medians = np.median(np.asarray(distances, dtype=float).reshape(rows, cols), axis=1)
        axes[1].yaxis.tick_right()
        axes[1].set_yticks(centres, [f"median {m:.2f}" for m in medians], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def beside_nearest_training(dataset: str, model: str, per_class: int = 6, seed: int = 0, device: str = "auto",
                            pool=None):
    """Draw ``per_class`` samples of each class from the trained conditional image ``model``
    (:func:`mmwork.apps.generate.sample`) and find each one's nearest training image in pixel space
    among the ``train_examples`` images it was trained on (the first ones of Fashion-MNIST's training
    split; or ``pool``). Returns the figure of :func:`rows_beside_neighbours` and a table per class:
    the median and smallest distance and the training index of the nearest image."""
    from mmwork.apps import generate
    from mmwork.evaluation.generation.neighbours import nearest_neighbours
    from mmwork.models.data import fashion_mnist
    recorded = generate.info(dataset, model)
    if recorded is None:
        raise MmworkError(f"no trained {model} for {dataset}; train it first: mmwork generate train --dataset "
                          f"{dataset} --model {model}")
    if not isinstance(per_class, int) or isinstance(per_class, bool) or per_class < 1:
        raise MmworkError(f"per_class must be a positive number of samples, got {per_class!r}")
    classes = list(recorded["classes"])
    drawn = generate.sample(dataset, model, per_class * len(classes),
                            condition=[c for c in classes for _ in range(per_class)], seed=seed, device=device).data
    if pool is None:
        pool = fashion_mnist("train", limit=recorded["train_examples"]).images
    distance, index = nearest_neighbours(drawn, pool)
    fig = rows_beside_neighbours(drawn, np.asarray(pool[index]), classes, distance,
                                 title=f"{model}: {per_class} samples per requested class (seed {seed}), each beside "
                                       f"its nearest of {len(pool):,} training images (pixel L2)")
    per_row = distance.reshape(len(classes), per_class)
    table = pd.DataFrame({"median_distance": np.median(per_row, 1), "smallest_distance": per_row.min(1),
                          "nearest_of_smallest": index.reshape(len(classes), per_class)[
                              np.arange(len(classes)), per_row.argmin(1)]}, index=pd.Index(classes, name="class"))
    return fig, table
