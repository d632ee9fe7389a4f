"""Bayesian Personalised Ranking (Rendle et al., 2009): matrix factorisation trained so that each
user scores an item they interacted with above a random item they did not.

>>> model = BPR().fit(split.train, valid=split.valid)          # doctest: +SKIP
>>> evaluate(model, split, "test", k=10).metrics["ndcg"].mean() # doctest: +SKIP
"""
from __future__ import annotations

import logging
import time

import numpy as np
import torch

from mmwork.errors import MmworkError
from mmwork.recommenders.base import Recommender, valid_ndcg, validation_set
from mmwork.recommenders.data import Interactions

log = logging.getLogger("mmwork.recommenders")


class BPR(Recommender):
    """Matrix factorisation with the BPR pairwise loss and uniform negative sampling.

    Parameters:
        factors: size of the user and item embeddings.
        epochs: maximum number of passes over the training interactions.
        batch_size: positive (user, item) pairs per gradient step, each with one sampled negative.
        lr: Adam learning rate.
        reg: L2 penalty on the embeddings in each batch (per example, summed over the three vectors).
        eval_every: epochs between validation NDCG@10 evaluations (when ``valid`` is given to ``fit``).
        patience: evaluations without improvement before training stops; the best state is kept.
        device: "auto", "cpu", "cuda", ... (see :func:`mmwork.device.resolve_device`).
        seed: seeds initialisation and negative sampling; fits on CPU are exactly repeatable.

    Attributes after ``fit``: ``user_factors`` (n_users, factors), ``item_factors`` (n_items, factors),
    ``history_`` (one dict per epoch: epoch, loss, seconds and, when evaluated, valid_ndcg@10),
    ``best_epoch_``.
    """

    name = "bpr"
    _state = ("user_factors", "item_factors")

    def __init__(self, *, factors: int = 64, epochs: int = 200, batch_size: int = 4096, lr: float = 5e-3,
                 reg: float = 1e-2, eval_every: int = 5, patience: int = 4, device: str = "auto", seed: int = 0):
        super().__init__(device=device, seed=seed)
        self.factors = factors
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.reg = reg
        self.eval_every = eval_every
        self.patience = patience

    # -- training ------------------------------------------------------------------------------------
    def _check_params(self) -> None:
        for name in ("factors", "epochs", "batch_size", "eval_every", "patience"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise MmworkError(f"BPR {name} must be a positive integer, got {value!r}")
        if not self.lr > 0:
            raise MmworkError(f"BPR lr must be positive, got {self.lr!r}")
        if self.reg < 0:
            raise MmworkError(f"BPR reg must be zero or positive, got {self.reg!r}")

    def _fit(self, train: Interactions, item_features, valid: Interactions | None) -> None:
        self._check_params()
        valid = validation_set(train, valid)
        device = self.device_
        generator = torch.Generator(device=device).manual_seed(self.seed)
        n_users, n_items = train.n_users, train.n_items
        positives = train.binary()
        if int(np.diff(positives.indptr).max()) >= n_items:
            raise MmworkError("some user has interacted with every item: no negative item can be sampled")
        coo = positives.tocoo()
        users = torch.as_tensor(coo.row, dtype=torch.int64, device=device)
        items = torch.as_tensor(coo.col, dtype=torch.int64, device=device)
        # sorted keys user * n_items + item let negatives be checked against the positives in one searchsorted
        known = torch.sort(users * n_items + items).values

        user_emb = torch.empty(n_users, self.factors, device=device)
        item_emb = torch.empty(n_items, self.factors, device=device)
        torch.nn.init.xavier_normal_(user_emb, generator=generator)
        torch.nn.init.xavier_normal_(item_emb, generator=generator)
        self.user_factors = user_emb.requires_grad_()
        self.item_factors = item_emb.requires_grad_()
        optimizer = torch.optim.Adam([self.user_factors, self.item_factors], lr=self.lr)
        embed = torch.nn.functional.embedding  # its backward is far faster than indexing's on CPU

        self.history_, best, best_state, waited = [], -np.inf, None, 0
        self.best_epoch_ = self.epochs
        n = len(users)
        for epoch in range(1, self.epochs + 1):
            started = time.perf_counter()
            order = torch.randperm(n, generator=generator, device=device)
            negatives = _sample_negatives(users, known, n_items, generator)
            total = torch.zeros((), device=device)
            for start in range(0, n, self.batch_size):
                batch = order[start:start + self.batch_size]
                pu = embed(users[batch], self.user_factors)
                qi, qj = embed(items[batch], self.item_factors), embed(negatives[batch], self.item_factors)
                loss = -torch.nn.functional.logsigmoid((pu * (qi - qj)).sum(1)).mean()
                loss = loss + self.reg * (pu.pow(2).sum() + qi.pow(2).sum() + qj.pow(2).sum()) / len(batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.detach() * len(batch)
            row = {"epoch": epoch, "loss": float(total) / n, "seconds": time.perf_counter() - started}
            if valid is not None and (epoch % self.eval_every == 0 or epoch == self.epochs):
                row["valid_ndcg@10"] = score = valid_ndcg(self, train, valid)
                if score > best:
                    best, waited, self.best_epoch_ = score, 0, epoch
                    best_state = (self.user_factors.detach().clone(), self.item_factors.detach().clone())
                else:
                    waited += 1
            self.history_.append(row)
            if epoch % self.eval_every == 0 or epoch == 1:
                log.info("bpr epoch %d: loss %.4f%s", epoch, row["loss"],
                         f", valid ndcg@10 {row['valid_ndcg@10']:.4f}" if "valid_ndcg@10" in row else "")
            if valid is not None and waited >= self.patience:
                log.info("bpr: no better validation NDCG@10 for %d evaluations; best epoch %d (%.4f)",
                         self.patience, self.best_epoch_, best)
                break
        if best_state is not None:
            self.user_factors, self.item_factors = best_state
        self.user_factors = self.user_factors.detach()
        self.item_factors = self.item_factors.detach()

    # -- scoring ------------------------------------------------------------------------------------
    def _score(self, users: np.ndarray) -> torch.Tensor:
        index = torch.as_tensor(users, dtype=torch.int64, device=self.user_factors.device)
        return self.user_factors[index] @ self.item_factors.T


def _sample_negatives(users: torch.Tensor, known: torch.Tensor, n_items: int,
                      generator: torch.Generator, rounds: int = 20) -> torch.Tensor:
    """One uniformly drawn item per positive that the user has not interacted with (redrawn where it
    hits a positive, vectorised over all positives at once)."""
    negatives = torch.randint(n_items, users.shape, generator=generator, device=users.device)
    todo = torch.arange(len(users), device=users.device)
    for _ in range(rounds):
        keys = users[todo] * n_items + negatives[todo]
        position = torch.searchsorted(known, keys).clamp_(max=len(known) - 1)
        todo = todo[known[position] == keys]
        if len(todo) == 0:
            break
        negatives[todo] = torch.randint(n_items, todo.shape, generator=generator, device=users.device)
    return negatives
