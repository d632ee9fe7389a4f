"""Data adapters: generator-ready tensors read from the store (``mmwork data get NAME`` builds it),
never from the raw files, and the condition vectors the conditional models take.

>>> one_hot([2, 0], 3)
tensor([[0., 0., 1.],
        [1., 0., 0.]])
>>> class_condition(["ankle boot"], ["Sneaker", "Bag", "Ankle boot"])
tensor([[0., 0., 1.]])
>>> data = fashion_mnist("test", limit=256)          # doctest: +SKIP
>>> data.images.shape, data.classes[9]                # doctest: +SKIP
(torch.Size([256, 1, 28, 28]), 'Ankle boot')
"""
from __future__ import annotations

import io
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image

from mmwork.errors import MmworkError
from mmwork.store import read_table


class LabelledImages(NamedTuple):
    images: torch.Tensor
    """(N, 1, H, W) float32 pixels in [0, 1]."""
    labels: torch.Tensor
    """(N,) int64 class index of each image."""
    classes: list[str]
    """Class names by index."""


def fashion_mnist(split: str = "train", limit: int | None = None) -> LabelledImages:
    """Fashion-MNIST's ``"train"`` (60,000) or ``"test"`` (10,000) images in store order, the first
    ``limit`` of them if given, decoded from the PNG bytes of the ``fashion-mnist`` items table."""
    if split not in ("train", "test"):
        raise MmworkError(f"Fashion-MNIST has the splits 'train' and 'test', not {split!r}")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise MmworkError(f"limit must be a positive integer or None, got {limit!r}")
    frame = read_table("fashion-mnist", "items", columns=["image", "label", "label_id"],
                       filters=[("split", "==", split)])
    names = frame.drop_duplicates("label_id").set_index("label_id")["label"]
    classes = [names.get(i) for i in range(int(names.index.max()) + 1)]
    if None in classes:
        missing = [i for i, c in enumerate(classes) if c is None]
        raise MmworkError(f"the fashion-mnist {split} split lacks class ids {missing}; rebuild it with "
                          "`mmwork data get fashion-mnist --force`")
    frame = frame.iloc[:limit]
    pixels = np.stack([np.asarray(Image.open(io.BytesIO(png)).convert("L")) for png in frame["image"]])
    images = torch.from_numpy(pixels).unsqueeze(1).float().div_(255)
    labels = torch.from_numpy(frame["label_id"].to_numpy(dtype=np.int64, copy=True))
    return LabelledImages(images, labels, classes)


def one_hot(labels, n_classes: int) -> torch.Tensor:
    """Float32 one-hot rows (N, n_classes) for integer class indices."""
    labels = torch.as_tensor(np.asarray(labels))
    if labels.ndim != 1 or labels.is_floating_point() or labels.dtype == torch.bool:
        raise MmworkError(f"labels must be a 1-D sequence of integer class indices, got {labels.dtype} "
                          f"of shape {tuple(labels.shape)}")
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise MmworkError(f"labels must lie in 0..{n_classes - 1}, got {int(labels.min())}..{int(labels.max())}")
    return torch.nn.functional.one_hot(labels.long(), n_classes).float()


def class_condition(names, classes: list[str]) -> torch.Tensor:
    """One-hot rows for class names (case and surrounding spaces ignored); an unknown name is an error
    that lists the classes."""
    index = {c.strip().lower(): i for i, c in enumerate(classes)}
    names = [names] if isinstance(names, str) else list(names)
    unknown = [n for n in names if str(n).strip().lower() not in index]
    if unknown:
        raise MmworkError(f"unknown class {unknown[0]!r}; the classes are {', '.join(classes)}")
    return one_hot([index[str(n).strip().lower()] for n in names], len(classes))
