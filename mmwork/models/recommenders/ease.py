"""EASE: Embarrassingly Shallow Autoencoder (Steck, WWW 2019).

A linear item-item model with a closed-form solution. On the binary training matrix ``X``::

    P = (X^T X + lambda I)^-1
    B = I - P diag(1 / diag(P))        (so diag(B) = 0: no item predicts itself)
    score(u, .) = X[u] B

The inverse is computed in float64 on the model's device (the GPU when there is one) and ``B`` is
kept in float32. Memory and time grow with the square and cube of the catalogue size, which is
instant for thousands of items and needs a GPU or patience beyond a few tens of thousands.

>>> model = EASE(l2=500.0).fit(split.train)                     # doctest: +SKIP
>>> model.recommend(["196"], k=5)                                # doctest: +SKIP
"""
from __future__ import annotations

import logging
import time

import numpy as np
import torch
from pydantic import PositiveFloat

from mmwork.models.recommenders.base import Recommender, RecommenderConfig

log = logging.getLogger("mmwork.models.recommenders")


def ease_weights(gram: torch.Tensor, l2: float) -> torch.Tensor:
    """The EASE item-item matrix ``B`` from the Gram matrix ``X^T X`` (float64 in, float64 out).

    >>> g = torch.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    >>> ease_weights(g, 1.0)
    tensor([[0.0000, 0.3333],
            [0.3333, 0.0000]], dtype=torch.float64)
    """
    regularised = gram.clone()
    regularised.diagonal().add_(l2)
    identity = torch.eye(len(gram), dtype=gram.dtype, device=gram.device)
    precision = torch.cholesky_solve(identity, torch.linalg.cholesky(regularised))  # P; X^T X + lambda I is SPD
    weights = -precision / precision.diagonal().unsqueeze(0)  # B_ij = -P_ij / P_jj
    weights.diagonal().zero_()
    return weights


class EASEConfig(RecommenderConfig):
    """Parameters of :class:`EASE`."""

    l2: PositiveFloat = 500.0
    """The L2 penalty lambda on ``B``. The default is the best NDCG@10 on the ML-100K RecBole validation
    set over 50..1000 (flat from 300 to 750); larger or denser data usually wants larger values."""


class EASE(Recommender):
    """Embarrassingly Shallow Autoencoder: a closed-form item-item linear model (deterministic).

    Learned state: ``weights_`` (n_items x n_items float32, zero diagonal).
    """

    name = "ease"
    config_class = EASEConfig
    _state = ("weights_",)

    def _fit(self, train, item_features, valid):
        started = time.perf_counter()
        binary = train.binary()
        gram = (binary.T @ binary).toarray().astype(np.float64)
        # MPS has no float64: solve on the CPU there, and move only B to the device
        solve_on = self.device_ if self.device_.type != "mps" else torch.device("cpu")
        weights = ease_weights(torch.as_tensor(gram, device=solve_on), self.config.l2)
        self.weights_ = weights.to(device=self.device_, dtype=torch.float32)
        log.info("ease: %d items, l2 %g, fitted in %.2f s on %s", train.n_items, self.config.l2,
                 time.perf_counter() - started, solve_on)

    def _score(self, users: np.ndarray) -> torch.Tensor:
        block = self.train_.matrix[users].tocoo()
        history = torch.zeros((len(users), self.train_.n_items), dtype=torch.float32, device=self.device_)
        history[torch.as_tensor(block.row, device=self.device_), torch.as_tensor(block.col, device=self.device_)] = 1.0
        return history @ self.weights_
