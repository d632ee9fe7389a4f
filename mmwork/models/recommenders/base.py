"""The one interface every recommender follows (scikit-learn style).

The constructor validates and stores a typed configuration (``model.config``, one pydantic class per
model with a docstring per field), so a wrong parameter fails before any compute; ``fit`` learns;
``score`` returns a dense ``(len(users), n_items)`` torch tensor on the model's device (higher =
better); ``recommend`` turns scores into a ranked table. Models that read content (``content``,
``hybrid``) also score items they were never trained on, ``score_items(users, item_features)``,
from the new items' content alone, preprocessed exactly as the catalogue was at fit. Learned state
follows scikit-learn's convention: attributes ending in ``_``, set by ``fit`` only. ``save``/``load``
(:mod:`mmwork.models.base`) use safetensors for tensors and JSON for the rest, with the ids and the
training matrix, so loading never unpickles code and a loaded model recommends on its own.

Models never import the evaluator: early stopping calls ``valid``, a callback ``valid(model) ->
float`` (higher is better) such as ``mmwork.evaluation.Validator(split)``. The iterative models
(bpr, multvae, hybrid) train through :class:`mmwork.models.training.Training` in "max" mode, with
``fit(..., checkpoint=DIR)`` and ``resume_from=DIR`` as every trained network has.

>>> from mmwork.models.recommenders import MostPopular                     # doctest: +SKIP
>>> model = MostPopular().fit(split.train)                         # doctest: +SKIP
>>> model.recommend(["196"], k=3)                                  # doctest: +SKIP
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch

from mmwork.core.config import ModelConfig
from mmwork.core.device import resolve_device
from mmwork.core.errors import MmworkError
from mmwork.models.base import TrainedModel
from mmwork.models.training import Training, Validation, read_checkpoint
from mmwork.store.interactions import Interactions

log = logging.getLogger("mmwork.models.recommenders")


class RecommenderConfig(ModelConfig):
    """Parameters every recommender has."""


class Recommender(TrainedModel):
    """Base class. Subclasses set ``name`` and ``config_class``, implement ``_fit`` and ``_score``,
    and list in ``_state`` the names of the learned tensors/arrays (each ending in ``_``). Models that
    read content also implement ``_score_items`` and list in ``_content_state`` what it needs beyond
    ``_state`` (the content preprocessing learned at fit)."""

    name: ClassVar[str] = "base"
    config_class: ClassVar[type[RecommenderConfig]] = RecommenderConfig
    uses_features: ClassVar[bool] = False  # True if the model reads item content features
    _state: ClassVar[tuple[str, ...]] = ()
    # learned state that only score_items needs (the content preprocessing); kept apart from _state so
    # that a model saved before it existed still loads and scores its own catalogue
    _content_state: ClassVar[tuple[str, ...]] = ()

    # -- training and scoring --------------------------------------------------------------------
    iterative: ClassVar[bool] = False  # trained in epochs through Training (checkpoints, resuming)

    def fit(self, train: Interactions, item_features: np.ndarray | dict | None = None,
            valid: Validation | None = None, *, checkpoint: str | Path | None = None,
            resume_from: str | Path | None = None) -> "Recommender":
        """Learn from ``train`` (optionally content ``item_features`` aligned to ``train.item_ids``
        and a ``valid(model) -> float`` callback for early stopping). Iterative models also take
        ``checkpoint`` (a folder rewritten after every epoch) and ``resume_from`` (continue one: same
        class, parameters except ``epochs``/``patience``/``device``, and the same training data).
        Returns self."""
        if not isinstance(train, Interactions):
            raise MmworkError(f"fit expects mmwork Interactions, got {type(train).__name__}; "
                              "use mmwork.evaluation splits or Interactions.from_frame")
        if train.nnz == 0:
            raise MmworkError("the training interactions are empty")
        if self.uses_features and item_features is None:
            raise MmworkError(f"{self.name} needs item_features (a feature table aligned to the items)")
        if valid is not None and not callable(valid):
            raise MmworkError(f"valid must be a callback valid(model) -> float, e.g. "
                              f"mmwork.evaluation.Validator(split); got {type(valid).__name__}")
        if (checkpoint is not None or resume_from is not None) and not self.iterative:
            raise MmworkError(f"{self.name} is not trained in epochs: it has no checkpoints to write or resume")
        resumed = read_checkpoint(resume_from, self) if resume_from is not None else None
        for name in self._state + self._content_state + ("history_", "best_epoch_", "modalities_"):
            self.__dict__.pop(name, None)  # a failed fit must not leave an older fit's state behind
        self.device_ = resolve_device(self.config.device)
        self.user_ids_, self.item_ids_ = train.user_ids, train.item_ids
        self.train_ = train
        if self.iterative:
            self._fit(train, item_features, self._training(valid, checkpoint, resumed))
        else:
            self._fit(train, item_features, valid)
        return self

    def _training(self, valid, checkpoint, resumed) -> Training:
        """The loop of an iterative model: "max" mode, every ``eval_every`` epochs (every epoch without it)."""
        return Training(self, valid, checkpoint, resumed, mode="max", every=getattr(self.config, "eval_every", 1))

    def _fit(self, train: Interactions, item_features, valid) -> None:
        """Learn; ``valid`` is the callback, or the :class:`Training` of an ``iterative`` model."""
        raise NotImplementedError

    def _state_names(self) -> tuple[str, ...]:
        return self._state + tuple(n for n in self._content_state if n in self.__dict__)

    def _check_fitted(self) -> None:
        missing = [n for n in ("item_ids_",) + self._state if n not in self.__dict__]
        if missing:
            raise MmworkError(f"{self.name} is not fitted (no {', '.join(missing)}); call fit(train) first")

    @torch.no_grad()
    def score(self, users: np.ndarray) -> torch.Tensor:
        """Scores of every item for the users at these row indices, shape (len(users), n_items)."""
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        return self._score(users).float()

    def _score(self, users: np.ndarray) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def score_items(self, users, item_features) -> torch.Tensor:
        """Scores of new items, known only by their content, for the users at these row indices:
        shape (len(users), n_new). ``item_features`` holds the new items' rows of the same features
        the model was fitted with (a dict keyed as at fit, or one array for a single modality), and
        each modality is centred and normalised exactly as the catalogue was (learned at fit), so the
        catalogue's own features give back the scores of ``score`` (``content``) or of a cold item
        (``hybrid``: content path only).

        >>> new = {"text:minilm": embed(["Toy Story 3 (2010). Genres: Animation."]),
        ...        "items:genres": genre_rows}                              # doctest: +SKIP
        >>> model.score_items([0, 1], new).shape                            # doctest: +SKIP
        torch.Size([2, 1])
        """
        if not self.uses_features:
            raise MmworkError(f"{self.name} ranks only the items it was trained on; use content or hybrid "
                              "to score new items")
        self._check_fitted()
        missing = [n for n in self._content_state if n not in self.__dict__]
        if missing or "modalities_" not in self.__dict__:
            raise MmworkError(f"this {self.name} model was saved by an older mmwork without the content "
                              "preprocessing it needs to score new items; retrain it")
        users = np.asarray(users, dtype=np.int64).reshape(-1)
        if len(users) and (users.min() < 0 or users.max() >= len(self.user_ids_)):
            raise MmworkError(f"user rows must lie in 0..{len(self.user_ids_) - 1}, got {users.min()}..{users.max()}")
        return self._score_items(users, self._new_items(item_features)).float()

    def _score_items(self, users: np.ndarray, modalities: dict[str, np.ndarray]) -> torch.Tensor:
        raise NotImplementedError

    def _new_items(self, item_features) -> dict[str, np.ndarray]:
        """The new items' features as ``{modality: float32 array}`` in the order seen at fit, each
        checked for its width and finite values."""
        from mmwork.store.item_features import as_modalities
        found = dict(item_features) if isinstance(item_features, dict) else {"features": item_features}
        if set(found) != set(self.modalities_):
            raise MmworkError(f"the new items' features are {sorted(found)}; {self.name} was fitted with "
                              f"{self.modalities_}: give the same features (load_item_features specs)")
        rows = {len(np.atleast_2d(np.asarray(a.cpu() if hasattr(a, "cpu") else a))) for a in found.values()}
        if len(rows) != 1 or 0 in rows:
            raise MmworkError(f"the new items' feature arrays must have the same, non-zero number of rows; "
                              f"got {sorted(rows)}")
        modalities = as_modalities({name: found[name] for name in self.modalities_}, rows.pop())
        widths = dict(zip(self.modalities_, self.modality_dims_.tolist()))
        wrong = {k: (v.shape[1], widths[k]) for k, v in modalities.items() if v.shape[1] != widths[k]}
        if wrong:
            raise MmworkError("the new items' features have the wrong widths: " +
                              ", ".join(f"{k} {got} (fitted with {want})" for k, (got, want) in wrong.items()))
        return modalities

    def _set_content_means(self, means: dict[str, np.ndarray]) -> None:
        """Keep the centring means (one float64 vector per modality, in fit order) as learned state."""
        self.modalities_ = list(means)
        self.modality_dims_ = torch.as_tensor([len(m) for m in means.values()], dtype=torch.int64)
        self.content_means_ = torch.as_tensor(np.concatenate(list(means.values())), dtype=torch.float64)

    def _content_means(self) -> dict[str, np.ndarray]:
        """The centring means kept by :meth:`_set_content_means`, by modality."""
        parts = np.split(self.content_means_.cpu().numpy(), np.cumsum(self.modality_dims_.tolist())[:-1])
        return dict(zip(self.modalities_, parts))

    def recommend(self, user_ids, k: int = 10, exclude_seen: bool = True) -> pd.DataFrame:
        """Top-``k`` items for each user id: a frame of user_id, rank (1 = best), item_id, score.

        Unknown user ids are an error (a cold user has no row to score); items the user interacted
        with in training are left out unless ``exclude_seen=False``.
        """
        self._check_fitted()
        n_items = len(self.item_ids_)
        if not 1 <= k <= n_items:
            raise MmworkError(f"k must be between 1 and the catalogue size ({n_items}), got {k}")
        users = self.train_.user_index(np.atleast_1d(user_ids))
        scores = self.score(users)
        if exclude_seen:
            seen = self.train_.matrix[users]
            rows, cols = seen.nonzero()
            scores[torch.as_tensor(rows, device=scores.device), torch.as_tensor(cols, device=scores.device)] = -torch.inf
            k = min(k, n_items - int(np.diff(seen.indptr).min()))
        top = torch.topk(scores, k, dim=1)
        return pd.DataFrame({
            "user_id": np.repeat(self.user_ids_[users], k),
            "rank": np.tile(np.arange(1, k + 1), len(users)),
            "item_id": self.item_ids_[top.indices.cpu().numpy().ravel()],
            "score": top.values.cpu().numpy().ravel(),
        })

    # -- persistence ---------------------------------------------------------------------------------
    def _extra_tensors(self) -> dict[str, torch.Tensor]:
        """The training matrix, so that a loaded model leaves out each user's seen items."""
        train = self.train_.matrix.tocoo()
        return {"_train_rows": torch.as_tensor(train.row.astype(np.int64)),
                "_train_cols": torch.as_tensor(train.col.astype(np.int64)),
                "_train_data": torch.as_tensor(train.data)}

    def _meta(self) -> dict:
        meta = super()._meta() | {"user_ids": [str(u) for u in self.user_ids_],
                                  "item_ids": [str(i) for i in self.item_ids_]}
        if "modalities_" in self.__dict__:
            meta["modalities"] = list(self.modalities_)
        return meta

    def _restore(self, meta: dict, tensors: dict[str, torch.Tensor], path: Path) -> None:
        import scipy.sparse as sp
        self.user_ids_ = np.asarray(meta["user_ids"], dtype=object)
        self.item_ids_ = np.asarray(meta["item_ids"], dtype=object)
        matrix = sp.csr_matrix((tensors["_train_data"].numpy(), (tensors["_train_rows"].numpy(),
                                tensors["_train_cols"].numpy())), shape=(len(self.user_ids_), len(self.item_ids_)))
        self.train_ = Interactions(matrix, self.user_ids_, self.item_ids_)
        for name, value in tensors.items():
            if not name.startswith("_"):
                setattr(self, name, value.to(self.device_))
        if "modalities" in meta:
            self.modalities_ = list(meta["modalities"])
        if self._state and any(n not in self.__dict__ for n in self._state):
            raise MmworkError(f"{path} holds a {type(self).__name__} without all its learned state; retrain it")
