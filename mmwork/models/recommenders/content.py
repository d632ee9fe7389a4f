"""Content-based recommender: a user is the weighted mean of the content vectors of the items they
interacted with; items are ranked by cosine similarity to that profile. It needs no interactions on
an item to score it, so it ranks new (cold) items, and with ``score_items`` items that are not in the
catalogue at all (e.g. generated ones).

>>> from mmwork.store.item_features import load_item_features
>>> feats = load_item_features("movielens-100k", ["text:minilm"], split.item_ids)   # doctest: +SKIP
>>> ContentBased().fit(split.train, item_features=feats).recommend(["196"], k=5)     # doctest: +SKIP
"""
from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import NonNegativeFloat

from mmwork.core.errors import MmworkError
from mmwork.models.recommenders.base import Recommender, RecommenderConfig
from mmwork.store.item_features import as_modalities, l2_normalise

Weighting = Literal["binary", "rating", "centered"]
WEIGHTINGS = get_args(Weighting)


def centring_means(modalities: dict[str, np.ndarray], center: bool = True) -> dict[str, np.ndarray]:
    """Per modality, the float64 mean vector over the items that have content (all-zero rows have
    none), or zeros when ``center`` is off: the centring that :func:`content_matrix` applies, kept by
    the models as learned state so that new items are centred exactly as the catalogue was.

    >>> centring_means({"t": np.array([[1.0, 2.0], [3.0, 4.0], [0.0, 0.0]])})["t"].tolist()
    [2.0, 3.0]
    """
    out = {}
    for name, array in modalities.items():
        array = np.asarray(array, dtype=np.float64)
        has = np.abs(array).sum(1) > 0
        out[name] = array[has].mean(0) if center and has.any() else np.zeros(array.shape[1])
    return out


def centre(array: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """``array - mean`` in float64 on the rows that have content; all-zero rows (no content) stay zero."""
    array = np.asarray(array, dtype=np.float64)
    has = np.abs(array).sum(1) > 0
    return np.where(has[:, None], array - mean, 0.0)


def content_matrix(modalities: dict[str, np.ndarray], center: bool = True,
                   modality_weights: dict[str, float] | None = None,
                   means: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """One row per item: each modality optionally centred (minus its mean over the items that have
    content, or minus the given ``means``), L2-normalised, scaled by ``sqrt(weight)``, then
    concatenated and L2-normalised again. Items with no content (all-zero rows) stay zero."""
    weights = modality_weights or {}
    unknown = set(weights) - set(modalities)
    if unknown:
        raise MmworkError(f"modality_weights name {sorted(unknown)}, which are not among the item features "
                          f"{list(modalities)}")
    means = centring_means(modalities, center) if means is None else means
    parts = [l2_normalise(centre(array, means[name])) * np.sqrt(float(weights.get(name, 1.0)))
             for name, array in modalities.items()]
    return l2_normalise(np.concatenate(parts, axis=1)).astype(np.float32)


def interaction_weights(matrix: sp.csr_matrix, weighting: str) -> sp.csr_matrix:
    """The weight of each training interaction in a user's profile: 1 (``binary``), the stored value,
    e.g. the rating (``rating``), or the value minus the user's mean (``centered``; a user whose values
    are all equal falls back to binary)."""
    if weighting not in WEIGHTINGS:
        raise MmworkError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    out = matrix.tocsr().astype(np.float64, copy=True)
    out.eliminate_zeros()
    if weighting == "binary":
        out.data[:] = 1.0
    elif weighting == "centered":
        counts = np.diff(out.indptr)
        means = np.asarray(out.sum(1)).ravel() / np.maximum(counts, 1)
        centred = out.data - np.repeat(means, counts)
        flat = np.repeat(np.array([np.ptp(out.data[a:b]) == 0 if b > a else True
                                   for a, b in zip(out.indptr[:-1], out.indptr[1:])]), counts)
        out.data = np.where(flat, 1.0, centred)
    return out


class ContentBasedConfig(RecommenderConfig):
    """Parameters of :class:`ContentBased` (deterministic)."""

    weighting: Weighting = "binary"
    """How much each training interaction counts: 1, its rating, or its rating minus the user's mean."""
    center: bool = True
    """Subtract each modality's mean vector first (spreads out embeddings that all point one way)."""
    modality_weights: dict[str, NonNegativeFloat] | None = None
    """Weight of each modality by name in the concatenated content vector (default 1 each)."""


class ContentBased(Recommender):
    """profile_u = sum_i w_ui x_i / sum_i |w_ui| over the user's training items, score(u, j) =
    cos(profile_u, x_j), where x_i is the item's content (see :func:`content_matrix`).

    Learned state: ``item_vectors_`` (n_items x D), ``profiles_`` (n_users x D), both unit length;
    for :meth:`score_items`, ``modalities_`` (names in fit order), ``modality_dims_`` and
    ``content_means_`` (the centring means, float64, concatenated).
    """

    name = "content"
    config_class = ContentBasedConfig
    uses_features = True
    _state = ("item_vectors_", "profiles_")
    _content_state = ("content_means_", "modality_dims_")

    def _fit(self, train, item_features, valid):
        config = self.config
        modalities = as_modalities(item_features, train.n_items)
        self._set_content_means(centring_means(modalities, config.center))
        items = content_matrix(modalities, config.center, config.modality_weights, self._content_means())
        weights = interaction_weights(train.matrix, config.weighting)
        totals = np.asarray(abs(weights).sum(1)).ravel()
        profiles = np.asarray(weights @ items.astype(np.float64)) / np.maximum(totals, 1e-12)[:, None]
        self.item_vectors_ = torch.as_tensor(items, device=self.device_)
        self.profiles_ = torch.as_tensor(l2_normalise(profiles).astype(np.float32), device=self.device_)

    def _score(self, users: np.ndarray) -> torch.Tensor:
        return self.profiles_[torch.as_tensor(users, device=self.profiles_.device)] @ self.item_vectors_.T

    def _score_items(self, users: np.ndarray, modalities: dict[str, np.ndarray]) -> torch.Tensor:
        items = content_matrix(modalities, self.config.center, self.config.modality_weights, self._content_means())
        profiles = self.profiles_[torch.as_tensor(users, device=self.profiles_.device)]
        return profiles @ torch.as_tensor(items, device=profiles.device).T
