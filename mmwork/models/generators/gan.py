"""DCGAN-sized conditional GAN for 28x28 greyscale images, with the stable choices of the literature:
the hinge loss and spectral normalisation in the discriminator (Miyato et al., 2018), a projection
discriminator for the condition (Miyato & Koyama, 2018: the inner product of an embedding of the
condition with the discriminator's features is added to its score), the condition concatenated to the
generator's noise and setting the scale and shift of each of its batch norms, a discriminator that
learns faster than the generator (``d_lr`` > ``lr``: Heusel et al., 2017), and samples drawn from an
exponential moving average of the generator's weights (``ema_decay``; Yazıcı et al., 2019).
``condition_dim=0`` makes it unconditional.

A GAN has no likelihood, so held-out data cannot score it here: ``valid`` is a callback
``valid(model) -> float`` (lower is better, e.g. a Fréchet distance of ``model.sample(...)`` computed
with ``mmwork.evaluation``, which this layer may not import); give the callback a ``name`` attribute
to name its column in ``history_`` (``valid_<name>``).

>>> import torch
>>> from mmwork.models.generators import GAN
>>> from mmwork.models.data import one_hot
>>> images = torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(0))  # real ones: fashion_mnist()
>>> model = GAN(epochs=1, channels=8, condition_dim=10, device="cpu").fit(images, one_hot(torch.arange(32) % 10, 10))
>>> model.sample(4, one_hot([9], 10)[0], seed=1).shape
torch.Size([4, 1, 28, 28])
"""
from __future__ import annotations

import copy
import math
import time

import torch
import torch.nn.functional as F
from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from mmwork.core.errors import MmworkError
from mmwork.models.generators.base import Generator, GeneratorConfig, Training
from mmwork.models.layers import ConvAsMatmul, ConvTransposeAsMatmul
from mmwork.models.network import Preset


class GANConfig(GeneratorConfig):
    """Parameters of :class:`GAN`."""

    epochs: PositiveInt = 10
    """Passes over the training data (``time_budget`` stops earlier). At the defaults an epoch of 55,000
    images took about 45 CPU-seconds on one thread, and 6 epochs (270 CPU-s, seed 0) reached an
    FD-classifier of 2.34 on 5,000 samples against the 5,000 validation images (floor 0.20, uniform
    noise 163) and conditional accuracy 0.945 (``benchmarks/results/gan_speed.json``)."""
    lr: PositiveFloat = 2e-3
    """Adam learning rate of the generator. Chosen for short budgets on validation images
    (``benchmarks/gan_speed.py`` protocol: conditional, batch 128, trained on training images
    0-54,999, seed 0, 1,000 samples against training images 55,000-55,999, FD in the in-project
    classifier's space, never the test split): after one epoch lr/d_lr 2e-4/4e-4 reached FD 36.1 and
    conditional accuracy 0.645, 4e-4/8e-4 24.0 and 0.792, 1e-3/2e-3 17.3 and 0.876, 2e-3/4e-3 10.6
    and 0.921, 4e-3/8e-3 10.0 and 0.880 (after two epochs: 1e-3 8.1, 2e-3 6.4); seed 1 agrees (one
    epoch: 1e-3 17.4 and 0.866, 2e-3 12.0 and 0.906)."""
    d_lr: PositiveFloat = 4e-3
    """Adam learning rate of the discriminator: twice the generator's, the two time-scale update
    rule (Heusel et al., 2017); chosen with ``lr`` (see there)."""
    beta1: float = Field(0.5, ge=0, lt=1)
    """Adam's first-moment decay for both networks (the second is 0.999)."""
    n_critic: PositiveInt = 1
    """Discriminator steps (each on its own real batch) per generator step."""
    aux_weight: float = Field(0.5, ge=0)
    """Weight of an auxiliary classification loss (Odena et al., 2017): a head on the discriminator's
    features learns to predict the condition of real images (cross-entropy against the condition read
    as a distribution: the class of a one-hot row), and the generator's loss adds the same
    cross-entropy of its images against their requested condition; 0 = off. Needs conditions whose
    rows are non-negative and sum to 1 (set 0 for text embeddings). Chosen on validation images
    carved from the training split (``benchmarks/generator_choices.py``: the first 20,000 training
    images, 3 epochs, seed 0; 5,000 samples against the last 5,000 training images, never the test
    split): 0.5 raised the share of samples the classifier recognises as their class from 0.619 to
    0.675 at an unchanged classifier-space Fréchet distance (31.85 against 32.20) and KID (0.331 ±
    0.012 against 0.333 ± 0.013). One seed."""
    batch_size: PositiveInt = 128
    """Real images per step (and as many generated ones). 128 trains the most images per CPU-second
    (one thread, ``benchmarks/gan_speed.py``: 1.04x the images/s of 64 and 1.12x that of 256, measured
    under a load average of 11; the lead of 128 over 64 was larger on a quieter machine)."""
    noise_dim: PositiveInt = 64
    """Size of the generator's noise vector z ~ N(0, I)."""
    channels: PositiveInt = 32
    """Channels of the discriminator's first convolution and the generator's last hidden layer (the
    layers nearer 7x7 have twice as many); doubling it costs about 4x the convolutions' arithmetic."""
    condition_dim: NonNegativeInt = 0
    """Width of the condition vector (10 for one-hot Fashion-MNIST classes); 0 = unconditional."""
    ema_decay: float = Field(0.999, ge=0, lt=1)
    """Decay of the moving average of the generator's weights that ``sample`` uses, warmed up as
    min(ema_decay, (1 + step) / (10 + step)); 0 samples from the raw generator's weights."""


class GAN(Generator):
    """Generator: [z, condition] -> linear -> 2 x channels x 7 x 7 -> transposed convolutions (batch
    norm, ReLU) -> 14 x 14 -> 28 x 28, tanh; with a condition every batch norm is conditional (its
    scale and shift are linear in the condition: de Vries et al., 2017), so the condition reaches each
    layer, not the input alone. Discriminator (spectral norm on every layer): 4x4 stride-2
    convolutions 1 -> channels -> 2 x channels (leaky ReLU 0.1), flattened features phi(x); score =
    linear(phi(x)) + <embed(condition), phi(x)>. Each real batch: one discriminator update on the hinge
    loss relu(1 - D(real)) + relu(1 + D(fake)), real and generated images scored in one pass; every
    ``n_critic``-th batch also a generator update on -D(fake) with the same fakes (generated for the
    real batch's conditions), then the moving average.
    The seed drives initialisation, shuffling and noise, so fits on CPU repeat exactly. For speed on CPU
    (``benchmarks/gan_speed.py``) the one-channel layers (the discriminator's first, the generator's
    last) are im2col matrix products and the other convolutions run in channels-last memory.

    Learned state: ``generator_``, ``discriminator_``, ``ema_`` (the averaged generator that samples);
    ``history_`` (one dict per epoch: loss (d_loss + g_loss, which the NaN stop watches), d_loss (the
    hinge loss), g_loss, d_real and d_fake (mean scores of real and generated images), seconds,
    images_per_s (real images) and, with ``valid``, the callback's value), ``best_epoch_``.
    """

    name = "gan"
    config_class = GANConfig
    data_shape = (1, 28, 28)
    value_range = (0.0, 1.0)  # pixels
    _state = ("generator_", "discriminator_", "ema_")
    data_kind = "image"
    conditions = ("class", "none", "text")
    presets = (Preset("gan", "class", {"epochs": 10, "channels": 32},
                      "conditional hinge GAN: spectral norm, projection + auxiliary class head, class batch norm, EMA"),)

    def _build(self) -> None:
        self.generator_ = _Generator(self.config)
        self.discriminator_ = _Discriminator(self.config)
        self.ema_ = copy.deepcopy(self.generator_).requires_grad_(False)

    def _check_condition(self, condition, n: int, what: str = "condition", broadcast: bool = False):
        c = super()._check_condition(condition, n, what, broadcast)
        if c is not None and self.config.aux_weight and ((c < 0).any() or not torch.allclose(c.sum(1), torch.ones(n))):
            raise MmworkError(f"aux_weight={self.config.aux_weight:g} reads each {what} row as a distribution over "
                              f"classes: its entries must be >= 0 and sum to 1 (one-hot rows); use aux_weight=0 "
                              "for other conditions (e.g. text embeddings)")
        return c

    def _check_valid(self, valid):
        if valid is None or callable(valid):
            return valid
        raise MmworkError("a GAN has no likelihood to score held-out data with: pass valid=a callback "
                          "valid(model) -> float, lower is better (e.g. a Fréchet distance of model.sample(...))")

    # -- training ------------------------------------------------------------------------------------
    def _fit(self, x: torch.Tensor, c: torch.Tensor | None, training: Training) -> None:
        config, device = self.config, self.device_
        G, D = self.generator_, self.discriminator_
        generator = torch.Generator(device).manual_seed(config.seed)
        optimizer = torch.optim.Adam([{"params": G.parameters()}, {"params": D.parameters(), "lr": config.d_lr}],
                                     lr=config.lr, betas=(config.beta1, 0.999))
        n, steps_per_epoch = len(x), math.ceil(len(x) / config.batch_size)
        for epoch in training.epochs(optimizer, generator):
            started = time.perf_counter()
            G.train(), D.train()
            order = torch.randperm(n, generator=generator, device=device)
            sums = torch.zeros(5, device=device)  # d_loss, d_real, d_fake, g_loss (summed over images), g steps
            for i, start in enumerate(range(0, n, config.batch_size)):
                batch = order[start:start + config.batch_size]
                real, cond = x[batch] * 2 - 1, None if c is None else c[batch]
                z = torch.randn(len(batch), config.noise_dim, generator=generator, device=device)
                with training.autocast():
                    fake = G(z, cond)
                    # real and generated images in one pass: half the calls, larger matrix products
                    both = None if cond is None else torch.cat([cond, cond])
                    scores, aux = D.scores(torch.cat([real, fake.detach()]), both)
                    d_real, d_fake = scores.split(len(batch))
                    d_loss = F.relu(1 - d_real.float()).mean() + F.relu(1 + d_fake.float()).mean()
                    if aux is not None:
                        d_loss = d_loss + config.aux_weight * _soft_cross_entropy(aux[:len(batch)], cond)
                training.step(d_loss)
                step = (epoch - 1) * steps_per_epoch + i
                if step % config.n_critic == 0:
                    D.requires_grad_(False)  # the generator's step leaves the discriminator's weights alone
                    with training.autocast():
                        g_score, aux_fake = D.scores(fake, cond)
                        g_loss = -g_score.float().mean()
                        if aux_fake is not None:
                            g_loss = g_loss + config.aux_weight * _soft_cross_entropy(aux_fake, cond)
                    training.step(g_loss)
                    D.requires_grad_(True)
                    self._update_ema(step // config.n_critic + 1)
                    sums[3:] += torch.stack([g_loss.detach() * len(batch), torch.tensor(len(batch), device=device)])
                sums[:3] += len(batch) * torch.stack([d_loss.detach(), d_real.detach().float().mean(),
                                                      d_fake.detach().float().mean()])
            G.eval(), D.eval()
            seconds = time.perf_counter() - started
            d_loss, d_real, d_fake = (sums[:3] / n).tolist()
            g_loss = float(sums[3] / sums[4])
            training.end_epoch({"loss": d_loss + g_loss, "d_loss": d_loss, "g_loss": g_loss, "d_real": d_real,
                                "d_fake": d_fake, "seconds": seconds, "images_per_s": n / seconds})

    @torch.no_grad()
    def _update_ema(self, step: int) -> None:
        decay = min(self.config.ema_decay, (1 + step) / (10 + step))
        for average, current in zip(self.ema_.parameters(), self.generator_.parameters()):
            average.lerp_(current, 1 - decay)
        for average, current in zip(self.ema_.buffers(), self.generator_.buffers()):
            average.copy_(current)  # batch norm's running statistics

    # -- sampling ------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, condition=None, seed: int = 0) -> torch.Tensor:
        """``n`` images (N, 1, 28, 28), pixels in [0, 1], from the averaged generator with noise drawn
        with ``seed``; ``condition`` is one vector for all or one row per image."""
        z, c = self._draw_noise(n, self.config.noise_dim, condition, seed)
        return self._generate(self.ema_, z, c)

    def _generate(self, net: nn.Module, z: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        net.eval()
        size = self.config.batch_size
        return torch.cat([(net(z[s:s + size], None if c is None else c[s:s + size]).float() + 1) / 2
                          for s in range(0, len(z), size)])

    @torch.no_grad()
    def discriminate(self, images, condition=None) -> torch.Tensor:
        """The discriminator's output for each image (N,), float32: higher reads as more real. (Named
        apart from a recommender's ``score``, which ranks items for users.)"""
        self._check_fitted()
        x = self._check_data(images, "images").to(self.device_)
        c = self._check_condition(condition, len(x), broadcast=True)
        c = None if c is None else c.to(self.device_)
        self.discriminator_.eval()
        size = self.config.batch_size
        return torch.cat([self.discriminator_(x[s:s + size] * 2 - 1, None if c is None else c[s:s + size]).float()
                          for s in range(0, len(x), size)])


class _Generator(nn.Module):
    def __init__(self, config: GANConfig):
        super().__init__()
        ch, k = config.channels, config.condition_dim
        self.linear = nn.Linear(config.noise_dim + k, 2 * ch * 49, bias=False)
        self.norm1, self.norm2 = _Norm(2 * ch, k), _Norm(ch, k)
        self.up1 = nn.ConvTranspose2d(2 * ch, ch, 4, 2, 1, bias=False)  # 7 -> 14
        self.up2 = ConvTransposeAsMatmul(ch, 1, 4, 2, 1)              # 14 -> 28

    def forward(self, z, c):
        c = None if c is None else c.to(z.dtype)
        h = self.linear(z if c is None else torch.cat([z, c], 1)).unflatten(1, (-1, 7, 7))
        h = h.contiguous(memory_format=torch.channels_last)  # oneDNN's faster layout for the convolutions
        h = F.relu(self.norm1(h, c))
        h = F.relu(self.norm2(self.up1(h), c))
        return torch.tanh(self.up2(h))


class _Norm(nn.Module):
    """Batch norm; with a condition its scale and shift are 1 + linear(c) and linear(c), starting at
    the plain batch norm's 1 and 0."""

    def __init__(self, channels: int, condition_dim: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=condition_dim == 0)
        self.film = nn.Linear(condition_dim, 2 * channels) if condition_dim else None
        if self.film is not None:
            nn.init.zeros_(self.film.weight), nn.init.zeros_(self.film.bias)

    def forward(self, h, c):
        h = self.norm(h)
        if self.film is None:
            return h
        scale, shift = self.film(c)[:, :, None, None].chunk(2, 1)
        return h * (1 + scale) + shift


class _Discriminator(nn.Module):
    def __init__(self, config: GANConfig):
        super().__init__()
        ch, width = config.channels, 2 * config.channels * 49
        self.features = nn.Sequential(
            spectral_norm(ConvAsMatmul(1, ch, 4, 2, 1)), nn.LeakyReLU(0.1),       # 28 -> 14
            spectral_norm(nn.Conv2d(ch, 2 * ch, 4, 2, 1)), nn.LeakyReLU(0.1),      # 14 -> 7
            nn.Flatten())
        self.linear = spectral_norm(nn.Linear(width, 1))
        self.embed = spectral_norm(nn.Linear(config.condition_dim, width, bias=False)) if config.condition_dim else None
        aux = config.condition_dim and config.aux_weight
        self.aux = spectral_norm(nn.Linear(width, config.condition_dim)) if aux else None

    def forward(self, x, c):
        return self.scores(x, c)[0]

    def scores(self, x, c):
        """The score of each image and, with ``aux_weight``, the auxiliary head's logits (else None)."""
        phi = self.features(x)
        score = self.linear(phi).squeeze(1)
        if self.embed is not None:  # projection: <embed(condition), phi(x)>
            score = score + (self.embed(c.to(phi.dtype)) * phi).sum(1)
        return score, None if self.aux is None else self.aux(phi)


def _soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return -(target * logits.float().log_softmax(1)).sum(1).mean()
