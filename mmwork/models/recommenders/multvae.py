"""Mult-VAE (Liang et al., 2018, "Variational Autoencoders for Collaborative Filtering"): each user's
interaction row is encoded into a Gaussian latent vector and decoded into a softmax over every item,
trained with the multinomial log-likelihood and an annealed KL term.

Two defaults differ from the paper and follow RecBole's MultiVAE, because both scored higher on
MovieLens-100K's validation part: rows keep their weights (ratings, counts) as multinomial counts
instead of being binarised, and the latent sample's noise has standard deviation 0.01, not 1.

>>> model = MultVAE().fit(split.train, valid=Validator(split)) # doctest: +SKIP
>>> evaluate(model, split, "test", k=10).metrics["ndcg"].mean() # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import logging
import time

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt

from mmwork.core.errors import MmworkError
from mmwork.store.interactions import Interactions
from mmwork.models.recommenders.base import Recommender, RecommenderConfig
from mmwork.models.training import BudgetedConfig, Training
from mmwork.models.layers import seeded_dropout
from mmwork.models.recommenders.optim import Adam

log = logging.getLogger("mmwork.models.recommenders")


class MultVAEConfig(RecommenderConfig, BudgetedConfig):
    """Parameters of :class:`MultVAE`; binarize, noise_std and patience were picked on ML-100K's
    RecBole validation part."""

    hidden: PositiveInt = 600
    """Width of the encoder's and decoder's hidden layer."""
    latent: PositiveInt = 200
    """Size of the latent user vector."""
    dropout: float = Field(0.5, ge=0, lt=1)
    """Share of the input items dropped (on the L2-normalised row) while training."""
    noise_std: NonNegativeFloat = 0.01
    """Standard deviation of the latent sample's noise while training (1.0 is the paper's VAE; small
    values approach a denoising autoencoder with a KL penalty)."""
    binarize: bool = False
    """Train on 0/1 rows instead of the interaction weights (read as multinomial counts)."""
    epochs: PositiveInt = 200
    """Maximum number of passes over the users."""
    batch_size: PositiveInt = 128
    """Users per gradient step."""
    lr: PositiveFloat = 1e-3
    """Adam learning rate."""
    weight_decay: NonNegativeFloat = 0.0
    """Adam L2 penalty on the weights."""
    anneal_cap: NonNegativeFloat = 0.2
    """The largest weight (beta) of the KL term."""
    total_anneal_steps: NonNegativeInt = 400
    """Gradient steps over which beta rises linearly from 0 to ``anneal_cap``."""
    eval_every: PositiveInt = 5
    """Epochs between calls of the validation callback (when ``fit`` gets ``valid``)."""
    patience: PositiveInt = 10
    """Epochs without a better validation score before training stops; the best state is kept."""
    amp: bool = False
    """bfloat16 autocast on CUDA GPUs that support it (ignored elsewhere)."""


class MultVAE(Recommender):
    """Variational autoencoder over users' training rows: encoder n_items -> hidden ->
    2 x latent, decoder latent -> hidden -> n_items, tanh activations. The seed drives
    initialisation, dropout and the latent noise; fits on CPU are exactly repeatable.

    Learned state: the weights and biases ``enc_w1_, enc_b1_, enc_w2_, enc_b2_, dec_w1_, dec_b1_,
    dec_w2_, dec_b2_``, ``history_`` (one dict per epoch: epoch, loss, beta, seconds and, when
    evaluated, the validation score), ``best_epoch_``.
    """

    name = "multvae"
    config_class = MultVAEConfig
    iterative = True
    _state = ("enc_w1_", "enc_b1_", "enc_w2_", "enc_b2_", "dec_w1_", "dec_b1_", "dec_w2_", "dec_b2_")

    # -- training ------------------------------------------------------------------------------------
    def _fit(self, train: Interactions, item_features, training: Training) -> None:
        device = self.device_
        generator = torch.Generator(device=device).manual_seed(self.config.seed)
        rows = self._rows(train)
        n_users, n_items = rows.shape
        self._init_weights(n_items, generator)
        params = [getattr(self, name) for name in self._state]
        optimizer = Adam(params, lr=self.config.lr, weight_decay=self.config.weight_decay)
        autocast = _autocast(device, self.config.amp)
        active = np.flatnonzero(np.diff(rows.indptr) > 0)  # users with no training row teach nothing

        step = 0  # gradient steps so far: the KL weight's schedule

        def load_step(extra: dict) -> None:
            nonlocal step
            step = extra["step"]
        for _ in training.epochs(optimizer, generator, save_extra=lambda: {"step": step}, load_extra=load_step):
            started = time.perf_counter()
            order = active[torch.randperm(len(active), generator=generator, device=device).cpu().numpy()]
            total = torch.zeros((), device=device)
            for start in range(0, len(order), self.config.batch_size):
                batch = order[start:start + self.config.batch_size]
                x = _SparseRows(rows, batch, device)
                beta = self.config.anneal_cap if self.config.total_anneal_steps == 0 else \
                    min(self.config.anneal_cap, self.config.anneal_cap * step / self.config.total_anneal_steps)
                with autocast:
                    logits, mu, logvar = self._forward(x, generator)
                    nll = -(x.gather(F.log_softmax(logits.float(), dim=1)) * x.values).sum() / len(batch)
                    kl = -0.5 * (1 + logvar.float() - mu.float().pow(2) - logvar.float().exp()).sum(1).mean()
                    loss = nll + beta * kl
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                step += 1
                total += loss.detach() * len(batch)
            training.end_epoch({"loss": float(total) / len(order), "beta": beta,
                                "seconds": time.perf_counter() - started})
        for name in self._state:
            setattr(self, name, getattr(self, name).detach())

    def _init_weights(self, n_items: int, generator: torch.Generator) -> None:
        """Xavier-normal weights and N(0, 0.001) biases, as in the paper's code. ``enc_w1_`` is stored
        items x hidden: the input layer reads it as an embedding table (see ``_forward``)."""
        shapes = {"enc_w1_": (n_items, self.config.hidden), "enc_w2_": (2 * self.config.latent, self.config.hidden),
                  "dec_w1_": (self.config.hidden, self.config.latent), "dec_w2_": (n_items, self.config.hidden)}
        for name, shape in shapes.items():
            weight = torch.empty(shape, device=self.device_)
            torch.nn.init.xavier_normal_(weight, generator=generator)
            outputs = self.config.hidden if name == "enc_w1_" else shape[0]
            bias = torch.empty(outputs, device=self.device_).normal_(0.0, 1e-3, generator=generator)
            setattr(self, name, weight.requires_grad_())
            setattr(self, name.replace("_w", "_b"), bias.requires_grad_())

    def _forward(self, x: "_SparseRows", generator: torch.Generator | None = None):
        """Logits over items, and the latent mean and log-variance. With a ``generator`` (training):
        input dropout and a sampled latent vector; without: no dropout and the mean.

        The rows are sparse (about 5% of the items on MovieLens-100K), so the input layer is an
        embedding-bag sum over each row's items: a third of the dense model's arithmetic saved."""
        h = x.normalised()
        h = seeded_dropout(h, self.config.dropout, generator, active=generator is not None)
        h = F.embedding_bag(x.cols, self.enc_w1_, x.offsets, mode="sum", per_sample_weights=h)
        h = torch.tanh(h + self.enc_b1_)
        mu, logvar = F.linear(h, self.enc_w2_, self.enc_b2_).chunk(2, dim=1)
        z = mu
        if generator is not None:
            noise = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
            z = mu + self.config.noise_std * noise * torch.exp(0.5 * logvar)
        h = torch.tanh(F.linear(z, self.dec_w1_, self.dec_b1_))
        return F.linear(h, self.dec_w2_, self.dec_b2_), mu, logvar

    def _rows(self, interactions: Interactions):
        if self.config.binarize:
            return interactions.binary()
        if interactions.matrix.nnz and interactions.matrix.data.min() < 0:
            raise MmworkError("MultVAE reads interaction weights as counts, and some are negative; "
                              "pass binarize=True or give non-negative weights")
        return interactions.matrix

    # -- scoring ------------------------------------------------------------------------------------
    def _score(self, users: np.ndarray) -> torch.Tensor:
        x = _SparseRows(self._rows(self.train_), users, self.enc_w1_.device)
        with _autocast(self.enc_w1_.device, self.config.amp):
            return self._forward(x)[0].float()


class _SparseRows:
    """Some users' rows of a CSR matrix as torch tensors: each stored entry's column, value and row
    (position in ``users``), and where each row starts."""

    def __init__(self, rows, users: np.ndarray, device: torch.device):
        part = rows[users]
        self.n_rows = len(users)
        self.offsets = torch.as_tensor(part.indptr[:-1], dtype=torch.int64, device=device)
        self.cols = torch.as_tensor(part.indices, dtype=torch.int64, device=device)
        self.values = torch.as_tensor(part.data, dtype=torch.float32, device=device)
        self.row_of = torch.repeat_interleave(torch.arange(self.n_rows, device=device),
                                              torch.as_tensor(np.diff(part.indptr), device=device))

    def normalised(self) -> torch.Tensor:
        """The values divided by their row's L2 norm (as F.normalize does for the dense rows)."""
        norms = torch.zeros(self.n_rows, device=self.values.device).index_add_(0, self.row_of, self.values ** 2)
        return self.values / norms.sqrt_().clamp_(min=1e-12)[self.row_of]

    def gather(self, dense: torch.Tensor) -> torch.Tensor:
        """``dense[row, col]`` at every stored entry."""
        return dense[self.row_of, self.cols]


def _autocast(device: torch.device, amp: bool):
    """bfloat16 autocast on CUDA GPUs that support it (no loss scaling needed); otherwise full precision."""
    if amp and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
