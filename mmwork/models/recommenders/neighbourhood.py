"""Neighbourhood models on implicit feedback: item-based and user-based k-nearest neighbours.

Both binarise the training matrix ``X`` (users x items), compute a shrunk cosine similarity between
its columns (items) or rows (users) with scipy.sparse, and keep each row's ``k_neighbors`` most
similar others::

    sim(a, b) = x_a . x_b / (||x_a|| ||x_b|| + shrink)        (a != b; self-similarity is dropped)

ItemKNN scores ``score(u, i) = sum_j X[u, j] sim(i, j)`` over the neighbours ``j`` of item ``i``
(RecBole's ItemKNN, ``R @ S``); UserKNN scores ``score(u, i) = sum_v sim(u, v) X[v, i]`` over the
neighbours ``v`` of user ``u`` (``S @ R``).

The learned state is two dense ``(n_rows, k)`` tensors, ``neighbors_`` (int64 indices) and
``similarities_`` (float32), so it saves to safetensors as is; scoring rebuilds the similarity matrix
from them on the model's device (dense when it has at most 16M cells, as on ML-100K, else torch
sparse) and scores users in batches with one matrix product.

>>> model = ItemKNN(k_neighbors=100).fit(split.train)          # doctest: +SKIP
>>> model.recommend(["196"], k=5)                               # doctest: +SKIP
"""
from __future__ import annotations

import logging
import time

import numpy as np
import scipy.sparse as sp
import torch

from pydantic import NonNegativeFloat, PositiveInt

from mmwork.core.errors import MmworkError
from mmwork.models.recommenders.base import Recommender, RecommenderConfig

log = logging.getLogger("mmwork.models.recommenders")

_BLOCK_CELLS = 32_000_000  # dense similarity cells computed at once (~256 MB of float64)
_DENSE_CELLS = 16_000_000  # scoring matrices up to this size (64 MB of float32) are kept dense


def _matrix(index: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """A float32 matrix from (2, nnz) indices and values: dense if small (fast matmul), else sparse."""
    values = values.float()
    if shape[0] * shape[1] <= _DENSE_CELLS:
        dense = torch.zeros(shape, dtype=torch.float32, device=values.device)
        dense.index_put_((index[0], index[1]), values, accumulate=True)
        return dense
    return torch.sparse_coo_tensor(index, values, shape, check_invariants=True).coalesce()


def _times(matrix: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
    return torch.sparse.mm(matrix, dense) if matrix.is_sparse else matrix @ dense


def cosine_top_k(matrix: sp.csr_matrix, k: int, shrink: float) -> tuple[np.ndarray, np.ndarray]:
    """For every row of ``matrix`` its ``k`` most similar other rows under shrunk cosine similarity.

    Returns ``(neighbors, similarities)``, both ``(n_rows, k)``, sorted by decreasing similarity; rows
    with fewer than ``k`` similar rows are padded with similarity 0 (which then adds nothing to a
    score). The similarity is computed in row blocks, so memory stays bounded for large catalogues.

    >>> m = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 1], [0, 0, 1]], np.float32))
    >>> nbrs, sims = cosine_top_k(m, 1, 0.0)
    >>> nbrs.ravel().tolist(), np.round(sims.ravel().astype(float), 3).tolist()
    ([1, 0, 1], [0.816, 0.816, 0.577])
    """
    matrix = sp.csr_matrix(matrix, dtype=np.float64)
    n = matrix.shape[0]
    k = min(k, n - 1)
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(1)).ravel())
    transposed = matrix.T.tocsc()
    neighbors = np.zeros((n, k), np.int64)
    similarities = np.zeros((n, k), np.float32)
    block = max(1, _BLOCK_CELLS // max(n, 1))
    for start in range(0, n, block):
        stop = min(start + block, n)
        dots = (matrix[start:stop] @ transposed).toarray()
        sims = dots / (norms[start:stop, None] * norms[None, :] + shrink + 1e-12)
        sims[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # never one's own neighbour
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]  # k <= n - 1, so self (-inf) is never kept
        values = np.take_along_axis(sims, top, axis=1)
        order = np.argsort(-values, axis=1, kind="stable")
        neighbors[start:stop] = np.take_along_axis(top, order, axis=1)
        similarities[start:stop] = np.maximum(np.take_along_axis(values, order, axis=1), 0.0)
    return neighbors, similarities


class ItemKNNConfig(RecommenderConfig):
    """Parameters of :class:`ItemKNN`; the defaults are the best NDCG@10 on the ML-100K RecBole
    validation set over k_neighbors in 20..400 and shrink in 0..100 (flat for k 100..300)."""

    k_neighbors: PositiveInt = 250
    """How many most similar items each item keeps."""
    shrink: NonNegativeFloat = 10.0
    """Added to the cosine denominator to damp similarities backed by few users (0: plain cosine)."""


class UserKNNConfig(RecommenderConfig):
    """Parameters of :class:`UserKNN`; the defaults are the best NDCG@10 on the ML-100K RecBole
    validation set over k_neighbors in 20..400 and shrink in 0..50 (flat for k 40..100)."""

    k_neighbors: PositiveInt = 60
    """How many most similar users each user keeps."""
    shrink: NonNegativeFloat = 0.0
    """Added to the cosine denominator to damp similarities backed by few items (0: plain cosine)."""


class _KNN(Recommender):
    """Shared fitting and state of the two neighbourhood models (both deterministic)."""

    _state = ("neighbors_", "similarities_")
    _axis = "items"

    def _fit(self, train, item_features, valid):
        started = time.perf_counter()
        binary = train.binary()
        rows = binary.T.tocsr() if self._axis == "items" else binary
        if rows.shape[0] < 2:
            raise MmworkError(f"{self.name} needs at least 2 {self._axis} in the training data, got {rows.shape[0]}")
        neighbors, similarities = cosine_top_k(rows, self.config.k_neighbors, self.config.shrink)
        self.neighbors_ = torch.as_tensor(neighbors, device=self.device_)
        self.similarities_ = torch.as_tensor(similarities, device=self.device_)
        self.__dict__.pop("_graph", None)
        log.info("%s: %d %s, %d neighbours each, shrink %g, fitted in %.2f s", self.name, rows.shape[0],
                 self._axis, neighbors.shape[1], self.config.shrink, time.perf_counter() - started)

    def _similarity_matrix(self) -> torch.Tensor:
        """The kept similarities as an (n_rows x n_rows) matrix on the device, row a holding a's
        neighbours: dense when it is small, torch sparse otherwise. Built once, then cached."""
        graph = self.__dict__.get("_graph")
        if graph is None or graph.device != self.similarities_.device:
            n, k = self.neighbors_.shape
            rows = torch.arange(n, device=self.neighbors_.device).repeat_interleave(k)
            graph = _matrix(torch.stack([rows, self.neighbors_.reshape(-1)]), self.similarities_.reshape(-1), (n, n))
            self._graph = graph
        return graph

    def _dense_rows(self, rows: np.ndarray) -> torch.Tensor:
        """Binary training rows of these users as a dense float32 tensor on the device."""
        block = self.train_.matrix[rows].tocoo()
        dense = torch.zeros((len(rows), self.train_.n_items), dtype=torch.float32, device=self.device_)
        dense[torch.as_tensor(block.row, device=self.device_), torch.as_tensor(block.col, device=self.device_)] = 1.0
        return dense


class ItemKNN(_KNN):
    """Item-based k-nearest neighbours (Deshpande & Karypis 2004; RecBole's ItemKNN).

    Learned state: ``neighbors_`` (n_items x k, int64) and ``similarities_`` (n_items x k).
    """

    name = "itemknn"
    config_class = ItemKNNConfig
    _axis = "items"

    def _score(self, users: np.ndarray) -> torch.Tensor:
        # score(u, i) = sum over i's neighbours j of sim(i, j) X[u, j]  ->  (S @ X_u^T)^T
        history = self._dense_rows(users)
        return _times(self._similarity_matrix(), history.T).T


class UserKNN(_KNN):
    """User-based k-nearest neighbours (Herlocker et al. 1999) on implicit feedback.

    Learned state: ``neighbors_`` (n_users x k, int64) and ``similarities_`` (n_users x k).
    """

    name = "userknn"
    config_class = UserKNNConfig
    _axis = "users"

    def _score(self, users: np.ndarray) -> torch.Tensor:
        # score(u, i) = sum over u's neighbours v of sim(u, v) X[v, i]  ->  (X^T @ S_u^T)^T
        n_users = self.neighbors_.shape[0]
        rows = torch.as_tensor(users, device=self.device_)
        weights = torch.zeros((len(users), n_users), dtype=torch.float32, device=self.device_)
        weights.scatter_(1, self.neighbors_[rows], self.similarities_[rows].float())
        return _times(self._items_by_users(), weights.T).T

    def _items_by_users(self) -> torch.Tensor:
        """The binary training matrix transposed (items x users) on the device (dense when small)."""
        cached = self.__dict__.get("_transposed")
        if cached is None or cached.device != self.device_:
            coo = self.train_.matrix.tocoo()
            index = torch.as_tensor(np.vstack([coo.col, coo.row]).astype(np.int64), device=self.device_)
            values = torch.ones(coo.nnz, dtype=torch.float32, device=self.device_)
            cached = _matrix(index, values, (self.train_.n_items, self.train_.n_users))
            self._transposed = cached
        return cached

    def _fit(self, train, item_features, valid):
        self.__dict__.pop("_transposed", None)
        super()._fit(train, item_features, valid)
