"""Convolutional VAE over log-mel patches (1, n_mels, frames), conditioned on the clip's category;
sound comes back through Griffin-Lim (:func:`~mmwork.generators.audio_data.patches_to_audio`).

It is :class:`~mmwork.generators.vae.VAE` with a network sized for the patch: the same objective,
training loop, KL warm-up, ELBO, importance-sampled NLL, encode/decode/reconstruct/sample and
checkpoints. The likelihood defaults to ``"gaussian"`` (one learned scale around the decoder's
output) because a patch holds continuous dB levels in [0, 1], not pixel probabilities; its nats are
those of a density over the [0, 1]-scaled dB values of one patch (n_mels x frames numbers). The
patch format (``mel``) and the category names (``classes``) travel in the configuration, so a loaded
model can turn names into conditions and samples into sound on its own.

>>> import torch
>>> from mmwork.generators import AudioVAE, MelParams
>>> mel = MelParams(n_mels=16, frames=16)
>>> patches = torch.rand(32, 1, 16, 16, generator=torch.Generator().manual_seed(0))  # real ones: audio_clips()
>>> model = AudioVAE(mel=mel, classes=["a", "b"], epochs=1, channels=4, hidden=16, device="cpu")
>>> model = model.fit(patches, model.condition(["a", "b"] * 16))
>>> model.sample(3, condition=model.condition("b"), seed=1).shape
torch.Size([3, 1, 16, 16])
>>> [len(y) for y in model.sample_audio(2, condition=model.condition("a"), n_iter=2)]
[2048, 2048]
"""
from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from pydantic import NonNegativeFloat, PositiveInt, model_validator
from torch import nn

from mmwork.errors import MmworkError
from mmwork.generators.audio_data import MelParams, patches_to_audio
from mmwork.generators.data import class_condition
from mmwork.generators.vae import LOG_2PI, VAE, VAEConfig


class AudioVAEConfig(VAEConfig):
    """Parameters of :class:`AudioVAE` (those of :class:`~mmwork.generators.vae.VAEConfig`, with
    defaults for sound, and the patch format)."""

    mel: MelParams = MelParams()
    """The patch format (its n_mels and frames must be multiples of 8: three stride-2 convolutions)."""
    classes: list[str] = []
    """Category names by condition index; with classes, condition_dim defaults to their number."""
    latent: PositiveInt = 32
    """Size of the latent vector z."""
    channels: PositiveInt = 16
    """Channels of the first convolution (then 2x and 4x)."""
    likelihood: Literal["bernoulli", "gaussian"] = "gaussian"
    """p(x|z): "gaussian" (one learned scale; the default for dB levels) or "bernoulli"."""
    warmup_epochs: NonNegativeFloat = 5.0
    """Epochs over which the KL weight rises linearly from 0 to 1."""

    @model_validator(mode="before")
    @classmethod
    def _condition_from_classes(cls, data):
        if isinstance(data, dict) and data.get("classes") and "condition_dim" not in data:
            data = data | {"condition_dim": len(data["classes"])}
        return data

    @model_validator(mode="after")
    def _check(self):
        if self.mel.n_mels % 8 or self.mel.frames % 8:
            raise ValueError(f"mel.n_mels and mel.frames must be multiples of 8, got {self.mel.n_mels} and "
                             f"{self.mel.frames}")
        if self.classes and self.condition_dim != len(self.classes):
            raise ValueError(f"condition_dim={self.condition_dim} but {len(self.classes)} classes are named; "
                             "leave condition_dim out to take their number")
        return self


class AudioVAE(VAE):
    """Encoder: three conv 4x4 stride 2 layers (1 -> channels -> 2x -> 4x; n_mels x frames shrinks
    8-fold each way), ReLUs, linear -> hidden, then [features, condition] -> (mu, log variance).
    Decoder: the mirror image, from [z, condition]. Trained with Adam on the negative ELBO (one z per
    patch), the KL weight warming up over ``warmup_epochs``; fits on CPU repeat exactly for a seed.

    Learned state: ``net_``, ``history_`` (as :class:`~mmwork.generators.vae.VAE`'s: loss, recon,
    kl in nats per patch, ..., ``images_per_s`` counting patches), ``best_epoch_``.
    """

    name = "audio-vae"
    config_class = AudioVAEConfig
    value_range = (0.0, 1.0)  # scaled dB levels

    @property
    def data_shape(self) -> tuple[int, int, int]:
        """(1, n_mels, frames) of the configured patch format."""
        return 1, self.config.mel.n_mels, self.config.mel.frames

    def _build(self) -> None:
        self.net_ = _ConvAudioVAE(self.config)

    def condition(self, names) -> torch.Tensor:
        """One-hot condition rows (N, condition_dim) for a list of category names, or one vector for a
        single name (which ``sample`` repeats for every sample)."""
        if not self.config.classes:
            raise MmworkError(f"this {self.name} has no category names (classes=[]); build it with "
                              "classes=clips.classes, or pass one-hot rows yourself")
        rows = class_condition(names, list(self.config.classes))
        return rows[0] if isinstance(names, str) else rows

    def sample_audio(self, n: int, condition=None, seed: int = 0, n_iter: int = 32) -> list[np.ndarray]:
        """``n`` sampled patches as waveforms (float32 at ``mel.sr``) through Griffin-Lim (``n_iter``
        iterations, its phase seeded with ``seed`` too)."""
        return patches_to_audio(self.sample(n, condition, seed).cpu(), self.config.mel, n_iter=n_iter, seed=seed)


class _ConvAudioVAE(nn.Module):
    """The interface of vae.py's network (encode, decode, log_likelihood, mean) for any patch size."""

    def __init__(self, config: AudioVAEConfig):
        super().__init__()
        ch, hidden, cond = config.channels, config.hidden, config.condition_dim
        h, w = config.mel.n_mels // 8, config.mel.frames // 8
        self.encoder = nn.Sequential(
            nn.Conv2d(1, ch, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(ch, 2 * ch, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(2 * ch, 4 * ch, 4, 2, 1), nn.ReLU(),
            nn.Flatten(), nn.Linear(4 * ch * h * w, hidden), nn.ReLU())
        self.posterior = nn.Linear(hidden + cond, 2 * config.latent)
        self.decoder = nn.Sequential(
            nn.Linear(config.latent + cond, hidden), nn.ReLU(),
            nn.Linear(hidden, 4 * ch * h * w), nn.ReLU(), nn.Unflatten(1, (4 * ch, h, w)),
            nn.ConvTranspose2d(4 * ch, 2 * ch, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(2 * ch, ch, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(ch, 1, 4, 2, 1))
        self.log_scale = nn.Parameter(torch.tensor(math.log(0.1))) if config.likelihood == "gaussian" else None

    def encode(self, x, c):
        h = self.encoder(x)
        return self.posterior(h if c is None else torch.cat([h, c.to(h.dtype)], 1)).chunk(2, dim=1)

    def decode(self, z, c):
        return self.decoder(z if c is None else torch.cat([z, c.to(z.dtype)], 1))

    def log_likelihood(self, out, x, dtype=torch.float32):
        """log p(x|z) per patch, summed over its values, computed in ``dtype``."""
        out, x = out.to(dtype), x.to(dtype)
        if self.log_scale is None:
            return -nn.functional.binary_cross_entropy_with_logits(out, x, reduction="none").flatten(1).sum(1)
        log_scale = self.log_scale.to(dtype)
        return (-0.5 * ((x - out) / log_scale.exp()).pow(2) - log_scale - 0.5 * LOG_2PI).flatten(1).sum(1)

    def mean(self, out):
        return torch.sigmoid(out) if self.log_scale is None else out.clamp(0, 1)
