"""The in-project audio classifier: it names the category of log-mel patches, so that conditional
samples of :class:`~mmwork.models.generators.AudioVAE` can be checked against the category they were asked
for (report its accuracy on held-out real clips next to that figure), and its penultimate layer is a
feature space for sound.

Like :class:`~mmwork.models.generators.Classifier` it rides on the ``Generator`` base class (typed config,
input checks, the shared ``Training`` loop with early stopping, NaN stop, checkpoints and amp,
safetensors + JSON save/load); the labels travel where a generator's condition does. It has no image
augmentation: mirroring a spectrogram would play the sound backwards.

>>> import torch
>>> from mmwork.models.judges import AudioClassifier
>>> from mmwork.models.data import MelParams
>>> patches = torch.rand(32, 1, 16, 16, generator=torch.Generator().manual_seed(0))  # real ones: audio_clips()
>>> model = AudioClassifier(mel=MelParams(n_mels=16, frames=16), classes=["a", "b"], epochs=1, device="cpu")
>>> model = model.fit(patches, torch.arange(32) % 2)
>>> model.features(patches).shape, model.predict(patches[:3]).dtype
(torch.Size([32, 64]), torch.int64)
"""
from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt, model_validator
from torch import nn

from mmwork.core.errors import MmworkError
from mmwork.models.data.audio import MelParams
from mmwork.models.generators.base import Generator, GeneratorConfig, Training


class AudioClassifierConfig(GeneratorConfig):
    """Parameters of :class:`AudioClassifier`."""

    mel: MelParams = MelParams()
    """The patch format (n_mels and frames multiples of 8: three 2x2 poolings)."""
    classes: list[str] = []
    """Category names by index (their number is the number of outputs); fit needs at least two."""
    channels: PositiveInt = 16
    """Channels of the first convolution block (then 2x and 4x)."""
    features: PositiveInt = 64
    """Width of the penultimate layer: the feature space ``features`` returns."""
    dropout: float = Field(0.3, ge=0, lt=1)
    """Dropout probability after each convolution block and before the output layer."""
    epochs: PositiveInt = 30
    """Maximum passes over the training patches."""
    patience: PositiveInt = 5
    """Epochs without a lower validation loss before training stops (when fit gets valid)."""
    batch_size: PositiveInt = 64
    """Patches per gradient step."""

    @model_validator(mode="after")
    def _check(self):
        if self.mel.n_mels % 8 or self.mel.frames % 8:
            raise ValueError(f"mel.n_mels and mel.frames must be multiples of 8, got {self.mel.n_mels} and "
                             f"{self.mel.frames}")
        return self


class AudioClassifier(Generator):
    """Three convolution blocks (3x3 conv, batch norm, ReLU, 2x2 max pool, dropout), a fully
    connected ``features``-wide layer (batch norm, ReLU: the feature space), dropout and a linear
    output layer; Adam on the cross-entropy. Dropout draws from the model's own generator, so fits on
    CPU repeat exactly.

    Learned state: ``net_``; ``history_`` (one dict per epoch: loss (mean cross-entropy in nats),
    accuracy (training batches, dropout on), seconds, images_per_s (patches) and, with ``valid``,
    valid_loss: the held-out cross-entropy), ``best_epoch_``.
    """

    name = "audio-classifier"
    config_class = AudioClassifierConfig
    value_range = (0.0, 1.0)  # scaled dB levels
    _state = ("net_",)

    @property
    def data_shape(self) -> tuple[int, int, int]:
        """(1, n_mels, frames) of the configured patch format."""
        return 1, self.config.mel.n_mels, self.config.mel.frames

    def _build(self) -> None:
        self.net_ = _ConvAudioClassifier(self.config)

    def _check_condition(self, labels, n: int, what: str = "labels", broadcast: bool = False):
        """The labels (the base class's "condition" slot) as an int64 CPU tensor (n,)."""
        what = what.replace("condition", "labels")
        k = len(self.config.classes)
        if labels is None:
            raise MmworkError(f"{self.name} needs {what}: one integer class in 0..{k - 1} per patch")
        if not isinstance(labels, (torch.Tensor, np.ndarray, list, tuple)):
            raise MmworkError(f"{what} must be a tensor, array or list of integers, got {type(labels).__name__}")
        y = torch.as_tensor(np.asarray(labels)).detach().cpu()
        if y.is_floating_point() or y.dtype == torch.bool or y.shape != (n,):
            raise MmworkError(f"{what} must be {n} integer class indices (shape ({n},)), got {y.dtype} of "
                              f"shape {tuple(y.shape)}")
        if y.min() < 0 or y.max() >= k:
            raise MmworkError(f"{what} must lie in 0..{k - 1} ({k} classes), got {int(y.min())}..{int(y.max())}")
        return y.long()

    # -- training ------------------------------------------------------------------------------------
    def fit(self, patches, labels=None, valid=None, *, checkpoint=None, resume_from=None) -> "AudioClassifier":
        """Learn from ``patches`` (N, 1, n_mels, frames) in [0, 1] and their integer ``labels``;
        ``valid`` is ``(patches, labels)`` held out (early stopping on their cross-entropy) or a
        callback; ``checkpoint``/``resume_from`` as for every generator. Returns self."""
        if len(self.config.classes) < 2:
            raise MmworkError(f"{self.name} needs at least two classes, got {self.config.classes!r}; build it "
                              "with classes=clips.classes")
        return super().fit(patches, labels, valid, checkpoint=checkpoint, resume_from=resume_from)

    def _fit(self, x: torch.Tensor, y: torch.Tensor, training: Training) -> None:
        config, device = self.config, self.device_
        generator = torch.Generator(device).manual_seed(config.seed)
        optimizer = torch.optim.Adam(self.net_.parameters(), lr=config.lr)
        n = len(x)
        for _ in training.epochs(optimizer, generator):
            started = time.perf_counter()
            self.net_.train()
            order = torch.randperm(n, generator=generator, device=device)
            sums = torch.zeros(2, device=device)  # cross-entropy and correct predictions, summed
            for start in range(0, n, config.batch_size):
                batch = order[start:start + config.batch_size]
                with training.autocast():
                    logits = self.net_(x[batch], generator)
                    loss = F.cross_entropy(logits.float(), y[batch])
                training.step(loss)
                sums += torch.stack([loss.detach() * len(batch), (logits.argmax(1) == y[batch]).sum()])
            self.net_.eval()
            seconds = time.perf_counter() - started
            loss, accuracy = (sums / n).tolist()
            training.end_epoch({"loss": loss, "accuracy": accuracy, "seconds": seconds, "images_per_s": n / seconds})

    @torch.no_grad()
    def _valid_loss(self, x: torch.Tensor, y: torch.Tensor) -> float:
        return float(F.cross_entropy(self._batched(lambda b: self.net_(b), x), y, reduction="sum")) / len(x)

    # -- prediction ----------------------------------------------------------------------------------
    def predict(self, patches) -> torch.Tensor:
        """The most probable class of each patch (N,), int64."""
        return self.logits(patches).argmax(1)

    def predict_proba(self, patches) -> torch.Tensor:
        """Class probabilities (N, n_classes), float32."""
        return self.logits(patches).softmax(1)

    @torch.no_grad()
    def logits(self, patches) -> torch.Tensor:
        """The output layer's scores (N, n_classes), float32."""
        return self._batched(lambda b: self.net_(b), self._patches(patches))

    @torch.no_grad()
    def features(self, patches) -> torch.Tensor:
        """Penultimate-layer activations (N, features), float32."""
        return self._batched(self.net_.features, self._patches(patches))

    def accuracy(self, patches, labels) -> float:
        """The fraction of patches whose predicted class is their label."""
        x = self._patches(patches)
        y = self._check_condition(labels, len(x)).to(self.device_)
        return float((self.predict(x) == y).double().mean())

    def sample(self, n: int, condition=None, seed: int = 0):
        raise MmworkError(f"an {self.name} labels patches and draws none; sample from an AudioVAE")

    def _patches(self, patches) -> torch.Tensor:
        self._check_fitted()
        return self._check_data(patches, "patches").to(self.device_)

    def _batched(self, fn, x: torch.Tensor) -> torch.Tensor:
        self.net_.eval()
        size = max(self.config.batch_size, 256)
        return torch.cat([fn(x[s:s + size]).float() for s in range(0, len(x), size)])


class _ConvAudioClassifier(nn.Module):
    def __init__(self, config: AudioClassifierConfig):
        super().__init__()
        ch, self.p = config.channels, config.dropout

        def block(c_in, c_out):
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                                 nn.ReLU(), nn.MaxPool2d(2))
        self.blocks = nn.ModuleList([block(1, ch), block(ch, 2 * ch), block(2 * ch, 4 * ch)])
        cells = (config.mel.n_mels // 8) * (config.mel.frames // 8)
        self.hidden = nn.Sequential(nn.Flatten(), nn.Linear(4 * ch * cells, config.features, bias=False),
                                    nn.BatchNorm1d(config.features), nn.ReLU())
        self.out = nn.Linear(config.features, len(config.classes))

    def _drop(self, h, generator):
        """Inverted dropout with the model's own generator (None: evaluation, no dropout)."""
        if generator is None or self.p == 0:
            return h
        keep = torch.rand(h.shape, generator=generator, device=h.device) >= self.p
        return h * keep / (1 - self.p)

    def features(self, x, generator=None):
        h = x
        for block in self.blocks:
            h = self._drop(block(h), generator)
        return self.hidden(h)

    def forward(self, x, generator=None):
        return self.out(self._drop(self.features(x, generator), generator))
