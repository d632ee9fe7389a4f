"""Full ranking on the model's device, in user batches: score every item, mask what may not be
recommended (the split's rule, see :mod:`mmwork.evaluation.masking`), take the top K with torch, and
look up which of them are relevant.

>>> result = evaluate(model, split, part="test", k=10)        # doctest: +SKIP
>>> result.metrics["ndcg"].mean()                            # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mmwork.core.errors import MmworkError
from mmwork.evaluation import masking
from mmwork.evaluation.metrics import RANKING_METRICS
from mmwork.store.interactions import Split


@dataclass
class Ranking:
    """Per evaluated user: the top-K item indices, the relevance of each, and every metric."""

    users: np.ndarray
    top_items: np.ndarray  # users x K
    hits: np.ndarray  # users x K, bool
    n_relevant: np.ndarray
    metrics: dict[str, np.ndarray]


def evaluate(model, split: Split, part: str = "test", k: int = 10, batch_size: int = 1024,
             metrics: tuple[str, ...] = tuple(RANKING_METRICS)) -> Ranking:
    """Rank the items the split's rule allows for every user who has relevant items in ``part``."""
    if part not in ("valid", "test"):
        raise MmworkError(f"part must be 'valid' or 'test', got {part!r}")
    unknown = set(metrics) - set(RANKING_METRICS)
    if unknown:
        raise MmworkError(f"unknown metric(s) {sorted(unknown)}; choose from {sorted(RANKING_METRICS)}")
    truth = masking.relevant(split, part)
    n_relevant_all = np.diff(truth.indptr)
    users = np.flatnonzero(n_relevant_all > 0)
    if len(users) == 0:
        raise MmworkError(f"no user has relevant interactions in the {part} set: nothing to evaluate")
    candidates = masking.candidates(split, part)
    n_items = split.train.n_items
    if not 1 <= k <= (len(candidates) if candidates is not None else n_items):
        raise MmworkError(f"k={k} is larger than the number of items that can be ranked")
    excluded = masking.excluded(split, part)
    tops, hit_rows = [], []
    for start in range(0, len(users), batch_size):
        batch = users[start:start + batch_size]
        scores = model.score(batch).float()
        device = scores.device
        if candidates is not None:
            allowed = torch.full((n_items,), False, device=device)
            allowed[torch.as_tensor(candidates, device=device)] = True
            scores = scores.masked_fill(~allowed, -torch.inf)
        seen = excluded[batch].tocoo()
        scores[torch.as_tensor(seen.row, device=device), torch.as_tensor(seen.col, device=device)] = -torch.inf
        top = torch.topk(scores, k, dim=1).indices
        relevant = torch.zeros_like(scores, dtype=torch.bool)
        rel = truth[batch].tocoo()
        relevant[torch.as_tensor(rel.row, device=device), torch.as_tensor(rel.col, device=device)] = True
        tops.append(top.cpu().numpy())
        hit_rows.append(torch.gather(relevant, 1, top).cpu().numpy())
    top_items, hits = np.concatenate(tops), np.concatenate(hit_rows)
    n_relevant = n_relevant_all[users]
    return Ranking(users, top_items, hits, n_relevant,
                   {name: RANKING_METRICS[name](hits, n_relevant) for name in metrics})


@dataclass
class Validator:
    """The early-stopping callback models receive as ``fit(..., valid=Validator(split))``: the mean
    ``metric@k`` on ``split.valid`` under the split's masking rule. ``k`` shrinks to the number of
    rankable items when there are fewer.

    >>> model.fit(split.train, valid=Validator(split))           # doctest: +SKIP
    >>> model.history_[-1]["valid_ndcg@10"]                      # doctest: +SKIP
    """

    split: Split
    k: int = 10
    metric: str = "ndcg"

    def __post_init__(self):
        if self.metric not in RANKING_METRICS:
            raise MmworkError(f"unknown metric {self.metric!r}; choose from {sorted(RANKING_METRICS)}")
        allowed = masking.candidates(self.split, "valid")
        if allowed is not None:
            self.k = min(self.k, len(allowed))

    @property
    def name(self) -> str:
        return f"{self.metric}@{self.k}"

    def __call__(self, model) -> float:
        return float(evaluate(model, self.split, "valid", k=self.k, metrics=(self.metric,)).metrics[self.metric].mean())
