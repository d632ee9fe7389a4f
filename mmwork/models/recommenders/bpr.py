"""Bayesian Personalised Ranking (Rendle et al., 2009): matrix factorisation trained so that each
user scores an item they interacted with above a random item they did not.

>>> model = BPR().fit(split.train, valid=Validator(split))     # doctest: +SKIP
>>> evaluate(model, split, "test", k=10).metrics["ndcg"].mean() # doctest: +SKIP
"""
from __future__ import annotations

import logging
import time

import numpy as np
import torch
from pydantic import NonNegativeFloat, PositiveFloat, PositiveInt

from mmwork.core.errors import MmworkError
from mmwork.store.interactions import Interactions
from mmwork.models.recommenders.base import Recommender, RecommenderConfig
from mmwork.models.training import BudgetedConfig, Training
from mmwork.models.recommenders.optim import Adam

log = logging.getLogger("mmwork.models.recommenders")


class BPRConfig(RecommenderConfig, BudgetedConfig):
    """Parameters of :class:`BPR`; L2 and patience were picked on ML-100K's RecBole validation part."""

    factors: PositiveInt = 64
    """Size of the user and item embeddings."""
    epochs: PositiveInt = 200
    """Maximum number of passes over the training interactions."""
    batch_size: PositiveInt = 4096
    """Positive (user, item) pairs per gradient step, each with one sampled negative."""
    lr: PositiveFloat = 5e-3
    """Adam learning rate."""
    reg: NonNegativeFloat = 5e-3
    """L2 penalty on the embeddings in each batch (per example, summed over the three vectors)."""
    eval_every: PositiveInt = 5
    """Epochs between calls of the validation callback (when ``fit`` gets ``valid``)."""
    patience: PositiveInt = 10
    """Epochs without a better validation score before training stops; the best state is kept."""


class BPR(Recommender):
    """Matrix factorisation with the BPR pairwise loss and uniform negative sampling; the seed drives
    initialisation and negative sampling, so fits on CPU are exactly repeatable.

    Learned state: ``user_factors_`` (n_users, factors), ``item_factors_`` (n_items, factors),
    ``history_`` (one dict per epoch: epoch, loss (the mean ranking loss, without the L2 term), seconds
    and, when evaluated, the validation score), ``best_epoch_``.
    """

    name = "bpr"
    config_class = BPRConfig
    iterative = True
    _state = ("user_factors_", "item_factors_")

    # -- training ------------------------------------------------------------------------------------
    def _fit(self, train: Interactions, item_features, training: Training) -> None:
        config = self.config
        device = self.device_
        generator = torch.Generator(device=device).manual_seed(config.seed)
        n_users, n_items = train.n_users, train.n_items
        positives = train.binary()
        if int(np.diff(positives.indptr).max()) >= n_items:
            raise MmworkError("some user has interacted with every item: no negative item can be sampled")
        coo = positives.tocoo()
        users = torch.as_tensor(coo.row, dtype=torch.int64, device=device)
        items = torch.as_tensor(coo.col, dtype=torch.int64, device=device)
        sampler = _NegativeSampler(users, items, n_users, n_items)

        user_emb = torch.empty(n_users, config.factors, device=device)
        item_emb = torch.empty(n_items, config.factors, device=device)
        torch.nn.init.xavier_normal_(user_emb, generator=generator)
        torch.nn.init.xavier_normal_(item_emb, generator=generator)
        self.user_factors_, self.item_factors_ = user_emb, item_emb
        # The gradients are written by hand (see _BprStep): autograd's many small kernels cost
        # three times as much per step on CPU as the arithmetic itself.
        user_emb.grad, item_emb.grad = torch.zeros_like(user_emb), torch.zeros_like(item_emb)
        step = _BprStep(user_emb, item_emb, min(config.batch_size, len(users)), config.reg)
        optimizer = Adam([user_emb, item_emb], lr=config.lr)

        n = len(users)
        for _ in training.epochs(optimizer, generator):
            started = time.perf_counter()
            order = torch.randperm(n, generator=generator, device=device)
            negatives = sampler.draw(generator)[order]
            epoch_users, epoch_items = users[order], items[order]
            total = torch.zeros((), device=device)
            for start in range(0, n, config.batch_size):
                batch = slice(start, start + config.batch_size)
                total += step(epoch_users[batch], epoch_items[batch], negatives[batch])
                optimizer.step()
            training.end_epoch({"loss": float(total) / n, "seconds": time.perf_counter() - started})
        user_emb.grad = item_emb.grad = None

    # -- scoring ------------------------------------------------------------------------------------
    def _score(self, users: np.ndarray) -> torch.Tensor:
        index = torch.as_tensor(users, dtype=torch.int64, device=self.user_factors_.device)
        return self.user_factors_[index] @ self.item_factors_.T


class _BprStep:
    """Writes into the embeddings' ``.grad`` the gradient of the batch loss
    mean(-log sigmoid(p_u . (q_i - q_j))) + reg * (|p_u|^2 + |q_i|^2 + |q_j|^2) / batch
    and returns the summed ranking loss (without the L2 term) for the log.

    The (batch, factors) intermediates live in buffers allocated once: allocating fresh ones each step
    made glibc return and re-fault their pages, which took longer than the arithmetic."""

    def __init__(self, user_emb: torch.Tensor, item_emb: torch.Tensor, batch_size: int, reg: float):
        self.user_emb, self.item_emb, self.reg = user_emb, item_emb, reg
        self.buffers = torch.empty(5, batch_size, user_emb.shape[1], device=user_emb.device)

    def __call__(self, u: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        pu, qi, qj, diff, out = self.buffers[:, :len(u)]
        torch.index_select(self.user_emb, 0, u, out=pu)
        torch.index_select(self.item_emb, 0, i, out=qi)
        torch.index_select(self.item_emb, 0, j, out=qj)
        torch.sub(qi, qj, out=diff)
        x = torch.mul(pu, diff, out=out).sum(1)
        dx = torch.sigmoid(-x).mul_(-1.0 / len(u)).unsqueeze_(1)  # d loss / d x
        decay = 2.0 * self.reg / len(u)
        torch.mul(diff, dx, out=out).add_(pu, alpha=decay)
        self.user_emb.grad.zero_().index_add_(0, u, out)
        pull = torch.mul(pu, dx, out=diff)
        torch.add(pull, qi, alpha=decay, out=out)
        self.item_emb.grad.zero_().index_add_(0, i, out)
        torch.add(pull.neg_(), qj, alpha=decay, out=out)
        self.item_emb.grad.index_add_(0, j, out)
        return torch.nn.functional.softplus(-x).sum()


class _NegativeSampler:
    """Draws, for each positive (user, item) pair, one item uniformly among those the user has not
    interacted with: vectorised over all pairs, redrawing where a draw hits a positive. Positives are
    looked up in a dense user x item mask when it is small (up to 128 MB), else in sorted keys."""

    dense_limit = 1 << 27

    def __init__(self, users: torch.Tensor, items: torch.Tensor, n_users: int, n_items: int):
        self.users, self.n_items = users, n_items
        keys = users * n_items + items
        self.mask = self.known = None
        if n_users * n_items <= self.dense_limit:
            self.mask = torch.zeros(n_users * n_items, dtype=torch.bool, device=users.device)
            self.mask[keys] = True
        else:
            self.known = torch.sort(keys).values

    def _is_positive(self, keys: torch.Tensor) -> torch.Tensor:
        if self.mask is not None:
            return self.mask[keys]
        position = torch.searchsorted(self.known, keys).clamp_(max=len(self.known) - 1)
        return self.known[position] == keys

    def draw(self, generator: torch.Generator, rounds: int = 20) -> torch.Tensor:
        users, device = self.users, self.users.device
        negatives = torch.randint(self.n_items, users.shape, generator=generator, device=device)
        todo = torch.arange(len(users), device=device)
        for _ in range(rounds):
            todo = todo[self._is_positive(users[todo] * self.n_items + negatives[todo])]
            if len(todo) == 0:
                break
            negatives[todo] = torch.randint(self.n_items, todo.shape, generator=generator, device=device)
        return negatives
