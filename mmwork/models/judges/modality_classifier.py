"""A judge for one modality of a multimodal data set: it names the class of an image, an MFCC sequence,
a character string or a feature vector, so that cross-modal generations can be scored by coherence
(:mod:`mmwork.evaluation.cross_modal`), and its penultimate layer is that modality's feature space for
Fréchet distances ("FD-clf-<modality>").

One class for every modality kind (``kind``: "image" (C, H, W), "sequence" (T, D), "tokens" (L,)
integer ids with 0 = padding, "vector" (D,)); each kind gets a small body of its own and the same
``features``-wide penultimate layer and linear head. The bodies are deliberately not the generators'
encoders: a judge that shares its architecture with the model it scores partly measures their
agreement. It stands on the judges' base (typed config, input checks, the shared ``Training`` loop
with early stopping on the validation cross-entropy, safetensors + JSON save/load, ``predict``,
``predict_proba``, ``features``, ``accuracy``). Train it on the training split only and early-stop it
on the validation split; report its test accuracy next to every coherence.

>>> import torch
>>> from mmwork.models.judges import ModalityClassifier
>>> x = torch.randn(40, 16, 13, generator=torch.Generator().manual_seed(0))       # MFCC frames
>>> clf = ModalityClassifier(kind="sequence", shape=[16, 13], epochs=1, device="cpu").fit(x, torch.arange(40) % 10)
>>> clf.features(x).shape, clf.predict(x[:3]).dtype
(torch.Size([40, 64]), torch.int64)
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field, PositiveInt, model_validator
from torch import nn

from mmwork.core.errors import MmworkError
from mmwork.models.judges.base import Judge, JudgeConfig
from mmwork.models.layers import seeded_dropout

Kind = Literal["image", "sequence", "tokens", "vector"]


class ModalityClassifierConfig(JudgeConfig):
    """Parameters of :class:`ModalityClassifier`."""

    kind: Kind = "image"
    """What one example is: "image" (C, H, W) in [0, 1], "sequence" (T, D) frames, "tokens" (L,)
    integer ids (0 = padding) or "vector" (D,)."""
    shape: list[PositiveInt] = [1, 28, 28]
    """The shape of one example (as ``ModalitySpec.shape``)."""
    vocab_size: PositiveInt | None = None
    """Number of token ids (tokens only; ids lie in 0..vocab_size-1)."""
    n_classes: PositiveInt = 10
    """Number of classes (labels are integers 0..n_classes-1)."""
    width: PositiveInt = 32
    """Channels of the body's first layer (image: conv channels; sequence/tokens: 1-d conv channels;
    vector: hidden units / 4)."""
    features: PositiveInt = 64
    """Width of the penultimate layer: the feature space ``features`` returns (FD needs many more
    samples than this)."""
    dropout: float = Field(0.25, ge=0, lt=1)
    """Dropout after the body and before the head (drawn from the model's own generator)."""
    epochs: PositiveInt = 30
    """Maximum passes over the training data; early stopping on valid usually ends it first."""
    patience: PositiveInt = 4
    """Epochs without a lower validation cross-entropy before training stops; the best epoch is kept."""
    batch_size: PositiveInt = 128
    """Examples per gradient step."""

    @model_validator(mode="after")
    def _check(self):
        rank = {"image": 3, "sequence": 2, "tokens": 1, "vector": 1}[self.kind]
        if len(self.shape) != rank:
            raise ValueError(f"a {self.kind} example has {rank} dimensions, got shape {self.shape}")
        if self.kind == "tokens" and not self.vocab_size:
            raise ValueError("a tokens classifier needs vocab_size (the number of token ids)")
        if self.kind == "image" and min(self.shape[1:]) < 4:
            raise ValueError(f"an image classifier needs images of at least 4x4 pixels, got {self.shape}")
        return self


class ModalityClassifier(Judge):
    """A small body per ``kind`` (image: two 3x3 conv blocks with batch norm, ReLU and 2x2 max pooling;
    sequence: two 1-d convolutions over time with ReLU, then mean and max over time; tokens: a
    32-wide embedding, two 1-d convolutions, max over the non-padding positions; vector: a two-layer
    MLP), a ``features``-wide layer (layer norm, ReLU: the feature space), dropout and a linear head;
    Adam on the cross-entropy.

    Learned state: ``net_``; ``history_`` (per epoch: loss, accuracy on the training batches, seconds
    and, with ``valid``, valid_loss), ``best_epoch_``.
    """

    name = "modality-classifier"
    config_class = ModalityClassifierConfig
    data_kind = "image"
    example = ("example", "examples")

    @property
    def data_shape(self) -> tuple[int, ...]:
        return tuple(self.config.shape)

    @property
    def value_range(self) -> tuple[float, float] | None:
        return (0.0, 1.0) if self.config.kind == "image" else None

    @classmethod
    def for_spec(cls, spec, n_classes: int, **params) -> "ModalityClassifier":
        """The classifier for a modality described by a ``ModalitySpec`` (anything with ``kind``,
        ``shape`` and ``vocab``)."""
        vocab = getattr(spec, "vocab", None)
        return cls(kind=spec.kind, shape=list(spec.shape), vocab_size=len(vocab) if vocab else None,
                   n_classes=n_classes, **params)

    def _build(self) -> None:
        self.net_ = _ModalityNet(self.config)

    def _check_data(self, data, what: str = "data") -> torch.Tensor:
        if self.config.kind != "tokens":
            return super()._check_data(data, what)
        if not isinstance(data, (torch.Tensor, np.ndarray)):
            raise MmworkError(f"{what} must be a tensor or numpy array of token ids, got {type(data).__name__}")
        x = torch.as_tensor(data).detach().cpu()
        if x.is_floating_point() or x.dtype == torch.bool:
            raise MmworkError(f"{what} must hold integer token ids, got {x.dtype}")
        if x.ndim != 2 or x.shape[1] != self.config.shape[0] or len(x) == 0:
            raise MmworkError(f"{what} must have shape (N, {self.config.shape[0]}) with N > 0, got {tuple(x.shape)}")
        if x.min() < 0 or x.max() >= self.config.vocab_size:
            raise MmworkError(f"{what} must hold ids in 0..{self.config.vocab_size - 1}, got "
                              f"{int(x.min())}..{int(x.max())}")
        return x.long()

    def fit(self, data, labels=None, valid=None, *, checkpoint=None, resume_from=None) -> "ModalityClassifier":
        """Learn from ``data`` (N, *shape) and integer ``labels`` (N,); ``valid`` is ``(data, labels)``
        held out (early stopping on its cross-entropy). Returns self."""
        return super().fit(data, labels, valid, checkpoint=checkpoint, resume_from=resume_from)


class _ModalityNet(nn.Module):
    def __init__(self, config: ModalityClassifierConfig):
        super().__init__()
        kind, shape, w = config.kind, config.shape, config.width
        self.kind, self.p = kind, config.dropout
        if kind == "image":
            def block(c_in, c_out):
                return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                                     nn.ReLU(), nn.MaxPool2d(2))
            self.body = nn.Sequential(block(shape[0], w), block(w, 2 * w), nn.Flatten())
            width = 2 * w * (shape[1] // 4) * (shape[2] // 4)
        elif kind in ("sequence", "tokens"):
            channels = shape[1] if kind == "sequence" else 32
            if kind == "tokens":
                self.embed = nn.Embedding(config.vocab_size, channels, padding_idx=0)
            self.body = nn.Sequential(nn.Conv1d(channels, w, 3, padding=1), nn.ReLU(),
                                      nn.Conv1d(w, 2 * w, 3, padding=1), nn.ReLU())
            width = (4 if kind == "sequence" else 2) * w  # sequence: mean and max over time; tokens: max
        else:
            self.body = nn.Sequential(nn.Linear(shape[0], 4 * w), nn.ReLU(), nn.Linear(4 * w, 4 * w), nn.ReLU())
            width = 4 * w
        # layer norm, not batch norm: a last batch of one example (57 training words, batch 8) must train
        self.hidden = nn.Sequential(nn.Linear(width, config.features), nn.LayerNorm(config.features), nn.ReLU())
        self.out = nn.Linear(config.features, config.n_classes)

    def _pooled(self, x):
        if self.kind == "sequence":
            h = self.body(x.transpose(1, 2))                      # N, C, T
            return torch.cat([h.mean(2), h.amax(2)], 1)
        if self.kind == "tokens":
            h = self.body(self.embed(x).transpose(1, 2))          # N, C, L
            pad = (x == 0)[:, None, :]
            h = h.masked_fill(pad & ~pad.all(2, keepdim=True), float("-inf"))  # an all-padding row keeps its values
            return h.amax(2)
        return self.body(x)

    def features(self, x, generator=None):
        h = seeded_dropout(self._pooled(x), self.p, generator, active=generator is not None)
        return self.hidden(h)

    def forward(self, x, generator=None):
        h = self.features(x, generator)
        return self.out(seeded_dropout(h, self.p, generator, active=generator is not None))
