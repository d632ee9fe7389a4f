"""The data a generator trains on and the condition rows it takes, for training and for sampling.

``read_images``/``read_audio`` read the store's training split and hold part of it out for early
stopping; ``training_condition`` is each example's condition (a one-hot class, the embedding of a
wording of its class name, or its label); ``request`` builds the rows ``sample`` draws for.

>>> from mmwork.apps.generate.registry import MODELS
>>> rows, names = request(MODELS["cvae"], "cvae", 3, None, ["shirt", "bag"])
>>> rows.tolist(), names
([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], ['shirt', 'bag', 'shirt'])
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from mmwork.apps.generate.folders import trained_info
from mmwork.apps.generate.registry import MODELS, ModelSpec, spec
from mmwork.core.errors import MmworkError

VALID_SHARE = 10  # one image in ten of those read is held out for early stopping


@dataclass
class TrainingData:
    """What a model trains on: training and held-out (inputs, labels) sets, the class names and, for
    sound, the mel parameters (``extra["mel"]``)."""

    train: Any
    valid: Any
    classes: list[str]
    extra: dict = field(default_factory=dict)


def read_images(limit: int | None) -> TrainingData:
    """The first ``limit`` training images (all when None) plus a tenth as many held out after them."""
    from mmwork.models.data import fashion_mnist
    wanted = None if limit is None else limit + max(1, limit // (VALID_SHARE - 1))
    images = fashion_mnist("train", limit=wanted)
    n_valid = max(1, len(images.images) // VALID_SHARE)
    n_train = len(images.images) - n_valid
    if n_train < 1:
        raise MmworkError(f"the fashion-mnist train split holds {len(images.images)} image(s); too few to train on")
    cut = lambda s: type(images)(images.images[s], images.labels[s], images.classes)  # noqa: E731
    return TrainingData(cut(slice(0, n_train)), cut(slice(n_train, None)), images.classes)


def read_audio(dataset: str, limit: int | None) -> TrainingData:
    """The training clips' patches (the first ``limit`` clips), some clips held out by a hash of their id."""
    from mmwork.models.data import audio_clips, hold_out
    clips = audio_clips(dataset, "train", limit=limit)
    kept, valid = hold_out(clips)
    return TrainingData(kept, valid, list(clips.classes), {"mel": clips.mel})


def text_embed(texts: list[str]) -> torch.Tensor:
    """The sentence embedding of each text (the condition of the text-conditioned models)."""
    from mmwork.models.data import images as data
    if not hasattr(data, "text_condition"):
        raise MmworkError("text-cvae needs mmwork.models.data.images.text_condition, which this mmwork lacks")
    return torch.as_tensor(data.text_condition(texts)).float()


def training_condition(kind: str, labels: torch.Tensor, classes: list[str], seed: int = 0) -> torch.Tensor | None:
    """The training condition of each example: its one-hot class or the embedding of its class name."""
    from mmwork.models.data import one_hot
    if kind == "class":
        return one_hot(labels, len(classes))
    if kind == "text":  # several wordings of each class name when the data module has them
        from mmwork.models.data import images as data
        if hasattr(data, "describe_classes"):
            return text_embed(data.describe_classes(labels, classes, seed=seed))
        return text_embed(list(classes))[labels]
    if kind == "label":
        return labels
    return None


def request(found: ModelSpec, model: str, n: int, condition, classes: list[str]):
    """The condition rows for ``n`` samples and their names: one class name or text for all, or
    (``condition=None`` on a conditional model) the classes in turn."""
    from mmwork.models.data import class_condition, one_hot
    if found.condition == "none":
        if condition is not None:
            conditional = [m for m, s in MODELS.items() if s.data == found.data and s.condition in ("class", "text")]
            raise MmworkError(f"{model} is unconditional and takes no condition; use {' or '.join(conditional)} "
                              "for class or text conditions")
        return None, None
    if condition is None:
        names = [classes[i % len(classes)] for i in range(n)]
    elif isinstance(condition, str):
        names = [condition] * n
    else:
        names = [str(c) for c in condition]
        if len(names) != n:
            raise MmworkError(f"got {len(names)} conditions for {n} samples; give one, or one per sample")
    if found.condition == "text":
        unique = sorted(set(names))
        table = text_embed(unique)
        return table[[unique.index(t) for t in names]], names
    if condition is None:
        return one_hot(torch.arange(n) % len(classes), len(classes)), names
    return class_condition(names, classes), names


def conditions(dataset: str, model: str, n: int, condition=None) -> tuple[torch.Tensor | None, list[str] | None]:
    """The condition rows a trained ``model``'s ``sample`` takes for ``n`` samples, and their names, as
    ``sample`` builds them (``condition``: a name or text for all, one per sample, or None for the
    classes in turn); (None, None) for unconditional models."""
    found = spec(dataset, model)
    recorded = trained_info(dataset, model)
    return request(found, model, n, condition, recorded["classes"])
