"""Convolutional VAE over log-mel patches (1, n_mels, frames), conditioned on the clip's category;
sound comes back through Griffin-Lim (:func:`~mmwork.models.data.audio.patches_to_audio`).

It follows :class:`~mmwork.models.generators.VAE`'s design (as of the generators' foundation) in a file of
its own, so that the image VAE can change without moving the sound one: the negative ELBO with one z
per patch, KL warm-up (Bowman et al., 2016), ELBO, importance-sampled NLL (Burda et al., 2016),
encode/decode/reconstruct/sample, the shared ``Training`` loop and checkpoints. The likelihood
defaults to ``"gaussian"`` (one learned scale around the decoder's output) because a patch holds
continuous dB levels in [0, 1], not pixel probabilities; its nats are those of a density over the
[0, 1]-scaled dB values of one patch (n_mels x frames numbers). The patch format (``mel``) and the
category names (``classes``) travel in the configuration, so a loaded model can turn names into
conditions and samples into sound on its own.

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
import time
from typing import Literal

import numpy as np
import torch
from pydantic import NonNegativeFloat, NonNegativeInt, PositiveInt, model_validator
from torch import nn

from mmwork.core.errors import MmworkError
from mmwork.models.data.audio import MelParams, patches_to_audio
from mmwork.models.generators.base import Generator, GeneratorConfig, Training
from mmwork.models.data.images import class_condition

LOG_2PI = math.log(2 * math.pi)


class AudioVAEConfig(GeneratorConfig):
    """Parameters of :class:`AudioVAE`."""

    mel: MelParams = MelParams()
    """The patch format (its n_mels and frames must be multiples of 8: three stride-2 convolutions)."""
    classes: list[str] = []
    """Category names by condition index; with classes, condition_dim defaults to their number."""
    latent: PositiveInt = 32
    """Size of the latent vector z."""
    channels: PositiveInt = 16
    """Channels of the first convolution (then 2x and 4x)."""
    hidden: PositiveInt = 256
    """Width of the fully connected layer between the convolutions and the latent vector."""
    condition_dim: NonNegativeInt = 0
    """Width of the condition vector (one-hot categories); 0 = unconditional."""
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


class AudioVAE(Generator):
    """Encoder: three conv 4x4 stride 2 layers (1 -> channels -> 2x -> 4x; n_mels x frames shrinks
    8-fold each way), ReLUs, linear -> hidden, then [features, condition] -> (mu, log variance).
    Decoder: the mirror image, from [z, condition]. Trained with Adam on the negative ELBO (one z per
    patch), the KL weight warming up over ``warmup_epochs``; fits on CPU repeat exactly for a seed.

    Learned state: ``net_`` (encoder, decoder, and ``log_scale`` for the Gaussian likelihood),
    ``history_`` (one dict per epoch: loss (the minimised objective per patch, with the epoch's final
    KL weight ``beta``), recon and kl (nats per patch), seconds, images_per_s (patches per second) and,
    with ``valid``, valid_loss: the negative ELBO per held-out patch), ``best_epoch_``.
    """

    name = "audio-vae"
    config_class = AudioVAEConfig
    value_range = (0.0, 1.0)  # scaled dB levels
    _state = ("net_",)

    @property
    def data_shape(self) -> tuple[int, int, int]:
        """(1, n_mels, frames) of the configured patch format."""
        return 1, self.config.mel.n_mels, self.config.mel.frames

    def _build(self) -> None:
        self.net_ = _ConvAudioVAE(self.config)

    # -- training ------------------------------------------------------------------------------------
    def _fit(self, x: torch.Tensor, c: torch.Tensor | None, training: Training) -> None:
        config, device = self.config, self.device_
        generator = torch.Generator(device).manual_seed(config.seed)
        optimizer = torch.optim.Adam(self.net_.parameters(), lr=config.lr)
        n, steps_per_epoch = len(x), math.ceil(len(x) / config.batch_size)
        warm_steps = config.warmup_epochs * steps_per_epoch
        for epoch in training.epochs(optimizer, generator):
            started = time.perf_counter()
            order = torch.randperm(n, generator=generator, device=device)
            sums = torch.zeros(3, device=device)  # objective, reconstruction and KL, summed over patches
            for i, start in enumerate(range(0, n, config.batch_size)):
                step = (epoch - 1) * steps_per_epoch + i + 1
                beta = min(1.0, step / warm_steps) if warm_steps else 1.0
                batch = order[start:start + config.batch_size]
                with training.autocast():
                    recon, kl = self._terms(x[batch], None if c is None else c[batch], generator)
                loss = (recon + beta * kl).mean()
                training.step(loss)
                sums += torch.stack([loss.detach() * len(batch), recon.detach().sum(), kl.detach().sum()])
            seconds = time.perf_counter() - started
            loss, recon, kl = (sums / n).tolist()
            training.end_epoch({"loss": loss, "recon": recon, "kl": kl, "beta": beta, "seconds": seconds,
                                "images_per_s": n / seconds})

    def _terms(self, x, c, generator: torch.Generator, dtype=torch.float32):
        """-log p(x|z, c) for one sampled z, and KL(q(z|x, c) || N(0, I)), per patch (nats): the prior
        is N(0, I) with or without a condition."""
        mu, logvar = (t.to(dtype) for t in self.net_.encode(x, c))
        noise = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=dtype)
        z = mu + noise * torch.exp(0.5 * logvar)
        recon = -self.net_.log_likelihood(self.net_.decode(z.to(x.dtype), c), x, dtype)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)
        return recon, kl

    @torch.no_grad()
    def _valid_loss(self, x: torch.Tensor, c: torch.Tensor | None) -> float:
        return -float(self._per_patch(self._elbo, x, c, seed=0).mean())

    # -- evaluation ----------------------------------------------------------------------------------
    @torch.no_grad()
    def elbo(self, x, condition=None, seed: int = 0) -> torch.Tensor:
        """The evidence lower bound per patch in nats (float64): log p(x|z, c) for one z drawn from
        q(z|x, c) with ``seed``, minus the closed-form KL(q(z|x, c) || N(0, I)) (the prior is N(0, I),
        not conditional). With a condition it bounds log p(x|c), a conditional likelihood, not log p(x)."""
        x, c = self._inputs(x, condition)
        return self._per_patch(self._elbo, x, c, seed)

    def _elbo(self, x, c, generator):
        recon, kl = self._terms(x, c, generator, dtype=torch.float64)
        return -(recon + kl)

    @torch.no_grad()
    def importance_nll(self, x, condition=None, k: int = 100, seed: int = 0) -> torch.Tensor:
        """-log p(x) per patch in nats (float64) for an unconditional model, the conditional -log
        p(x|c) given each patch's ``condition`` for a conditional one; importance-sampled with ``k``
        draws from q(z|x, c) (Burda et al., 2016): -logsumexp_i[log p(x|z_i, c) + log p(z_i) -
        log q(z_i|x, c)] + log k, an upper bound in expectation that tightens as k grows; state k with
        every figure (1000 is the usual choice)."""
        if not isinstance(k, int) or k < 1:
            raise MmworkError(f"k (importance samples per patch) must be a positive integer, got {k!r}")
        x, c = self._inputs(x, condition)
        chunk = max(1, 4096 // k)  # patches per pass, so that one pass decodes about 4096 latent vectors
        return self._per_patch(lambda xb, cb, g: self._importance_nll(xb, cb, k, g), x, c, seed, chunk)

    def _importance_nll(self, x, c, k: int, generator) -> torch.Tensor:
        mu, logvar = (t.double() for t in self.net_.encode(x, c))
        noise = torch.randn((k, *mu.shape), generator=generator, device=mu.device, dtype=torch.float64)
        z = mu + noise * torch.exp(0.5 * logvar)  # (k, patches, latent)
        flat = lambda t: t.expand(k, *t.shape).reshape(-1, *t.shape[1:])  # noqa: E731 - repeat per draw
        out = self.net_.decode(z.reshape(-1, z.shape[-1]).float(), None if c is None else flat(c))
        log_px = self.net_.log_likelihood(out, flat(x), torch.float64).view(k, -1)
        log_pz = (-0.5 * z.pow(2) - 0.5 * LOG_2PI).sum(-1)
        log_qz = (-0.5 * noise.pow(2) - 0.5 * logvar - 0.5 * LOG_2PI).sum(-1)
        return -(torch.logsumexp(log_px + log_pz - log_qz, dim=0) - math.log(k))

    def _per_patch(self, fn, x, c, seed: int, chunk: int | None = None) -> torch.Tensor:
        generator = torch.Generator(self.device_).manual_seed(seed)
        chunk = chunk or self.config.batch_size
        return torch.cat([fn(x[s:s + chunk], None if c is None else c[s:s + chunk], generator)
                          for s in range(0, len(x), chunk)])

    # -- encoding, decoding, sampling ----------------------------------------------------------------
    @torch.no_grad()
    def encode(self, x, condition=None) -> tuple[torch.Tensor, torch.Tensor]:
        """The posterior q(z|x) of each patch: its mean and log variance, each (N, latent)."""
        x, c = self._inputs(x, condition)
        mu, logvar = zip(*(self.net_.encode(x[s:s + self.config.batch_size],
                                            None if c is None else c[s:s + self.config.batch_size])
                           for s in range(0, len(x), self.config.batch_size)))
        return torch.cat(mu), torch.cat(logvar)

    @torch.no_grad()
    def decode(self, z, condition=None) -> torch.Tensor:
        """The decoder's mean patch for each latent vector (N, 1, n_mels, frames), values in [0, 1]."""
        self._check_fitted()
        z = torch.as_tensor(z, dtype=torch.float32, device=self.device_)
        if z.ndim != 2 or z.shape[1] != self.config.latent:
            raise MmworkError(f"latent vectors must have shape (N, {self.config.latent}), got {tuple(z.shape)}")
        c = self._check_condition(condition, len(z), broadcast=True)
        c = None if c is None else c.to(self.device_)
        return torch.cat([self.net_.mean(self.net_.decode(z[s:s + self.config.batch_size],
                                                          None if c is None else c[s:s + self.config.batch_size]))
                          for s in range(0, len(z), self.config.batch_size)])

    def reconstruct(self, x, condition=None) -> torch.Tensor:
        """Each patch decoded from its posterior mean."""
        return self.decode(self.encode(x, condition)[0], condition)

    @torch.no_grad()
    def sample(self, n: int, condition=None, seed: int = 0) -> torch.Tensor:
        """``n`` patches decoded from z ~ N(0, I) drawn with ``seed`` (the decoder's mean, not a noisy
        draw); ``condition`` is one vector for all or one row per patch."""
        z, c = self._draw_noise(n, self.config.latent, condition, seed)
        return self.decode(z, c)

    def _inputs(self, x, condition):
        self._check_fitted()
        x = self._check_data(x, "patches")
        c = self._check_condition(condition, len(x), broadcast=True)
        return x.to(self.device_), None if c is None else c.to(self.device_)

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
