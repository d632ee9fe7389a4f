"""The in-project audio classifier: it names the category of log-mel patches, so that conditional
samples of :class:`~mmwork.models.generators.AudioVAE` can be checked against the category they were asked
for (report its accuracy on held-out real clips next to that figure), and its penultimate layer is a
feature space for sound.

Like :class:`~mmwork.models.judges.Classifier` it stands on the judges' base (typed config, input
checks, the shared ``Training`` loop with early stopping, NaN stop, checkpoints and amp, safetensors +
JSON save/load, predict/features/accuracy). It has no image
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

from pydantic import Field, PositiveInt, model_validator
from torch import nn

from mmwork.core.errors import MmworkError
from mmwork.models.data.audio import MelParams
from mmwork.models.judges.base import Judge, JudgeConfig
from mmwork.models.layers import seeded_dropout
from mmwork.models.network import Preset


class AudioClassifierConfig(JudgeConfig):
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
    patience: PositiveInt = 15
    """Epochs without a lower validation loss before training stops (when fit gets valid). 15, not 5:
    on instrument-samples (259 training patches, 56 validation ones) the validation loss first rises
    for 3-5 epochs; with 5, a fit on 2 threads stopped at epoch 6 keeping epoch 1 (real test patches
    recognised 0.083, chance 0.071) where one thread's rounding went on to epoch 17; with 15 it keeps
    epoch 26 (0.271). Seed 0."""
    batch_size: PositiveInt = 64
    """Patches per gradient step."""

    @model_validator(mode="after")
    def _check(self):
        if self.mel.n_mels % 8 or self.mel.frames % 8:
            raise ValueError(f"mel.n_mels and mel.frames must be multiples of 8, got {self.mel.n_mels} and "
                             f"{self.mel.frames}")
        return self


class AudioClassifier(Judge):
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
    data_kind = "audio"
    example = ("patch", "patches")
    presets = (Preset("audio-classifier", "label", {}, "the in-project audio classifier that evaluate() scores sounds with"),)

    @property
    def data_shape(self) -> tuple[int, int, int]:
        """(1, n_mels, frames) of the configured patch format."""
        return 1, self.config.mel.n_mels, self.config.mel.frames

    def _build(self) -> None:
        self.net_ = _ConvAudioClassifier(self.config)

    @property
    def n_classes(self) -> int:
        return len(self.config.classes)

    @classmethod
    def _params_from_data(cls, condition, classes, condition_dim, mel) -> dict:
        return {"classes": list(classes)} | ({} if mel is None else {"mel": mel})

    # -- training ------------------------------------------------------------------------------------
    def fit(self, patches, labels=None, valid=None, *, checkpoint=None, resume_from=None) -> "AudioClassifier":
        """Learn from ``patches`` (N, 1, n_mels, frames) in [0, 1] and their integer ``labels``;
        ``valid`` is ``(patches, labels)`` held out (early stopping on their cross-entropy) or a
        callback; ``checkpoint``/``resume_from`` as for every trained network. Returns self."""
        if len(self.config.classes) < 2:
            raise MmworkError(f"{self.name} needs at least two classes, got {self.config.classes!r}; build it "
                              "with classes=clips.classes")
        return super().fit(patches, labels, valid, checkpoint=checkpoint, resume_from=resume_from)


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
        """Dropout with the model's own generator (None: evaluation, no dropout)."""
        return seeded_dropout(h, self.p, generator, active=generator is not None)

    def features(self, x, generator=None):
        h = x
        for block in self.blocks:
            h = self._drop(block(h), generator)
        return self.hidden(h)

    def forward(self, x, generator=None):
        return self.out(self._drop(self.features(x, generator), generator))
