"""Interactions as a sparse user x item matrix over fixed id vocabularies, and a train/valid/test
``Split`` of them: the data that recommenders learn from and evaluation ranks on. Both stages import
this module; it imports neither.

Every model and metric works on integer indices; these classes are the one place that maps between
``user_id``/``item_id`` strings and rows/columns.

>>> import pandas as pd
>>> data = Interactions.from_frame(pd.DataFrame({"user_id": ["u1", "u2"], "item_id": ["a", "b"]}),
...                                item_ids=["a", "b", "c"])
>>> data.matrix.shape, data.n_items
((2, 3), 3)
"""
from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mmwork.core.errors import MmworkError


def _lookup(ids: np.ndarray, wanted, what: str) -> np.ndarray:
    index = pd.Index(ids)
    positions = index.get_indexer(pd.Index(np.asarray(wanted, dtype=object).astype(str)))
    if (positions < 0).any():
        unknown = np.asarray(wanted, dtype=object)[positions < 0]
        raise MmworkError(f"{len(unknown)} unknown {what}(s), e.g. {list(unknown[:3])}; they were not in the data "
                          f"the model was trained on")
    return positions


@dataclass
class Interactions:
    """``matrix[u, i]`` is the weight of user ``user_ids[u]`` on item ``item_ids[i]`` (0 = none).

    ``item_ids`` is the whole catalogue, so items nobody interacted with (cold items) still have a
    column. ``timestamps`` (same sparsity pattern) is kept when the source had them.
    """

    matrix: sp.csr_matrix
    user_ids: np.ndarray
    item_ids: np.ndarray

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, user_ids=None, item_ids=None) -> "Interactions":
        """Build from a frame of ``user_id``, ``item_id`` [, ``weight``]; duplicate pairs are summed."""
        user_ids = np.asarray(sorted(frame["user_id"].astype(str).unique()) if user_ids is None else user_ids,
                              dtype=object)
        item_ids = np.asarray(sorted(frame["item_id"].astype(str).unique()) if item_ids is None else item_ids,
                              dtype=object)
        rows = _lookup(user_ids, frame["user_id"], "user")
        cols = _lookup(item_ids, frame["item_id"], "item")
        weights = frame["weight"].to_numpy(np.float32) if "weight" in frame else np.ones(len(frame), np.float32)
        matrix = sp.csr_matrix((weights, (rows, cols)), shape=(len(user_ids), len(item_ids)), dtype=np.float32)
        matrix.sum_duplicates()
        return cls(matrix, user_ids, item_ids)

    @property
    def n_users(self) -> int:
        return self.matrix.shape[0]

    @property
    def n_items(self) -> int:
        return self.matrix.shape[1]

    @property
    def nnz(self) -> int:
        return self.matrix.nnz

    def binary(self) -> sp.csr_matrix:
        """The matrix with every stored weight set to 1 (implicit feedback)."""
        out = self.matrix.copy()
        out.data[:] = 1.0
        return out

    def user_index(self, user_ids) -> np.ndarray:
        return _lookup(self.user_ids, user_ids, "user")

    def item_index(self, item_ids) -> np.ndarray:
        return _lookup(self.item_ids, item_ids, "item")

    def to_frame(self) -> pd.DataFrame:
        coo = self.matrix.tocoo()
        return pd.DataFrame({"user_id": self.user_ids[coo.row], "item_id": self.item_ids[coo.col],
                             "weight": coo.data})


@dataclass
class Split:
    """Three interaction matrices over one user and item vocabulary.

    ``candidates`` / ``valid_candidates`` (item indices) restrict ranking on test / valid to those
    items (the cold-start protocol); None means every item. ``threshold``: only valid/test weights
    ``>= threshold`` are relevant (None: all); ``mask`` names the rule that says which known items are
    removed from a ranking (``mmwork.evaluation.masking.MASKS``: "recbole" or "cornac").

    >>> split                                                                        # doctest: +SKIP
    Split(protocol='recbole', 943 users x 1682 items, train 80808 / valid 9596 / test 9596, mask recbole, ...)
    """

    train: Interactions
    valid: Interactions
    test: Interactions
    protocol: str
    params: dict = field(default_factory=dict)
    candidates: np.ndarray | None = None
    valid_candidates: np.ndarray | None = None
    description: str = ""
    threshold: float | None = None
    mask: str = "recbole"

    @property
    def user_ids(self) -> np.ndarray:
        return self.train.user_ids

    @property
    def item_ids(self) -> np.ndarray:
        return self.train.item_ids

    def data_hash(self) -> str:
        digest = hashlib.sha256()
        for part in (self.train, self.valid, self.test):
            m = part.matrix.tocsr()
            for array in (m.indptr, m.indices, m.data):
                digest.update(np.ascontiguousarray(array).tobytes())
        digest.update("\0".join(map(str, self.item_ids)).encode())
        return digest.hexdigest()[:16]

    def describe(self) -> dict:
        return {"protocol": self.protocol, "description": self.description, "params": self.params,
                "mask": self.mask, "threshold": self.threshold,
                "users": int(self.train.n_users), "items": int(self.train.n_items),
                "train": int(self.train.nnz), "valid": int(self.valid.nnz), "test": int(self.test.nnz),
                "data_hash": self.data_hash()}

    def __repr__(self) -> str:
        relevance = "" if self.threshold is None else f", relevant >= {self.threshold:g}"
        return (f"Split(protocol={self.protocol!r}, {self.train.n_users} users x {self.train.n_items} items, "
                f"train {self.train.nnz} / valid {self.valid.nnz} / test {self.test.nnz}{relevance}, "
                f"mask {self.mask}, hash {self.data_hash()[:8]}…)")

    def _repr_html_(self) -> str:
        return f"<code>{html.escape(repr(self))}</code>"

    def to_files(self, folder: str | Path) -> Path:
        """Write train/valid/test as ``user_id, item_id, weight`` CSV files (to compare libraries)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("train", "valid", "test"):
            getattr(self, name).to_frame().to_csv(folder / f"{name}.csv", index=False)
        return folder
