"""Text-to-factor mapping: collaborative item factors (PureSVD) predicted from an item's text
vector, so that every item, in the catalogue or new, is scored through one content path.

A judge for generated content that shares neither the representation nor the model family of a
content-based guide (Gantner et al., ICDM 2010, "Learning attribute-to-feature mappings for
cold-start recommendations"; PureSVD: Cremonesi et al., RecSys 2010)::

    X ~ U S V^T                     truncated SVD of the binary training matrix, rank k
    p_u  = X_u V                    user factors (PureSVD's folding-in)
    q(x) = W^T c(x) + b             item factors predicted from content c(x) (ridge on the warm items' V)
    score(u, x) = p_u . q(x)

``c(x)`` is each modality centred on the catalogue mean, L2-normalised and concatenated (as
``content.content_matrix``). ``score`` ranks the catalogue through ``q(c(i))`` too, never through
``V_i``: a catalogue item and a new text with the same content get the same score. With ``valid``
the rank and the ridge penalty are chosen on the validation score over a small grid.

>>> import numpy as np, scipy.sparse as sp
>>> from mmwork.store.interactions import Interactions
>>> x = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 1, 1, 1]], np.float32))
>>> train = Interactions(x, np.array(["a", "b", "c", "d"], object), np.array(["w", "x", "y", "z"], object))
>>> text = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
>>> model = TextFactors(factors=2, l2=0.1).fit(train, item_features={"text:lsa": text})
>>> bool(np.allclose(model.score([0]).numpy(), model.score_items([0], {"text:lsa": text}).numpy(), atol=1e-6))
True
"""
from __future__ import annotations

import itertools
import time

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import PositiveFloat, PositiveInt

from mmwork.core.errors import MmworkError
from mmwork.models.recommenders.base import Recommender, RecommenderConfig, log
from mmwork.models.recommenders.content import centring_means, content_matrix
from mmwork.store.item_features import as_modalities

FACTOR_GRID = (8, 16, 32, 64, 128)
L2_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)


class TextFactorsConfig(RecommenderConfig):
    """Parameters of :class:`TextFactors` (deterministic for a seed)."""

    factors: PositiveInt = 64
    """Rank k of the truncated SVD (used as given unless ``search`` runs)."""
    l2: PositiveFloat = 10.0
    """Ridge penalty of the content -> factor map (used as given unless ``search`` runs)."""
    search: bool = True
    """With ``valid``: try every rank in (8, 16, 32, 64, 128) and penalty in (0.01, 0.1, 1, 10, 100) and keep the
    best validation score (``history_`` lists them); without ``valid`` the given values are used."""
    center: bool = True
    """Centre each modality on its mean item before L2-normalising it."""


class TextFactors(Recommender):
    """PureSVD user factors against item factors predicted from content (see the module docstring).

    Learned state: ``user_factors_`` (n_users x k), ``item_factors_`` (n_items x k, the map applied to
    the catalogue's content); for :meth:`score_items`, ``content_means_``, ``modality_dims_``,
    ``map_w_`` (D x k) and ``map_b_`` (k). ``history_`` holds one row per grid point tried.
    """

    name = "text_factors"
    config_class = TextFactorsConfig
    uses_features = True
    _state = ("user_factors_", "item_factors_")
    _content_state = ("content_means_", "modality_dims_", "map_w_", "map_b_")

    def _fit(self, train, item_features, valid):
        config = self.config
        started = time.perf_counter()
        modalities = as_modalities(item_features, train.n_items)
        self._set_content_means(centring_means(modalities, config.center))
        content = content_matrix(modalities, config.center, None, self._content_means()).astype(np.float64)
        binary = sp.csr_matrix(train.binary(), dtype=np.float64)
        warm = np.diff(binary.tocsc().indptr) > 0
        if warm.sum() < 2:
            raise MmworkError("text_factors needs at least 2 items with training interactions")
        grid = list(itertools.product(FACTOR_GRID, L2_GRID)) if config.search and valid is not None \
            else [(config.factors, config.l2)]
        largest = min(max(k for k, _ in grid), min(binary.shape) - 1)
        if largest < 1:
            raise MmworkError(f"text_factors needs a training matrix of at least 2 x 2, got {binary.shape}")
        v0 = np.random.default_rng(config.seed).standard_normal(min(binary.shape))
        _, singular, vt = sp.linalg.svds(binary, k=largest, v0=v0)
        vectors = vt[np.argsort(-singular)].T  # n_items x largest, by decreasing singular value
        self.history_, best, chosen = [], -np.inf, 0
        for index, (k, l2) in enumerate(grid):
            self._set_factors(binary, content, warm, vectors[:, :min(k, largest)], l2)
            row = {"factors": min(k, largest), "l2": l2}
            if valid is not None:
                row[f"valid_{getattr(valid, 'name', 'score')}"] = score = float(valid(self))
                if score > best:
                    best, chosen = score, index
            self.history_.append(row)
        if chosen != len(grid) - 1:
            self._set_factors(binary, content, warm, vectors[:, :self.history_[chosen]["factors"]], grid[chosen][1])
        self.best_epoch_ = chosen + 1  # the grid point kept (1-based), as the other models' best epoch
        log.info("text_factors: rank %d, l2 %g, fitted in %.2f s", self.history_[chosen]["factors"], grid[chosen][1],
                 time.perf_counter() - started)

    def _set_factors(self, binary, content, warm, vectors, l2):
        """Ridge map from content to the warm items' SVD vectors; user factors X V."""
        target = vectors[warm]
        bias = target.mean(0)
        features = content[warm]
        gram = features.T @ features + l2 * np.eye(features.shape[1])
        weights = np.linalg.solve(gram, features.T @ (target - bias))
        self.map_w_ = torch.as_tensor(weights.astype(np.float32), device=self.device_)
        self.map_b_ = torch.as_tensor(bias.astype(np.float32), device=self.device_)
        self.user_factors_ = torch.as_tensor(np.asarray(binary @ vectors, dtype=np.float32), device=self.device_)
        self.item_factors_ = self._map(content)

    def _map(self, content: np.ndarray) -> torch.Tensor:
        """q(x) for prepared content rows: the one path every item is scored through."""
        rows = torch.as_tensor(np.asarray(content, dtype=np.float32), device=self.map_w_.device)
        return rows @ self.map_w_ + self.map_b_

    def _score(self, users: np.ndarray) -> torch.Tensor:
        return self.user_factors_[torch.as_tensor(users, device=self.user_factors_.device)] @ self.item_factors_.T

    def _score_items(self, users: np.ndarray, modalities: dict[str, np.ndarray]) -> torch.Tensor:
        content = content_matrix(modalities, self.config.center, None, self._content_means())
        users_f = self.user_factors_[torch.as_tensor(users, device=self.user_factors_.device)]
        return users_f @ self._map(content).T
