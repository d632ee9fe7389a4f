"""Most popular: every user gets the items with the most training interactions (a true count, one
per user-item pair — not RecBole's per-batch count)."""
from __future__ import annotations

import numpy as np
import torch

from mmwork.models.recommenders.base import Recommender


class MostPopular(Recommender):
    """Scores each item by how many training users interacted with it.

    Learned state: ``counts_`` (n_items,) float tensor.

    >>> model = MostPopular().fit(split.train)          # doctest: +SKIP
    """

    name = "pop"
    _state = ("counts_",)

    def _fit(self, train, item_features, valid):
        self.counts_ = torch.as_tensor(np.diff(train.binary().tocsc().indptr), dtype=torch.float32, device=self.device_)

    def _score(self, users: np.ndarray) -> torch.Tensor:
        return self.counts_.unsqueeze(0).expand(len(users), -1).clone()
