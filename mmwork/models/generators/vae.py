"""Convolutional variational autoencoder for 28x28 greyscale images (Kingma & Welling, 2014), and its
conditional form (Sohn et al., 2015) in the same class.

The likelihood is stated, not implied: ``"bernoulli"`` reads each pixel in [0, 1] as the probability
target of a Bernoulli (binary cross-entropy, as pythae and most VAE code do on greyscale images: a
"Bernoulli" on non-binary pixels is not a normalised density, so its nats compare only with the same
choice); ``"gaussian"`` is a normal density around the decoder's output with one learned scale. The
condition (a one-hot class, or any vector such as a text embedding: see
``mmwork.models.generators.text_condition``) enters the encoder at its first layer, as a learned embedding
broadcast over the image as extra channels, so the latent vector z need not carry it; and it enters
the decoder at every resolution (with z, and as extra channels of the 7x7 and 14x14 feature maps).
That alone did not stop z from carrying the class (a decoder fed another class's z still drew that
class), so the prior is conditional too, p(z|c) = N(m(c), diag s(c)^2) with m and s linear in c (Sohn
et al.'s prior network; N(0, I) at initialisation): sampling draws z where images of class c put it.
The KL term, against p(z|c), has a weight that rises linearly from 0 to 1 over the first
``warmup_epochs`` (KL warm-up, Bowman et al., 2016), so the latent units are used before the prior
pulls them in. ``architecture="pythae-mnist"`` swaps in pythae 0.1.2's MNIST networks layer for layer,
for side-by-side benchmarks (``benchmarks/bench_generators.py``).

>>> import torch
>>> from mmwork.models.generators import VAE
>>> images = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0))  # real ones: fashion_mnist()
>>> model = VAE(epochs=1, device="cpu").fit(images)
>>> model.sample(4, seed=1).shape
torch.Size([4, 1, 28, 28])
>>> model.importance_nll(images[:2], k=10).dtype
torch.float64
"""
from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import NonNegativeFloat, NonNegativeInt, PositiveInt, model_validator
from torch import nn

from mmwork.models.generators.base import GeneratorConfig
from mmwork.models.generators.vae_core import Likelihood, VAECore, conditional_prior, with_condition
from mmwork.models.layers import ConvAsMatmul, ConvTransposeAsMatmul
from mmwork.models.network import Preset


class VAEConfig(GeneratorConfig):
    """Parameters of :class:`VAE`."""

    batch_size: PositiveInt = 32
    """Examples per gradient step (and per forward pass when evaluating); 32 rather than the usual 128:
    the small network costs the same per image, and the 4x more steps per epoch are what made
    conditional samples recognisable after 3 epochs (on 10,000 images: 0.53 of them, against 0.32)."""
    latent: PositiveInt = 16
    """Size of the latent vector z."""
    channels: PositiveInt = 32
    """Channels of the first convolution (the second has twice as many)."""
    hidden: PositiveInt = 256
    """Width of the fully connected layer between the convolutions and the latent vector."""
    likelihood: Literal["bernoulli", "gaussian"] = "bernoulli"
    """p(x|z): "bernoulli" (binary cross-entropy on pixels in [0, 1]) or "gaussian" (one learned scale)."""
    condition_dim: NonNegativeInt = 0
    """Width of the condition vector (10 for one-hot Fashion-MNIST classes); 0 = unconditional."""
    condition_channels: NonNegativeInt = 8
    """Width of the learned condition embeddings broadcast as extra channels over the encoder's input
    image and the decoder's 7x7 and 14x14 feature maps (conditional models only; 0 = the condition
    enters only the linear layers and the prior)."""
    warmup_epochs: NonNegativeFloat = 1.0
    """Epochs over which the KL weight rises linearly from 0 to 1 (0 = no warm-up)."""
    architecture: Literal["default", "pythae-mnist"] = "default"
    """"default": the small network described in :class:`VAE`; "pythae-mnist": pythae 0.1.2's
    ``Encoder_Conv_VAE_MNIST`` / ``Decoder_Conv_AE_MNIST`` layer for layer (four 4x4 stride-2
    convolutions 128-256-512-1024 and three 3x3 transposed convolutions 512-256-1, with batch norm;
    17.2M parameters at latent 16; ``channels`` and ``hidden`` do not apply), unconditional, for
    side-by-side comparisons."""

    @model_validator(mode="after")
    def _pythae_is_unconditional(self):
        if self.architecture == "pythae-mnist" and self.condition_dim:
            raise ValueError("architecture 'pythae-mnist' is unconditional (pythae has no conditional VAE); "
                             "use architecture='default' with condition_dim")
        return self


class VAE(VAECore):
    """Encoder: conv 4x4 stride 2 (1 [+ condition_channels] -> channels) -> conv (-> 2 x channels) ->
    linear (-> hidden), ReLUs, then [features, condition] -> (mu, log variance). Decoder: [z,
    condition] -> hidden -> 2 x channels x 7 x 7 [+ condition_channels] -> transposed conv (-> channels
    x 14 x 14) [+ condition_channels] -> transposed conv -> 28 x 28. Trained with Adam on the negative
    ELBO (one latent sample per image); the seed drives initialisation, shuffling and the latent
    noise, so fits on CPU repeat exactly. Every result is a tensor on the model's device.

    Learned state: ``net_`` (the encoder and decoder, the conditional prior ``prior_net`` for
    conditional models, and ``log_scale`` for the Gaussian likelihood),
    ``history_`` (one dict per epoch: epoch, loss (the minimised objective per image, with the
    epoch's final KL weight ``beta``), recon and kl (nats per image), seconds, images_per_s and, with
    ``valid``, valid_loss: the negative ELBO per held-out image), ``best_epoch_``.
    """

    name = "vae"
    config_class = VAEConfig
    data_shape = (1, 28, 28)
    value_range = (0.0, 1.0)  # pixels
    example = ("image", "images")
    data_kind = "image"
    conditions = ("none", "class", "text")
    presets = (Preset("vae", "none", {"epochs": 20}, "convolutional VAE, Bernoulli likelihood"),
               Preset("cvae", "class", {"epochs": 20}, "conditional VAE on the one-hot class"),
               Preset("text-cvae", "text", {"epochs": 20},
                      "conditional VAE on a MiniLM embedding of a text (any text, not only a class name)"))

    def _build(self) -> None:
        self.net_ = (_PythaeMnistVAE if self.config.architecture == "pythae-mnist" else _ConvVAE)(self.config)
        self.net_.eval()  # batch norm (pythae-mnist) uses its running statistics outside training

    # -- training ------------------------------------------------------------------------------------


class _Likelihood(Likelihood):
    """p(x|z) on the decoder's output: Bernoulli logits, or Gaussian means with one learned scale."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        # the Gaussian's scale starts at a tenth of the pixel range and is learned with the weights
        self.log_scale = nn.Parameter(torch.tensor(math.log(0.1))) if config.likelihood == "gaussian" else None

    def prior(self, c, like):
        """p(z|c)'s mean and log variance: N(0, I) for unconditional models, as zeros shaped ``like``
        (so the general closed forms give this model's numbers)."""
        return torch.zeros_like(like), torch.zeros_like(like)


class _ConvVAE(_Likelihood):
    def __init__(self, config: VAEConfig):
        super().__init__(config)
        ch, hidden, cond = config.channels, config.hidden, config.condition_dim
        e = config.condition_channels if cond else 0
        self.encoder = nn.Sequential(
            nn.Conv2d(1 + e, ch, 4, 2, 1), nn.ReLU(),         # 28 -> 14
            nn.Conv2d(ch, 2 * ch, 4, 2, 1), nn.ReLU(),        # 14 -> 7
            nn.Flatten(), nn.Linear(2 * ch * 49, hidden), nn.ReLU())
        self.posterior = nn.Linear(hidden + cond, 2 * config.latent)
        self.decoder_in = nn.Sequential(
            nn.Linear(config.latent + cond, hidden), nn.ReLU(),
            nn.Linear(hidden, 2 * ch * 49), nn.ReLU(), nn.Unflatten(1, (2 * ch, 7, 7)))
        self.up1 = nn.ConvTranspose2d(2 * ch + e, ch, 4, 2, 1)   # 7 -> 14
        self.up2 = nn.ConvTranspose2d(ch + e, 1, 4, 2, 1)        # 14 -> 28: logits or means
        # one embedding per place the condition enters as channels (encoder input, 7x7, 14x14)
        self.embed = nn.Linear(cond, 3 * e) if cond and e else None
        # the conditional prior p(z|c) = N(m(c), diag s(c)^2) starts as N(0, I)
        self.prior_net = conditional_prior(cond, config.latent) if cond else None

    def prior(self, c, like):
        if c is None:
            return super().prior(c, like)
        mu, logvar = self.prior_net(c.float()).chunk(2, dim=1)
        return mu, logvar

    def _embed(self, c, dtype):
        return (None, None, None) if self.embed is None or c is None else self.embed(c.to(dtype)).chunk(3, dim=1)

    def encode(self, x, c):
        e, _, _ = self._embed(c, x.dtype)
        h = self.encoder(with_condition(x, e))
        mu, logvar = self.posterior(h if c is None else torch.cat([h, c.to(h.dtype)], 1)).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z, c):
        _, e7, e14 = self._embed(c, z.dtype)
        h = self.decoder_in(z if c is None else torch.cat([z, c.to(z.dtype)], 1))
        h = F.relu(self.up1(with_condition(h, e7)))
        return self.up2(with_condition(h, e14))


class _PythaeMnistVAE(_Likelihood):
    """pythae 0.1.2's ``Encoder_Conv_VAE_MNIST`` and ``Decoder_Conv_AE_MNIST``, the same layers in the
    same order and with the same parameters (its decoder ends in a sigmoid; here the sigmoid is folded
    into the Bernoulli likelihood's logits, the same model computed more stably). The three layers
    with at most 16 spatial positions run as plain matrix products on the CPU (``mmwork.models.layers.ConvAsMatmul``)."""

    def __init__(self, config: VAEConfig):
        super().__init__(config)
        block = lambda conv, n: [conv, nn.BatchNorm2d(n), nn.ReLU()]  # noqa: E731
        self.encoder = nn.Sequential(
            *block(nn.Conv2d(1, 128, 4, 2, padding=1), 128),          # 28 -> 14
            *block(nn.Conv2d(128, 256, 4, 2, padding=1), 256),        # 14 -> 7
            *block(ConvAsMatmul(256, 512, 4, 2, padding=1), 512),      # 7 -> 3
            *block(ConvAsMatmul(512, 1024, 4, 2, padding=1), 1024),    # 3 -> 1
            nn.Flatten())
        self.embedding, self.log_var = nn.Linear(1024, config.latent), nn.Linear(1024, config.latent)
        self.decoder = nn.Sequential(
            nn.Linear(config.latent, 1024 * 4 * 4), nn.Unflatten(1, (1024, 4, 4)),
            *block(ConvTransposeAsMatmul(1024, 512, 3, 2, padding=1), 512),                  # 4 -> 7
            *block(nn.ConvTranspose2d(512, 256, 3, 2, padding=1, output_padding=1), 256),   # 7 -> 14
            nn.ConvTranspose2d(256, 1, 3, 2, padding=1, output_padding=1))                  # 14 -> 28

    def encode(self, x, c):
        h = self.encoder(x)
        return self.embedding(h), self.log_var(h)

    def decode(self, z, c):
        return self.decoder(z)
