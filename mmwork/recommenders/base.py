"""The one interface every recommender follows (scikit-learn style).

The constructor validates and stores a typed configuration (``model.config``, one pydantic class per
model with a docstring per field), so a wrong parameter fails before any compute; ``fit`` learns;
``score`` returns a dense ``(len(users), n_items)`` torch tensor on the model's device (higher =
better); ``recommend`` turns scores into a ranked table. Learned state follows scikit-learn's
convention: attributes ending in ``_``, set by ``fit`` only. ``save``/``load`` use safetensors for
tensors and JSON for the rest, so loading never unpickles code.

Models never import the evaluator: early stopping calls ``valid``, a callback ``valid(model) ->
float`` (higher is better) such as ``mmwork.evaluation.Validator(split)``.

>>> from mmwork.recommenders import MostPopular                     # doctest: +SKIP
>>> model = MostPopular().fit(split.train)                         # doctest: +SKIP
>>> model.recommend(["196"], k=3)                                  # doctest: +SKIP
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from mmwork.config import Configurable, ModelConfig
from mmwork.device import resolve_device
from mmwork.errors import MmworkError
from mmwork.interactions import Interactions

log = logging.getLogger("mmwork.recommenders")


class RecommenderConfig(ModelConfig):
    """Parameters every recommender has."""


Validation = Callable[["Recommender"], float]


class Recommender(Configurable):
    """Base class. Subclasses set ``name`` and ``config_class``, implement ``_fit`` and ``_score``,
    and list in ``_state`` the names of the learned tensors/arrays (each ending in ``_``)."""

    name: ClassVar[str] = "base"
    config_class: ClassVar[type[RecommenderConfig]] = RecommenderConfig
    uses_features: ClassVar[bool] = False  # True if the model reads item content features
    _state: ClassVar[tuple[str, ...]] = ()

    # -- training and scoring --------------------------------------------------------------------
    def fit(self, train: Interactions, item_features: np.ndarray | dict | None = None,
            valid: Validation | None = None) -> "Recommender":
        """Learn from ``train`` (optionally content ``item_features`` aligned to ``train.item_ids``
        and a ``valid(model) -> float`` callback for early stopping). Returns self."""
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
        for name in self._state + ("history_", "best_epoch_"):
            self.__dict__.pop(name, None)  # a failed fit must not leave an older fit's state behind
        self.device_ = resolve_device(self.config.device)
        self.user_ids_, self.item_ids_ = train.user_ids, train.item_ids
        self.train_ = train
        self._fit(train, item_features, valid)
        return self

    def _fit(self, train: Interactions, item_features, valid: Interactions | None) -> None:
        raise NotImplementedError

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

    # -- persistence -----------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write ``path/model.safetensors`` (learned tensors) and ``path/model.json`` (class,
        parameters, ids)."""
        from safetensors.torch import save_file
        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tensors = {}
        for name in self._state:
            value = getattr(self, name)
            tensors[name] = (value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))).detach().cpu().contiguous()
        train = self.train_.matrix.tocoo()
        tensors["_train_rows"] = torch.as_tensor(train.row.astype(np.int64))
        tensors["_train_cols"] = torch.as_tensor(train.col.astype(np.int64))
        tensors["_train_data"] = torch.as_tensor(train.data)
        save_file(tensors, str(path / "model.safetensors"))
        meta = {"class": type(self).__name__, "name": self.name, "params": self.get_params(),
                "user_ids": [str(u) for u in self.user_ids_], "item_ids": [str(i) for i in self.item_ids_]}
        (path / "model.json").write_text(json.dumps(meta, default=str))
        return path

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> "Recommender":
        """Load a model written by :meth:`save` (safetensors + JSON only, no pickle)."""
        import scipy.sparse as sp
        from safetensors.torch import load_file
        import mmwork.recommenders  # noqa: F401 - makes every model class known
        path = Path(path)
        if not (path / "model.json").exists():
            raise MmworkError(f"{path} holds no saved model (model.json missing)")
        meta = json.loads((path / "model.json").read_text())
        klass = Recommender.subclass_named(meta["class"])
        if klass is None or (cls is not Recommender and not issubclass(klass, cls)):
            raise MmworkError(f"{path} holds a {meta['class']}, which cannot be loaded as {cls.__name__}")
        model = klass(meta["params"], device=device)
        model.device_ = resolve_device(device)
        tensors = load_file(str(path / "model.safetensors"))
        model.user_ids_ = np.asarray(meta["user_ids"], dtype=object)
        model.item_ids_ = np.asarray(meta["item_ids"], dtype=object)
        matrix = sp.csr_matrix((tensors.pop("_train_data").numpy(), (tensors.pop("_train_rows").numpy(),
                                tensors.pop("_train_cols").numpy())), shape=(len(model.user_ids_), len(model.item_ids_)))
        model.train_ = Interactions(matrix, model.user_ids_, model.item_ids_)
        for name, value in tensors.items():
            setattr(model, name, value.to(model.device_))
        return model


class EarlyStopping:
    """Called once per epoch: calls ``valid(model)`` every ``every`` epochs (and at ``last_epoch``),
    keeps the best epoch's state, says when ``patience`` epochs have passed without improvement, and
    shows an epoch progress bar on terminals. Without ``valid`` it never evaluates and never stops;
    ``best_epoch`` is then the last epoch.

    >>> stopper = EarlyStopping(model, valid, every=5, patience=10, last_epoch=200)   # doctest: +SKIP
    >>> if stopper.check(epoch, row, snapshot=lambda: weights.clone()): break         # doctest: +SKIP
    """

    def __init__(self, model: Recommender, valid: Validation | None, every: int, patience: int, last_epoch: int):
        self.model, self.valid = model, valid
        self.every, self.patience, self.last_epoch = every, patience, last_epoch
        self.key = f"valid_{getattr(valid, 'name', 'score')}"
        self.best, self.best_epoch, self.best_state = -np.inf, last_epoch, None
        # an epoch bar on terminals (tqdm turns itself off when stderr is not one: logs, CI, Papermill)
        self.bar = tqdm(total=last_epoch, desc=f"{model.name} epochs", unit="epoch", leave=False, disable=None)

    def check(self, epoch: int, row: dict, snapshot) -> bool:
        """Evaluate when due (adding the score to ``row``; ``snapshot()`` copies the state when it is
        the best so far); True when training should stop."""
        stop = False
        if self.valid is not None and (epoch % self.every == 0 or epoch == self.last_epoch):
            row[self.key] = score = float(self.valid(self.model))
            if score > self.best:
                self.best, self.best_epoch, self.best_state = score, epoch, snapshot()
            stop = epoch - self.best_epoch >= self.patience
            if stop:
                log.info("%s: no better %s for %d epochs; best epoch %d (%.4f)", self.model.name, self.key,
                         self.patience, self.best_epoch, self.best)
        self.bar.set_postfix({k: f"{v:.4f}" for k, v in row.items() if k in ("loss", self.key)}, refresh=False)
        self.bar.update()
        if stop or epoch == self.last_epoch:
            self.bar.close()
        return stop
