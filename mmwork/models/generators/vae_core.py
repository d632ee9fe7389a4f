"""The network-agnostic core of the variational autoencoders (:class:`~mmwork.models.generators.VAE`
for images, :class:`~mmwork.models.generators.AudioVAE` for log-mel patches): the training loop on
the negative ELBO with KL warm-up, the reparameterisation, the optional conditional prior p(z|c),
the ELBO, the importance-sampled NLL (Burda et al., 2016), the marginal NLL over discrete
conditions, encode/decode/reconstruct/sample. Each model keeps only its networks.

A network (``net_``) gives ``encode(x, c) -> (mu, logvar)``, ``decode(z, c) -> out``,
``log_likelihood(out, x, dtype)`` per example, ``mean(out)`` and ``prior(c, like)``: the conditional
prior's mean and log variance, or None for the standard normal N(0, I), whose closed forms are then
used as they are written (so a network without a prior keeps its numbers).

>>> from mmwork.models.generators.vae_core import VAECore
>>> from mmwork.models.generators import VAE, AudioVAE
>>> issubclass(VAE, VAECore) and issubclass(AudioVAE, VAECore)
True
"""
from __future__ import annotations

import math
import time
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmwork.core.errors import MmworkError
from mmwork.models.generators.base import Generator, Training

LOG_2PI = math.log(2 * math.pi)


class Likelihood(nn.Module):
    """p(x|z) on the decoder's output: Bernoulli logits (no ``log_scale``), or Gaussian means with one
    learned scale (``log_scale``, which the subclass creates); no prior of its own."""

    def log_likelihood(self, out, x, dtype=torch.float32):
        """log p(x|z) per example, summed over its values, computed in ``dtype``."""
        out, x = out.to(dtype), x.to(dtype)
        if getattr(self, "log_scale", None) is None:
            return -F.binary_cross_entropy_with_logits(out, x, reduction="none").flatten(1).sum(1)
        log_scale = self.log_scale.to(dtype)
        return (-0.5 * ((x - out) / log_scale.exp()).pow(2) - log_scale - 0.5 * LOG_2PI).flatten(1).sum(1)

    def mean(self, out):
        return torch.sigmoid(out) if getattr(self, "log_scale", None) is None else out.clamp(0, 1)

    def prior(self, c, like):
        """p(z|c)'s mean and log variance, or None: N(0, I)."""
        return None


def with_condition(h: torch.Tensor, e: torch.Tensor | None) -> torch.Tensor:
    """Feature maps ``h`` (N, C, H, W) with the condition embedding ``e`` (N, E) as E constant channels
    (``h`` itself without one): how both VAEs feed a condition to their convolutions."""
    if e is None:
        return h
    return torch.cat([h, e.to(h.dtype)[:, :, None, None].expand(-1, -1, *h.shape[2:])], 1)


def conditional_prior(cond: int, latent: int) -> nn.Linear:
    """The conditional prior's network p(z|c) = N(m(c), diag s(c)^2), m and s linear in c, starting as
    N(0, I) (Sohn et al., 2015)."""
    net = nn.Linear(cond, 2 * latent)
    nn.init.zeros_(net.weight), nn.init.zeros_(net.bias)
    return net


class VAECore(Generator):
    """The shared part of the VAEs (see the module docstring). Subclasses build ``net_`` and set
    ``example`` (what one example is called: ("image", "images") or ("patch", "patches")); their
    configs have ``latent``, ``condition_dim``, ``warmup_epochs`` and ``batch_size``."""

    example: ClassVar[tuple[str, str]] = ("example", "examples")
    _state = ("net_",)

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
            sums = torch.zeros(3, device=device)  # objective, reconstruction and KL, summed over examples
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
        """-log p(x|z, c) for one sampled z, and KL(q(z|x, c) || p(z|c)), per example (nats); without a
        condition, p(z) = N(0, I)."""
        mu, logvar = (t.to(dtype) for t in self.net_.encode(x, c))
        noise = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=dtype)
        z = mu + noise * torch.exp(0.5 * logvar)
        recon = -self.net_.log_likelihood(self.net_.decode(z.to(x.dtype), c), x, dtype)
        prior = self.net_.prior(c, mu)
        if prior is None:  # N(0, I), in the closed form's own arithmetic
            return recon, 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)
        prior_mu, prior_logvar = (t.to(dtype) for t in prior)
        kl = 0.5 * (prior_logvar - logvar + (logvar.exp() + (mu - prior_mu).pow(2)) / prior_logvar.exp() - 1).sum(1)
        return recon, kl

    @torch.no_grad()
    def _valid_loss(self, x: torch.Tensor, c: torch.Tensor | None) -> float:
        return -float(self._per_example(self._elbo, x, c, seed=0).mean())

    # -- evaluation ----------------------------------------------------------------------------------
    @torch.no_grad()
    def elbo(self, x, condition=None, seed: int = 0) -> torch.Tensor:
        """The evidence lower bound per example in nats (float64): log p(x|z, c) for one z drawn from
        q(z|x, c) with ``seed``, minus the closed-form KL(q(z|x, c) || p(z|c)), against the model's own
        prior: N(0, I) for an unconditional model, the learned conditional prior p(z|c) = N(m(c), diag
        s(c)^2) for a conditional one. So it bounds log p(x) for an unconditional model and log p(x|c),
        a conditional likelihood, for a conditional one: never compare the two as one quantity (for a
        conditional model's log p(x) over discrete classes see :meth:`marginal_nll`)."""
        x, c = self._inputs(x, condition)
        return self._per_example(self._elbo, x, c, seed)

    def _elbo(self, x, c, generator):
        recon, kl = self._terms(x, c, generator, dtype=torch.float64)
        return -(recon + kl)

    @torch.no_grad()
    def importance_nll(self, x, condition=None, k: int = 100, seed: int = 0) -> torch.Tensor:
        """-log p(x) per example in nats (float64) for an unconditional model, and -log p(x|c), the
        conditional likelihood of each example given its ``condition``, for a conditional one;
        importance-sampled with ``k`` draws from q(z|x, c) (Burda et al., 2016):
        -logsumexp_i[log p(x|z_i, c) + log p(z_i|c) - log q(z_i|x, c)] + log k, an upper bound in
        expectation that tightens as k grows; state k with every figure (1000 is the usual choice).
        -log p(x|c) is not -log p(x): with 10 equally likely classes, Bayes' rule gives -log p(x) =
        -log p(x|c) + log 10 + log p(c|x), up to log 10 = 2.30 nats more than -log p(x|c) for an example
        whose class the model has no doubt about; :meth:`marginal_nll` estimates -log p(x) itself."""
        if not isinstance(k, int) or k < 1:
            raise MmworkError(f"k (importance samples per {self.example[0]}) must be a positive integer, got {k!r}")
        x, c = self._inputs(x, condition)
        chunk = max(1, 4096 // k)  # examples per pass, so that one pass decodes about 4096 latent vectors
        return self._per_example(lambda xb, cb, g: self._importance_nll(xb, cb, k, g), x, c, seed, chunk)

    @torch.no_grad()
    def marginal_nll(self, x, conditions, weights=None, k: int = 100, seed: int = 0) -> torch.Tensor:
        """-log p(x) per example in nats (float64) for a model conditioned on a discrete variable, the
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
        n = len(self._check_data(x, self.example[1]))
        nll = torch.stack([self.importance_nll(x, row.expand(n, -1), k=k, seed=seed) for row in rows])  # (J, N)
        return -torch.logsumexp(torch.log(w.to(nll.device))[:, None] - nll, dim=0)

    def _importance_nll(self, x, c, k: int, generator) -> torch.Tensor:
        mu, logvar = (t.double() for t in self.net_.encode(x, c))
        noise = torch.randn((k, *mu.shape), generator=generator, device=mu.device, dtype=torch.float64)
        z = mu + noise * torch.exp(0.5 * logvar)  # (k, examples, latent)
        flat = lambda t: t.expand(k, *t.shape).reshape(-1, *t.shape[1:])  # noqa: E731 - repeat per draw
        out = self.net_.decode(z.reshape(-1, z.shape[-1]).float(), None if c is None else flat(c))
        log_px = self.net_.log_likelihood(out, flat(x), torch.float64).view(k, -1)
        prior = self.net_.prior(c, mu)
        if prior is None:  # N(0, I)
            log_pz = (-0.5 * z.pow(2) - 0.5 * LOG_2PI).sum(-1)
        else:
            prior_mu, prior_logvar = (t.double() for t in prior)
            log_pz = (-0.5 * (z - prior_mu).pow(2) / prior_logvar.exp() - 0.5 * prior_logvar - 0.5 * LOG_2PI).sum(-1)
        log_qz = (-0.5 * noise.pow(2) - 0.5 * logvar - 0.5 * LOG_2PI).sum(-1)
        return -(torch.logsumexp(log_px + log_pz - log_qz, dim=0) - math.log(k))

    def _per_example(self, fn, x, c, seed: int, chunk: int | None = None) -> torch.Tensor:
        generator = torch.Generator(self.device_).manual_seed(seed)
        chunk = chunk or self.config.batch_size
        return torch.cat([fn(x[s:s + chunk], None if c is None else c[s:s + chunk], generator)
                          for s in range(0, len(x), chunk)])

    # -- encoding, decoding, sampling ----------------------------------------------------------------
    @torch.no_grad()
    def encode(self, x, condition=None) -> tuple[torch.Tensor, torch.Tensor]:
        """The posterior q(z|x) of each example: its mean and log variance, each (N, latent)."""
        x, c = self._inputs(x, condition)
        mu, logvar = zip(*(self.net_.encode(x[s:s + self.config.batch_size],
                                            None if c is None else c[s:s + self.config.batch_size])
                           for s in range(0, len(x), self.config.batch_size)))
        return torch.cat(mu), torch.cat(logvar)

    @torch.no_grad()
    def decode(self, z, condition=None) -> torch.Tensor:
        """The decoder's mean for each latent vector (N, *data_shape), values in [0, 1]."""
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
        # a network without a prior of its own (None) has the standard normal one
        prior = self.net_.prior(c, like)
        return prior if prior is not None else (torch.zeros_like(like), torch.zeros_like(like))

    @torch.no_grad()
    def sample(self, n: int, condition=None, seed: int = 0) -> torch.Tensor:
        """``n`` examples decoded from z ~ p(z|c) drawn with ``seed`` (the decoder's mean, not a
        noisy draw); ``condition`` is one vector for all or one row per example."""
        noise, c = self._draw_noise(n, self.config.latent, condition, seed)
        prior = self.net_.prior(c, noise)
        if prior is None:  # N(0, I)
            return self.decode(noise, c)
        mu, logvar = prior
        return self.decode(mu + noise * torch.exp(0.5 * logvar), c)

    def _inputs(self, x, condition):
        self._check_fitted()
        x = self._check_data(x, self.example[1])
        c = self._check_condition(condition, len(x), broadcast=True)
        return x.to(self.device_), None if c is None else c.to(self.device_)
