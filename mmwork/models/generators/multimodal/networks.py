"""One encoder and one decoder per modality kind, and each kind's likelihood: pure torch (this file
imports only torch and math, so a peer's runner can load it by file path and train its models on the
very same networks).

Kinds and their shapes (one example):

- "image" (C, H, W), H = W in {28, 32, 64}: stride-2 4x4 convolutions (2 of them, 3 at 64) and a
  linear layer; the decoder mirrors them with transposed convolutions and emits Bernoulli logits
  (pixels in [0, 1] are the targets of a per-pixel binary cross-entropy).
- "sequence" (T, D), e.g. MFCC frames: two 1-d convolutions over time (the second of stride 2) and a
  linear layer; the decoder maps z to T frames (linear, then two 1-d convolutions) and emits the means
  of a unit-variance Gaussian (the frames are expected standardised).
- "tokens" (L,), character ids with 0 = padding: an embedding, then the sequence encoder; the decoder
  is non-autoregressive and emits logits (N, L, V) of an independent categorical per position
  (padding included, so the length is generated too).
- "vector" (D,): a two-layer MLP each way; unit-variance Gaussian means (standardised features).

Every encoder is ``body`` (x -> features of width ``features``) then ``head`` (features -> mean and
log variance of q(z|x)); a classifier can reuse ``body`` with its own linear head.

>>> import torch
>>> enc = make_encoder("image", (1, 28, 28), latent=8)
>>> dec = make_decoder("image", (1, 28, 28), latent=8)
>>> x = torch.rand(4, 1, 28, 28)
>>> mu, logvar = enc(x)
>>> out = dec(mu)
>>> tuple(out.shape), tuple(log_likelihood("image", out, x).shape)
((4, 1, 28, 28), (4,))
>>> tuple(make_decoder("tokens", (9,), latent=8, vocab_size=30)(mu).shape)
(4, 9, 30)
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

KINDS = ("image", "sequence", "tokens", "vector")
IMAGE_SIZES = {28: 2, 32: 2, 64: 3}  # image side -> stride-2 convolutions (down to 7x7 or 8x8)
LOG_2PI = math.log(2 * math.pi)


class Encoder(nn.Module):
    """``body`` (x -> features) then ``head`` (features -> mean and log variance of q(z|x))."""

    def __init__(self, body: nn.Module, features: int, latent: int):
        super().__init__()
        self.body, self.features = body, features
        self.head = nn.Linear(features, 2 * latent)

    def forward(self, x):
        mu, logvar = self.head(self.body(x)).chunk(2, dim=-1)
        return mu, logvar


class Transpose(nn.Module):
    """(N, A, B) -> (N, B, A): between time-major data and channel-major 1-d convolutions."""

    def forward(self, x):
        return x.transpose(1, 2)


def _conv1d_body(channels: int, length: int, width: int, hidden: int) -> tuple[list[nn.Module], int]:
    """Layers over (N, channels, length): conv 3 -> conv 4 stride 2 -> flatten -> linear."""
    half = (length + 2 - 4) // 2 + 1
    return [nn.Conv1d(channels, width, 3, padding=1), nn.ReLU(),
            nn.Conv1d(width, 2 * width, 4, 2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(2 * width * half, hidden), nn.ReLU()], hidden


def _conv1d_head(latent: int, channels: int, length: int, width: int, hidden: int) -> list[nn.Module]:
    """Layers from z to (N, channels, length): linear -> (width, length) -> conv 3 -> conv 3."""
    return [nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, width * length), nn.ReLU(),
            nn.Unflatten(1, (width, length)), nn.Conv1d(width, width, 3, padding=1), nn.ReLU(),
            nn.Conv1d(width, channels, 3, padding=1)]


def _image_channels(shape, width: int) -> tuple[int, int, list[int]]:
    c, h, w = shape
    if h != w or h not in IMAGE_SIZES:
        raise ValueError(f"image shape must be (C, S, S) with S in {sorted(IMAGE_SIZES)}, got {tuple(shape)}")
    stages = IMAGE_SIZES[h]
    channels = [c] + [width * min(2 ** i, 2) for i in range(stages)]   # C, w, 2w[, 2w]
    return stages, h // 2 ** stages, channels


def make_encoder(kind: str, shape, latent: int, vocab_size: int | None = None, width: int = 32,
                 hidden: int = 128) -> Encoder:
    """The encoder of one modality: ``forward(x) -> (mu, logvar)``, each (N, latent)."""
    shape = tuple(int(s) for s in shape)
    if kind == "image":
        stages, side, ch = _image_channels(shape, width)
        layers = [m for i in range(stages) for m in (nn.Conv2d(ch[i], ch[i + 1], 4, 2, padding=1), nn.ReLU())]
        body = nn.Sequential(*layers, nn.Flatten(), nn.Linear(ch[-1] * side * side, hidden), nn.ReLU())
        return Encoder(body, hidden, latent)
    if kind == "sequence":
        length, channels = shape
        layers, features = _conv1d_body(channels, length, width, hidden)
        return Encoder(nn.Sequential(Transpose(), *layers), features, latent)
    if kind == "tokens":
        if not vocab_size:
            raise ValueError("a tokens encoder needs vocab_size")
        (length,) = shape
        layers, features = _conv1d_body(width, length, width, hidden)
        return Encoder(nn.Sequential(nn.Embedding(vocab_size, width, padding_idx=0), Transpose(), *layers),
                       features, latent)
    if kind == "vector":
        (dim,) = shape
        return Encoder(nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()),
                       hidden, latent)
    raise ValueError(f"unknown modality kind {kind!r}; choose from {', '.join(KINDS)}")


def make_decoder(kind: str, shape, latent: int, vocab_size: int | None = None, width: int = 32,
                 hidden: int = 128) -> nn.Module:
    """The decoder of one modality: ``forward(z)`` -> image logits (N, C, H, W), sequence means
    (N, T, D), token logits (N, L, V) or vector means (N, D)."""
    shape = tuple(int(s) for s in shape)
    if kind == "image":
        stages, side, ch = _image_channels(shape, width)
        ch = ch[::-1]  # 2w[, 2w], w, C
        layers = [nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, ch[0] * side * side), nn.ReLU(),
                  nn.Unflatten(1, (ch[0], side, side))]
        for i in range(stages):
            layers += [nn.ConvTranspose2d(ch[i], ch[i + 1], 4, 2, padding=1)] + [nn.ReLU()] * (i < stages - 1)
        return nn.Sequential(*layers)
    if kind == "sequence":
        length, channels = shape
        return nn.Sequential(*_conv1d_head(latent, channels, length, width, hidden), Transpose())
    if kind == "tokens":
        if not vocab_size:
            raise ValueError("a tokens decoder needs vocab_size")
        (length,) = shape
        return nn.Sequential(*_conv1d_head(latent, width, length, width, hidden), nn.ReLU(),
                             nn.Conv1d(width, vocab_size, 1), Transpose())
    if kind == "vector":
        (dim,) = shape
        return nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                             nn.Linear(hidden, dim))
    raise ValueError(f"unknown modality kind {kind!r}; choose from {', '.join(KINDS)}")


def log_likelihood(kind: str, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p(x|z) per example (N,), in nats, from the decoder's output ``out``: Bernoulli for images,
    categorical per position for tokens, unit-variance Gaussian for sequences and vectors."""
    if kind == "image":
        return -F.binary_cross_entropy_with_logits(out, x.to(out.dtype), reduction="none").flatten(1).sum(1)
    if kind == "tokens":
        return -F.cross_entropy(out.transpose(1, 2), x.long(), reduction="none").sum(1)
    if kind in ("sequence", "vector"):
        return (-0.5 * (x.to(out.dtype) - out).pow(2) - 0.5 * LOG_2PI).flatten(1).sum(1)
    raise ValueError(f"unknown modality kind {kind!r}; choose from {', '.join(KINDS)}")


def mean(kind: str, out: torch.Tensor) -> torch.Tensor:
    """The decoder's most likely value: pixel probabilities in [0, 1], token ids (argmax, long), or
    the Gaussian's mean."""
    if kind == "image":
        return torch.sigmoid(out)
    if kind == "tokens":
        return out.argmax(-1)
    return out


def n_values(kind: str, shape) -> int:
    """How many values one example's likelihood sums over (the size MultiVae's likelihood rescaling
    divides by): every pixel or frame value; one per token position."""
    return math.prod(int(s) for s in shape)
