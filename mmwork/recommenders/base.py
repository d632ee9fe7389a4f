"""The one interface every recommender follows (scikit-learn style).

The constructor only stores parameters; ``fit`` validates and learns; ``score`` returns a dense
``(len(users), n_items)`` torch tensor on the model's device (higher = better); ``recommend`` turns
scores into a ranked table. ``save``/``load`` use safetensors for tensors and JSON for the rest, so
loading never unpickles code.

>>> from mmwork.recommenders import MostPopular                     # doctest: +SKIP
>>> model = MostPopular().fit(split.train)                         # doctest: +SKIP
>>> model.recommend(["196"], k=3)                                  # doctest: +SKIP
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch

from mmwork.device import resolve_device
from mmwork.errors import MmworkError
from mmwork.recommenders.data import Interactions

log = logging.getLogger("mmwork.recommenders")


class Recommender:
    """Base class. Subclasses set ``name``, implement ``_fit`` and ``_score`` and list in
    ``_state`` the attribute names of the tensors/arrays that make up the learned state."""

    name: ClassVar[str] = "base"
    uses_features: ClassVar[bool] = False  # True if the model reads item content features
    _state: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, device: str = "auto", seed: int = 0):
        self.device = device
        self.seed = seed

    # -- parameters -------------------------------------------------------------------------
    def get_params(self) -> dict:
        import inspect
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {n: getattr(self, n) for n in names if hasattr(self, n)}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    # -- training and scoring --------------------------------------------------------------------
    def fit(self, train: Interactions, item_features: np.ndarray | dict | None = None,
            valid: Interactions | None = None) -> "Recommender":
        """Learn from ``train`` (optionally content ``item_features`` aligned to ``train.item_ids``
        and a ``valid`` set for early stopping). Returns self."""
        if not isinstance(train, Interactions):
            raise MmworkError(f"fit expects mmwork Interactions, got {type(train).__name__}; "
                              "use mmwork.evaluation splits or Interactions.from_frame")
        if train.nnz == 0:
            raise MmworkError("the training interactions are empty")
        if self.uses_features and item_features is None:
            raise MmworkError(f"{self.name} needs item_features (a feature table aligned to the items)")
        self.device_ = resolve_device(self.device)
        torch.manual_seed(self.seed)
        np.random.seed(self.seed)  # noqa: NPY002 - only for libraries that read the global state
        self.user_ids_, self.item_ids_ = train.user_ids, train.item_ids
        self.train_ = train
        self._fit(train, item_features, valid)
        return self

    def _fit(self, train: Interactions, item_features, valid: Interactions | None) -> None:
        raise NotImplementedError

    def _check_fitted(self) -> None:
        if not hasattr(self, "item_ids_"):
            raise MmworkError(f"{self.name} is not fitted yet; call fit(train) first")

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
        klass = next((m for m in _subclasses(Recommender) if m.__name__ == meta["class"]), None)
        if klass is None or (cls is not Recommender and not issubclass(klass, cls)):
            raise MmworkError(f"{path} holds a {meta['class']}, which cannot be loaded as {cls.__name__}")
        params = meta["params"] | {"device": device}
        model = klass(**params)
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


def _subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub] + _subclasses(sub)
    return found


def validation_set(train: Interactions, valid: Interactions | None) -> Interactions | None:
    """``valid`` when it can drive early stopping; None when there is none or it is empty."""
    if valid is None:
        return None
    if not isinstance(valid, Interactions) or valid.matrix.shape != train.matrix.shape:
        raise MmworkError("valid must be Interactions over the same users and items as train, e.g. split.valid")
    return valid if valid.nnz > 0 else None


def valid_ndcg(model: Recommender, train: Interactions, valid: Interactions, k: int = 10) -> float:
    """Mean NDCG@k on ``valid`` (train items masked): the early-stopping signal of trained models."""
    from mmwork.evaluation.ranking import evaluate
    from mmwork.evaluation.splits import Split
    split = Split(train, valid, valid, protocol="fit-validation")
    return float(evaluate(model, split, "valid", k=k, metrics=("ndcg",)).metrics["ndcg"].mean())


class EarlyStopping:
    """Validation NDCG@10 every ``every`` epochs (and at ``last_epoch``) for a trained model: keeps the
    best epoch's state and says when ``patience`` evaluations in a row brought no improvement.
    Without a usable ``valid`` set it never evaluates and never stops.

    >>> stopper = EarlyStopping(model, train, valid, every=5, patience=2, last_epoch=200)  # doctest: +SKIP
    >>> if stopper.check(epoch, row, snapshot=lambda: weights.clone()): break              # doctest: +SKIP
    """

    def __init__(self, model: Recommender, train: Interactions, valid: Interactions | None, every: int,
                 patience: int, last_epoch: int):
        self.model, self.train, self.valid = model, train, validation_set(train, valid)
        self.every, self.patience, self.last_epoch = every, patience, last_epoch
        self.best, self.best_epoch, self.best_state, self.waited = -np.inf, last_epoch, None, 0

    def check(self, epoch: int, row: dict, snapshot) -> bool:
        """Evaluate when due (adding ``valid_ndcg@10`` to ``row``; ``snapshot()`` copies the state
        when it is the best so far); True when training should stop."""
        if self.valid is None or not (epoch % self.every == 0 or epoch == self.last_epoch):
            return False
        row["valid_ndcg@10"] = score = valid_ndcg(self.model, self.train, self.valid)
        if score > self.best:
            self.best, self.waited, self.best_epoch, self.best_state = score, 0, epoch, snapshot()
        else:
            self.waited += 1
        if self.waited >= self.patience:
            log.info("%s: no better validation NDCG@10 for %d evaluations; best epoch %d (%.4f)",
                     self.model.name, self.patience, self.best_epoch, self.best)
            return True
        return False

