"""Convolutional VAE over log-mel patches (1, n_mels, frames), conditioned on the clip's category;
sound comes back through Griffin-Lim (:func:`~mmwork.models.data.audio.patches_to_audio`).

It shares :class:`~mmwork.models.generators.VAE`'s network-agnostic core
(:mod:`mmwork.models.generators.vae_core`: the negative ELBO with one z per patch, KL warm-up, ELBO,
importance-sampled and marginal NLL, encode/decode/reconstruct/sample, the shared ``Training`` loop
and checkpoints) and keeps only its networks. Conditioned as the image VAE is (issue 21): the
category enters the encoder's input and every decoder resolution as learned constant channels
(``condition_channels``), and the prior is conditional, p(z|c) (``conditional_prior``), so samples
are drawn where patches of category c put z. The likelihood defaults to ``"gaussian"`` (one learned
scale around the decoder's output) because a patch holds continuous dB levels in [0, 1], not pixel
probabilities; its nats are those of a density over the [0, 1]-scaled dB values of one patch
(n_mels x frames numbers). The patch format (``mel``) and the category names (``classes``) travel in
the configuration, so a loaded model can turn names into conditions and samples into sound on its own.
The defaults are sized for 2 CPU cores and a wall-clock ``time_budget`` (``epochs`` is only a cap).

>>> import torch
>>> from mmwork.models.generators import AudioVAE
>>> from mmwork.models.data import MelParams
>>> mel = MelParams(n_mels=16, frames=16)
>>> patches = torch.rand(32, 1, 16, 16, generator=torch.Generator().manual_seed(0))  # real ones: audio_clips()
>>> model = AudioVAE(mel=mel, classes=["a", "b"], epochs=1, channels=4, hidden=16, device="cpu")
>>> model = model.fit(patches, model.condition(["a", "b"] * 16))
>>> model.sample(3, condition=model.condition("b"), seed=1).shape
torch.Size([3, 1, 16, 16])
>>> [len(y) for y in model.sample_audio(2, condition=model.condition("a"))]     # doctest: +SKIP
[2048, 2048]
"""
from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from pydantic import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, model_validator
from torch import nn

from mmwork.core.errors import MmworkError
from mmwork.models.data.audio import MelParams, patches_to_audio
from mmwork.models.generators.base import GeneratorConfig
from mmwork.models.generators.vae_core import Likelihood, VAECore, conditional_prior, with_condition
from mmwork.models.network import Preset
from mmwork.models.data.images import class_condition


class AudioVAEConfig(GeneratorConfig):
    """Parameters of :class:`AudioVAE`."""

    mel: MelParams = MelParams()
    """The patch format (its n_mels and frames must be multiples of 8: three stride-2 convolutions)."""
    classes: list[str] = []
    """Category names by condition index; with classes, condition_dim defaults to their number."""
    epochs: PositiveInt = 200
    """Maximum passes over the training patches: a cap; give ``time_budget`` (the demo: 30 s) and
    training stops after the last epoch that fits, keeping the best validated one. On instrument-samples
    early stopping came first: after 45-50 epochs (seeds 0-2, 33-57 s on 1 thread at load 3-6)."""
    patience: PositiveInt = 10
    """Epochs without a lower validation loss before training stops (3 stopped runs on instrument-samples'
    56 validation patches at epoch 14-21, before the samples differed by category)."""
    batch_size: PositiveInt = 16
    """Patches per gradient step: 16, not 128, because a data set of a few hundred patches gave 3
    steps an epoch at 128 (16 steps at 16); the network costs the same per patch."""
    lr: PositiveFloat = 2e-3
    """Adam learning rate."""
    latent: PositiveInt = 16
    """Size of the latent vector z."""
    channels: PositiveInt = 8
    """Channels of the first convolution (then 2x and 4x). 8 with ``hidden`` 128 (not 16 and 256): on
    instrument-samples (259 training patches, 40 epochs, seed 0, 1 thread) the validation -ELBO was
    -3,856 nats per patch against -3,686, at 1.8 s an epoch against 3.4 s."""
    hidden: PositiveInt = 128
    """Width of the fully connected layer between the convolutions and the latent vector."""
    condition_dim: NonNegativeInt = 0
    """Width of the condition vector (one-hot categories); 0 = unconditional."""
    likelihood: Literal["bernoulli", "gaussian"] = "gaussian"
    """p(x|z): "gaussian" (one learned scale; the default for dB levels) or "bernoulli"."""
    warmup_epochs: NonNegativeFloat = 20.0
    """Epochs over which the KL weight rises linearly from 0 to 1. 20, not 5: with the other defaults
    and a 45 CPU-second budget (early stopping after 45-50 epochs) on instrument-samples, samples
    requested for the 14 categories in turn and heard through Griffin-Lim were recognised at 0.179,
    0.161, 0.196 (seeds 0-2, 56 each; chance 1/14 = 0.071) against 0.125, 0.125, 0.196 at 5; samples
    for the validation clips' own categories at 0.232, 0.125, 0.232 against 0.268, 0.143, 0.179."""
    conditional_prior: bool = True
    """With a condition, learn the prior p(z|c) = N(m(c), diag s(c)^2) (linear in c, N(0, I) at
    initialisation) as the image VAE does, so samples are drawn where patches of category c put z
    (False: the prior N(0, I)). With ``condition_channels`` 8 (both off before issue 21): on
    instrument-samples' validation clips, samples requested for the 14 categories in turn (8 each) were
    recognised by the audio classifier at 0.170 and 0.170 (seeds 0, 1; 40 epochs, patches read
    directly), against 0.116 and 0.107 without (chance 1/14 = 0.071)."""
    condition_channels: NonNegativeInt = 8
    """Width of learned condition embeddings broadcast as extra channels over the encoder's input and
    the decoder's feature maps before each transposed convolution (as the image VAE does), so z need
    not carry the category; 0 = the condition enters only the linear layers (and the prior)."""

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


class AudioVAE(VAECore):
    """Encoder: three conv 4x4 stride 2 layers (1 [+ condition_channels] -> channels -> 2x -> 4x;
    n_mels x frames shrinks 8-fold each way), ReLUs, linear -> hidden, then [features, condition] ->
    (mu, log variance). Decoder: the mirror image, from [z, condition], the condition's channels
    joining the feature maps before each of the three transposed convolutions; the prior p(z|c) is
    learned (``conditional_prior``). Trained with Adam on the negative ELBO (one z per
    patch), the KL weight warming up over ``warmup_epochs``; fits on CPU repeat exactly for a seed.

    Learned state: ``net_`` (encoder, decoder, and ``log_scale`` for the Gaussian likelihood),
    ``history_`` (one dict per epoch: loss (the minimised objective per patch, with the epoch's final
    KL weight ``beta``), recon and kl (nats per patch), seconds, images_per_s (patches per second) and,
    with ``valid``, valid_loss: the negative ELBO per held-out patch), ``best_epoch_``.
    """

    name = "audio-vae"
    config_class = AudioVAEConfig
    value_range = (0.0, 1.0)  # scaled dB levels
    example = ("patch", "patches")
    data_kind = "audio"
    conditions = ("class", "none")
    presets = (Preset("audio-vae", "class", {}, "VAE on log-mel patches, conditioned on the category"),)

    @classmethod
    def _params_from_data(cls, condition, classes, condition_dim, mel) -> dict:
        # the category names come along only for a class condition (with them, condition_dim follows)
        params = {"classes": list(classes)} if condition == "class" else {"condition_dim": 0}
        return params | ({} if mel is None else {"mel": mel})

    @property
    def data_shape(self) -> tuple[int, int, int]:
        """(1, n_mels, frames) of the configured patch format."""
        return 1, self.config.mel.n_mels, self.config.mel.frames

    def _build(self) -> None:
        self.net_ = _ConvAudioVAE(self.config)

    # -- training ------------------------------------------------------------------------------------
    # -- conditions and sound ----------------------------------------------------------------------
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


class _ConvAudioVAE(Likelihood):
    """The interface of vae.py's network (encode, decode, log_likelihood, mean) for any patch size."""

    def __init__(self, config: AudioVAEConfig):
        super().__init__()
        ch, hidden, cond = config.channels, config.hidden, config.condition_dim
        e = config.condition_channels if cond else 0
        h, w = config.mel.n_mels // 8, config.mel.frames // 8
        self.encoder = nn.Sequential(
            nn.Conv2d(1 + e, ch, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(ch, 2 * ch, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(2 * ch, 4 * ch, 4, 2, 1), nn.ReLU(),
            nn.Flatten(), nn.Linear(4 * ch * h * w, hidden), nn.ReLU())
        self.posterior = nn.Linear(hidden + cond, 2 * config.latent)
        self.decoder = nn.Sequential(
            nn.Linear(config.latent + cond, hidden), nn.ReLU(),
            nn.Linear(hidden, 4 * ch * h * w), nn.ReLU(), nn.Unflatten(1, (4 * ch, h, w)))
        # three upsampling steps; with condition channels each one also sees the condition
        self.up = nn.ModuleList([nn.ConvTranspose2d(4 * ch + e, 2 * ch, 4, 2, 1),
                                 nn.ConvTranspose2d(2 * ch + e, ch, 4, 2, 1),
                                 nn.ConvTranspose2d(ch + e, 1, 4, 2, 1)])
        self.log_scale = nn.Parameter(torch.tensor(math.log(0.1))) if config.likelihood == "gaussian" else None
        # created after the networks, and only when asked for: a network without them keeps its initialisation draws
        self.prior_net = conditional_prior(cond, config.latent) if cond and config.conditional_prior else None
        # one embedding per place the condition enters as channels (encoder input, then each upsampling)
        self.embed = nn.Linear(cond, 4 * e) if e else None

    def prior(self, c, like):
        if self.prior_net is None or c is None:
            return None  # N(0, I)
        return self.prior_net(c.float()).chunk(2, dim=1)

    def _embed(self, c, dtype):
        return (None,) * 4 if self.embed is None or c is None else self.embed(c.to(dtype)).chunk(4, dim=1)

    def encode(self, x, c):
        h = self.encoder(with_condition(x, self._embed(c, x.dtype)[0]))
        return self.posterior(h if c is None else torch.cat([h, c.to(h.dtype)], 1)).chunk(2, dim=1)

    def decode(self, z, c):
        embedded = self._embed(c, z.dtype)[1:]
        h = self.decoder(z if c is None else torch.cat([z, c.to(z.dtype)], 1))
        for i, (up, e) in enumerate(zip(self.up, embedded)):
            h = up(with_condition(h, e))
            h = torch.relu(h) if i < len(self.up) - 1 else h
        return h
