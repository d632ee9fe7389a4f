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
import time
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import NonNegativeFloat, NonNegativeInt, PositiveInt, model_validator
from torch import nn

from mmwork.core.errors import MmworkError
from mmwork.models.generators.base import Generator, GeneratorConfig, Training

LOG_2PI = math.log(2 * math.pi)


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


class VAE(Generator):
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
    _state = ("net_",)

    def _build(self) -> None:
        self.net_ = (_PythaeMnistVAE if self.config.architecture == "pythae-mnist" else _ConvVAE)(self.config)
        self.net_.eval()  # batch norm (pythae-mnist) uses its running statistics outside training

    # -- training ------------------------------------------------------------------------------------
    def _fit(self, x: torch.Tensor, c: torch.Tensor | None, training: Training) -> None:
        config, device = self.config, self.device_
        generator = torch.Generator(device).manual_seed(config.seed)
        optimizer = torch.optim.Adam(self.net_.parameters(), lr=config.lr)
        n, steps_per_epoch = len(x), math.ceil(len(x) / config.batch_size)
        warm_steps = config.warmup_epochs * steps_per_epoch
        for epoch in training.epochs(optimizer, generator):
            started = time.perf_counter()
            self.net_.train()
            order = torch.randperm(n, generator=generator, device=device)
            # one gather per epoch, then contiguous slices: cheaper than gathering every batch
            xs, cs = x[order], None if c is None else c[order]
            sums = torch.zeros(3, device=device)  # objective, reconstruction and KL, summed over images
            for i, start in enumerate(range(0, n, config.batch_size)):
                step = (epoch - 1) * steps_per_epoch + i + 1
                beta = min(1.0, step / warm_steps) if warm_steps else 1.0
                end = start + config.batch_size
                with training.autocast():
                    recon, kl = self._terms(xs[start:end], None if cs is None else cs[start:end], generator)
                loss = (recon + beta * kl).mean()
                training.step(loss)
                sums += torch.stack([loss.detach() * len(recon), recon.detach().sum(), kl.detach().sum()])
            self.net_.eval()
            seconds = time.perf_counter() - started
            loss, recon, kl = (sums / n).tolist()
            training.end_epoch({"loss": loss, "recon": recon, "kl": kl, "beta": beta, "seconds": seconds,
                                "images_per_s": n / seconds})

    def _terms(self, x, c, generator: torch.Generator, dtype=torch.float32):
        """-log p(x|z, c) for one sampled z, and KL(q(z|x, c) || p(z|c)), per image (nats); without a
        condition, p(z) = N(0, I)."""
        mu, logvar = (t.to(dtype) for t in self.net_.encode(x, c))
        noise = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=dtype)
        z = mu + noise * torch.exp(0.5 * logvar)
        recon = -self.net_.log_likelihood(self.net_.decode(z.to(x.dtype), c), x, dtype)
        prior_mu, prior_logvar = (t.to(dtype) for t in self._prior(c, mu))
        kl = 0.5 * (prior_logvar - logvar + (logvar.exp() + (mu - prior_mu).pow(2)) / prior_logvar.exp() - 1).sum(1)
        return recon, kl

    @torch.no_grad()
    def _valid_loss(self, x: torch.Tensor, c: torch.Tensor | None) -> float:
        return -float(self._per_image(self._elbo, x, c, seed=0).mean())

    # -- evaluation ----------------------------------------------------------------------------------
    @torch.no_grad()
    def elbo(self, x, condition=None, seed: int = 0) -> torch.Tensor:
        """The evidence lower bound per image in nats (float64): log p(x|z, c) for one z drawn from
        q(z|x, c) with ``seed``, minus the closed-form KL(q(z|x, c) || p(z|c)), against the model's own
        prior: N(0, I) for an unconditional model, the learned conditional prior p(z|c) = N(m(c), diag
        s(c)^2) for a conditional one. So it bounds log p(x) for an unconditional model and log p(x|c),
        a conditional likelihood, for a conditional one: never compare the two as one quantity (for a
        conditional model's log p(x) over discrete classes see :meth:`marginal_nll`)."""
        x, c = self._inputs(x, condition)
        return self._per_image(self._elbo, x, c, seed)

    def _elbo(self, x, c, generator):
        recon, kl = self._terms(x, c, generator, dtype=torch.float64)
        return -(recon + kl)

    @torch.no_grad()
    def importance_nll(self, x, condition=None, k: int = 100, seed: int = 0) -> torch.Tensor:
        """-log p(x) per image in nats (float64) for an unconditional model, and -log p(x|c), the
        conditional likelihood of each image given its ``condition``, for a conditional one;
        importance-sampled with ``k`` draws from q(z|x, c) (Burda et al., 2016):
        -logsumexp_i[log p(x|z_i, c) + log p(z_i|c) - log q(z_i|x, c)] + log k, an upper bound in
        expectation that tightens as k grows; state k with every figure (1000 is the usual choice).
        -log p(x|c) is not -log p(x): with 10 equally likely classes, Bayes' rule gives -log p(x) =
        -log p(x|c) + log 10 + log p(c|x), up to log 10 = 2.30 nats more than -log p(x|c) for an image
        whose class the model has no doubt about; :meth:`marginal_nll` estimates -log p(x) itself."""
        if not isinstance(k, int) or k < 1:
            raise MmworkError(f"k (importance samples per image) must be a positive integer, got {k!r}")
        x, c = self._inputs(x, condition)
        chunk = max(1, 4096 // k)  # images per pass, so that one pass decodes about 4096 latent vectors
        return self._per_image(lambda xb, cb, g: self._importance_nll(xb, cb, k, g), x, c, seed, chunk)

    @torch.no_grad()
    def marginal_nll(self, x, conditions, weights=None, k: int = 100, seed: int = 0) -> torch.Tensor:
        """-log p(x) per image in nats (float64) for a model conditioned on a discrete variable, the
        condition summed out: -log sum_j w_j p(x|c_j), with ``conditions`` the rows c_j (e.g.
        ``one_hot(range(10), 10)``) and ``weights`` their prior probabilities p(c_j) (equal by
        default; Fashion-MNIST's classes are). Each p(x|c_j) is :meth:`importance_nll`'s ``k``-draw
        estimate (the same ``seed`` for every row); the estimates are unbiased for p(x|c_j), so the
        result is, like theirs, an upper bound on -log p(x) in expectation. It costs one
        :meth:`importance_nll` per row. This is the figure to set beside an unconditional model's
        -log p(x).

        >>> import torch
        >>> from mmwork.models.generators import VAE
        >>> from mmwork.models.data import one_hot
        >>> x = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(0))
        >>> cvae = VAE(epochs=1, condition_dim=3, channels=4, hidden=8, device="cpu").fit(x, one_hot(torch.arange(16) % 3, 3))
        >>> given = cvae.importance_nll(x[:2], one_hot([0, 1], 3), k=5)
        >>> bool((cvae.marginal_nll(x[:2], one_hot(range(3), 3), k=5) <= given + torch.log(torch.tensor(3.0))).all())
        True
        """
        self._check_fitted()
        if not self.config.condition_dim:
            raise MmworkError("marginal_nll sums a condition out: this VAE is unconditional; use importance_nll")
        rows = torch.as_tensor(np.asarray(conditions, dtype=np.float32) if not isinstance(conditions, torch.Tensor)
                               else conditions).float()
        if rows.ndim != 2 or len(rows) == 0 or rows.shape[1] != self.config.condition_dim:
            raise MmworkError(f"conditions must be the rows c_j to sum over, shape (J, {self.config.condition_dim}), "
                              f"got {tuple(rows.shape)}")
        w = torch.full((len(rows),), 1 / len(rows), dtype=torch.float64) if weights is None else \
            torch.as_tensor(np.asarray(weights, dtype=np.float64))
        if w.shape != (len(rows),) or (w < 0).any() or abs(float(w.sum()) - 1) > 1e-6:
            raise MmworkError(f"weights must be {len(rows)} probabilities p(c_j) summing to 1, got {w.tolist()}")
        n = len(self._check_data(x, "images"))
        nll = torch.stack([self.importance_nll(x, row.expand(n, -1), k=k, seed=seed) for row in rows])  # (J, N)
        return -torch.logsumexp(torch.log(w.to(nll.device))[:, None] - nll, dim=0)

    def _importance_nll(self, x, c, k: int, generator) -> torch.Tensor:
        mu, logvar = (t.double() for t in self.net_.encode(x, c))
        noise = torch.randn((k, *mu.shape), generator=generator, device=mu.device, dtype=torch.float64)
        z = mu + noise * torch.exp(0.5 * logvar)  # (k, images, latent)
        flat = lambda t: t.expand(k, *t.shape).reshape(-1, *t.shape[1:])  # noqa: E731 - repeat per draw
        out = self.net_.decode(z.reshape(-1, z.shape[-1]).float(), None if c is None else flat(c))
        log_px = self.net_.log_likelihood(out, flat(x), torch.float64).view(k, -1)
        prior_mu, prior_logvar = (t.double() for t in self._prior(c, mu))
        log_pz = (-0.5 * (z - prior_mu).pow(2) / prior_logvar.exp() - 0.5 * prior_logvar - 0.5 * LOG_2PI).sum(-1)
        log_qz = (-0.5 * noise.pow(2) - 0.5 * logvar - 0.5 * LOG_2PI).sum(-1)
        return -(torch.logsumexp(log_px + log_pz - log_qz, dim=0) - math.log(k))

    def _per_image(self, fn, x, c, seed: int, chunk: int | None = None) -> torch.Tensor:
        generator = torch.Generator(self.device_).manual_seed(seed)
        chunk = chunk or self.config.batch_size
        return torch.cat([fn(x[s:s + chunk], None if c is None else c[s:s + chunk], generator)
                          for s in range(0, len(x), chunk)])

    # -- encoding, decoding, sampling ----------------------------------------------------------------
    @torch.no_grad()
    def encode(self, x, condition=None) -> tuple[torch.Tensor, torch.Tensor]:
        """The posterior q(z|x) of each image: its mean and log variance, each (N, latent)."""
        x, c = self._inputs(x, condition)
        mu, logvar = zip(*(self.net_.encode(x[s:s + self.config.batch_size],
                                            None if c is None else c[s:s + self.config.batch_size])
                           for s in range(0, len(x), self.config.batch_size)))
        return torch.cat(mu), torch.cat(logvar)

    @torch.no_grad()
    def decode(self, z, condition=None) -> torch.Tensor:
        """The decoder's mean image for each latent vector (N, 1, 28, 28), pixels in [0, 1]."""
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
        """Each image decoded from its posterior mean."""
        return self.decode(self.encode(x, condition)[0], condition)

    @torch.no_grad()
    def prior(self, condition=None) -> tuple[torch.Tensor, torch.Tensor]:
        """The prior p(z|c) of each condition row (one vector or (N, condition_dim)): its mean and log
        variance, each (N, latent); for an unconditional model (no condition) N(0, I), one row."""
        self._check_fitted()
        if condition is not None and isinstance(condition, (torch.Tensor, np.ndarray)) and condition.ndim == 1:
            condition = condition[None]
        c = self._check_condition(condition, 1 if condition is None else len(condition))
        like = torch.zeros(1 if c is None else len(c), self.config.latent, device=self.device_)
        return self._prior(None if c is None else c.to(self.device_), like)

    def _prior(self, c, like):
        # networks without a prior of their own (e.g. AudioVAE's) have the standard normal one
        prior = getattr(self.net_, "prior", None)
        return prior(c, like) if prior is not None else (torch.zeros_like(like), torch.zeros_like(like))

    @torch.no_grad()
    def sample(self, n: int, condition=None, seed: int = 0) -> torch.Tensor:
        """``n`` images decoded from z ~ p(z|c) drawn with ``seed`` (the decoder's mean image, not a
        noisy pixel draw); ``condition`` is one vector for all or one row per image."""
        noise, c = self._draw_noise(n, self.config.latent, condition, seed)
        mu, logvar = self._prior(c, noise)
        return self.decode(mu + noise * torch.exp(0.5 * logvar), c)

    def _inputs(self, x, condition):
        self._check_fitted()
        x = self._check_data(x, "images")
        c = self._check_condition(condition, len(x), broadcast=True)
        return x.to(self.device_), None if c is None else c.to(self.device_)


class _Likelihood(nn.Module):
    """p(x|z) on the decoder's output: Bernoulli logits, or Gaussian means with one learned scale."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        # the Gaussian's scale starts at a tenth of the pixel range and is learned with the weights
        self.log_scale = nn.Parameter(torch.tensor(math.log(0.1))) if config.likelihood == "gaussian" else None

    def log_likelihood(self, out, x, dtype=torch.float32):
        """log p(x|z) per image, summed over pixels, computed in ``dtype``."""
        out, x = out.to(dtype), x.to(dtype)
        if self.log_scale is None:
            return -F.binary_cross_entropy_with_logits(out, x, reduction="none").flatten(1).sum(1)
        log_scale = self.log_scale.to(dtype)
        return (-0.5 * ((x - out) / log_scale.exp()).pow(2) - log_scale - 0.5 * LOG_2PI).flatten(1).sum(1)

    def mean(self, out):
        return torch.sigmoid(out) if self.log_scale is None else out.clamp(0, 1)

    def prior(self, c, like):
        """p(z|c)'s mean and log variance: N(0, I) for unconditional models (zeros shaped ``like``)."""
        return torch.zeros_like(like), torch.zeros_like(like)


def _with_condition(h, e):
    """Feature maps ``h`` (N, C, H, W) with the condition embedding ``e`` (N, E) as E constant channels."""
    if e is None:
        return h
    return torch.cat([h, e.to(h.dtype)[:, :, None, None].expand(-1, -1, *h.shape[2:])], 1)


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
        self.prior_net = nn.Linear(cond, 2 * config.latent) if cond else None
        if self.prior_net is not None:
            nn.init.zeros_(self.prior_net.weight), nn.init.zeros_(self.prior_net.bias)

    def prior(self, c, like):
        if c is None:
            return super().prior(c, like)
        mu, logvar = self.prior_net(c.float()).chunk(2, dim=1)
        return mu, logvar

    def _embed(self, c, dtype):
        return (None, None, None) if self.embed is None or c is None else self.embed(c.to(dtype)).chunk(3, dim=1)

    def encode(self, x, c):
        e, _, _ = self._embed(c, x.dtype)
        h = self.encoder(_with_condition(x, e))
        mu, logvar = self.posterior(h if c is None else torch.cat([h, c.to(h.dtype)], 1)).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z, c):
        _, e7, e14 = self._embed(c, z.dtype)
        h = self.decoder_in(z if c is None else torch.cat([z, c.to(z.dtype)], 1))
        h = F.relu(self.up1(_with_condition(h, e7)))
        return self.up2(_with_condition(h, e14))


class _GemmConv2d(nn.Conv2d):
    """``nn.Conv2d`` (same parameters, same function) computed on the CPU as one matrix product over
    unfolded patches: for layers with few output positions (3x3, 1x1) this was 2-10x faster than
    torch 2.13's oneDNN kernels on the 2-core AVX2 machine (benchmarks/bench_generators.py)."""

    def forward(self, x):
        if x.device.type != "cpu":
            return super().forward(x)
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        rows, cols = (x.shape[2] + 2 * ph - kh) // sh + 1, (x.shape[3] + 2 * pw - kw) // sw + 1
        patches = F.unfold(x, self.kernel_size, padding=self.padding, stride=self.stride)  # (N, C*k*k, L)
        out = F.linear(patches.transpose(1, 2), self.weight.flatten(1), self.bias)          # (N, L, out)
        return out.transpose(1, 2).reshape(len(x), -1, rows, cols)


class _GemmConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` (same parameters, same function) computed on the CPU as one matrix
    product followed by ``fold`` (the adjoint of unfolding): faster than oneDNN here for a 4x4 input."""

    def forward(self, x):
        if x.device.type != "cpu":
            return super().forward(x)
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        rows = (x.shape[2] - 1) * sh - 2 * ph + kh + self.output_padding[0]
        cols = (x.shape[3] - 1) * sw - 2 * pw + kw + self.output_padding[1]
        blocks = x.flatten(2).transpose(1, 2) @ self.weight.flatten(1)  # (N, H*W, out*k*k)
        out = F.fold(blocks.transpose(1, 2), (rows, cols), self.kernel_size, padding=self.padding, stride=self.stride)
        return out + self.bias[:, None, None]


class _PythaeMnistVAE(_Likelihood):
    """pythae 0.1.2's ``Encoder_Conv_VAE_MNIST`` and ``Decoder_Conv_AE_MNIST``, the same layers in the
    same order and with the same parameters (its decoder ends in a sigmoid; here the sigmoid is folded
    into the Bernoulli likelihood's logits, the same model computed more stably). The three layers
    with at most 16 spatial positions run as plain matrix products on the CPU (see ``_GemmConv2d``)."""

    def __init__(self, config: VAEConfig):
        super().__init__(config)
        block = lambda conv, n: [conv, nn.BatchNorm2d(n), nn.ReLU()]  # noqa: E731
        self.encoder = nn.Sequential(
            *block(nn.Conv2d(1, 128, 4, 2, padding=1), 128),          # 28 -> 14
            *block(nn.Conv2d(128, 256, 4, 2, padding=1), 256),        # 14 -> 7
            *block(_GemmConv2d(256, 512, 4, 2, padding=1), 512),      # 7 -> 3
            *block(_GemmConv2d(512, 1024, 4, 2, padding=1), 1024),    # 3 -> 1
            nn.Flatten())
        self.embedding, self.log_var = nn.Linear(1024, config.latent), nn.Linear(1024, config.latent)
        self.decoder = nn.Sequential(
            nn.Linear(config.latent, 1024 * 4 * 4), nn.Unflatten(1, (1024, 4, 4)),
            *block(_GemmConvTranspose2d(1024, 512, 3, 2, padding=1), 512),                  # 4 -> 7
            *block(nn.ConvTranspose2d(512, 256, 3, 2, padding=1, output_padding=1), 256),   # 7 -> 14
            nn.ConvTranspose2d(256, 1, 3, 2, padding=1, output_padding=1))                  # 14 -> 28

    def encode(self, x, c):
        h = self.encoder(x)
        return self.embedding(h), self.log_var(h)

    def decode(self, z, c):
        return self.decoder(z)
