"""Does generated content fit its user? Percentile ranks by a judge recommender, the swap test, and
bootstrap intervals over users.

The *judge* is a recommender that did not steer generation (another family or seed than the guide)
and reads new items through the same features as real ones (``judge.score_items``). For a user u
and a set of items S (generated texts, or catalogue items), each item's **percentile rank** is the
share (0-100, ties counted half) of the comparison items it outscores for u, where the comparison
items are the whole catalogue minus u's training items (which a recommender would never show u
again) minus the catalogue items of S itself; 50 is what a random item gets. The **swap test**
scores the same set for m other users drawn at random (leaving out, for each of them, catalogue
items they already have in training: those would never be offered to them); the **lift** is the mean percentile rank of
each user's set for that user divided by the mean for the other users (> 1: the set fits its user
better than it fits people in general). Intervals are percentile bootstraps over users (seeded);
the lift's interval resamples users and recomputes the ratio of means.

>>> ranks = percentile_ranks(np.array([[2.0, 0.0]]), np.array([[0.0, 1.0, 3.0]]), np.ones((1, 3), bool))
>>> ranks.round(1).tolist()
[[66.7, 16.7]]
>>> judge_sets(judge, sets, train.matrix, swaps=10, seed=0)                   # doctest: +SKIP
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mmwork.errors import MmworkError

LEVEL = 0.95
N_BOOT = 2000


def percentile_ranks(scores, catalogue_scores, allowed, tol: float = 1e-6) -> np.ndarray:
    """Percentile rank (0-100) of each ``scores[r, j]`` among ``catalogue_scores[r]`` restricted to
    ``allowed[r]`` (bool): 100 * (number below + half the number equal) / number allowed. Scores
    within ``tol`` times the row's largest absolute score count as equal, so that the float noise
    between scoring an item as new (``score_items``) and as a catalogue item (``score``) does not
    break ties between items with the same content."""
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    catalogue = np.atleast_2d(np.asarray(catalogue_scores, dtype=np.float64))
    allowed = np.atleast_2d(np.asarray(allowed, dtype=bool))
    if catalogue.shape != allowed.shape or len(scores) != len(catalogue):
        raise MmworkError(f"scores {scores.shape}, catalogue scores {catalogue.shape} and allowed {allowed.shape} "
                          "must have one row per user (and the last two the same shape)")
    if not (np.isfinite(scores).all() and np.isfinite(catalogue[allowed]).all()):
        raise MmworkError("the judge's scores hold NaN or infinite values")
    out = np.empty(scores.shape)
    for row in range(len(scores)):
        comparison = np.sort(catalogue[row, allowed[row]])
        if len(comparison) == 0:
            raise MmworkError("a user has no comparison items left (every catalogue item is excluded)")
        slack = tol * max(1.0, float(np.abs(comparison).max()))
        below = np.searchsorted(comparison, scores[row] - slack, "left")
        not_above = np.searchsorted(comparison, scores[row] + slack, "right")
        out[row] = 100.0 * (below + not_above) / 2 / len(comparison)
    return out


@dataclass
class ItemSet:
    """The items one condition offers one user: ``features`` (new items' content, keyed like the
    judge's features) or ``items`` (catalogue column indices), not both."""

    user: int
    """Row of the target user in the training matrix."""
    features: dict | None = None
    items: np.ndarray | None = None
    twins: np.ndarray | None = None
    """With ``features``: for each new item the catalogue index of an identical one (e.g. a generated
    text equal to a catalogue text), -1 for none; a twin counts as that catalogue item (left out of
    the comparison, and not ranked for a user who has it in training)."""

    def __post_init__(self):
        if (self.features is None) == (self.items is None):
            raise MmworkError("an ItemSet holds either new items' features or catalogue item indices")
        if self.twins is not None and (self.features is None or len(self.twins) != len(self)):
            raise MmworkError("twins go with new items' features, one per item")

    def __len__(self) -> int:
        return len(self.items) if self.items is not None else len(next(iter(self.features.values())))


def set_ranks(judge, users: np.ndarray, item_set: ItemSet, catalogue_scores: np.ndarray,
              train: sp.csr_matrix) -> np.ndarray:
    """Percentile ranks (len(users) x len(item_set)) of one set's items for each of ``users`` (training
    matrix rows) by ``judge``, given the judge's ``catalogue_scores`` for those users; NaN where a
    catalogue item of the set (or a new item's twin) is one of that user's training items."""
    users = np.asarray(users, dtype=np.int64)
    if len(item_set) == 0:
        raise MmworkError(f"user row {item_set.user}'s item set is empty")
    allowed = np.asarray(train[users].todense()) == 0
    if item_set.features is not None:
        scores = judge.score_items(users, item_set.features).cpu().numpy()
        twins = np.full(len(item_set), -1) if item_set.twins is None else np.asarray(item_set.twins, dtype=np.int64)
    else:
        twins = np.asarray(item_set.items, dtype=np.int64)
        scores = catalogue_scores[:, twins]
    known = twins >= 0
    seen = np.zeros(scores.shape, dtype=bool)
    seen[:, known] = ~allowed[:, twins[known]]
    allowed[:, twins[known]] = False
    ranks = percentile_ranks(scores, catalogue_scores, allowed)
    ranks[seen] = np.nan
    return ranks


def swap_partners(users: np.ndarray, m: int, seed: int = 0) -> np.ndarray:
    """For each of ``users``, ``m`` distinct *other* users of the same list drawn at random
    (len(users) x m), seeded."""
    users = np.asarray(users)
    if len(users) < 2:
        raise MmworkError("the swap test needs at least 2 users")
    m = min(int(m), len(users) - 1)
    if m < 1:
        raise MmworkError(f"swaps must be >= 1, got {m}")
    rng = np.random.default_rng(seed)
    out = np.empty((len(users), m), dtype=users.dtype)
    for row in range(len(users)):
        others = np.delete(np.arange(len(users)), row)
        out[row] = users[rng.choice(others, m, replace=False)]
    return out


@dataclass
class SetRanks:
    """Per-user mean percentile ranks of one condition (one entry per evaluated user)."""

    target: np.ndarray
    """Mean rank of the user's set for the user."""
    swap: np.ndarray
    """Mean rank of the same set for the swap partners."""
    items: int
    """Items ranked in all."""


def judge_sets(judge, sets: Sequence[ItemSet], train: sp.csr_matrix, catalogue_scores: dict[int, np.ndarray],
               partners: np.ndarray) -> SetRanks:
    """Rank every user's set for its user and for that user's swap ``partners`` (a row per set, as
    from :func:`swap_partners`); ``catalogue_scores`` maps each user row to the judge's scores of
    every catalogue item. Means skip the items a user already has in training (see :func:`set_ranks`)."""
    if len(sets) != len(partners):
        raise MmworkError(f"{len(sets)} item sets but {len(partners)} rows of swap partners")
    train = sp.csr_matrix(train)
    target, swap, items = np.empty(len(sets)), np.empty(len(sets)), 0
    for row, item_set in enumerate(sets):
        users = np.concatenate([[item_set.user], partners[row]]).astype(np.int64)
        ranks = set_ranks(judge, users, item_set, np.stack([catalogue_scores[int(u)] for u in users]), train)
        if np.isnan(ranks[0]).all() or np.isnan(ranks[1:]).all():
            who = "the user's" if np.isnan(ranks[0]).all() else "every swap partner's"
            raise MmworkError(f"every item of user row {item_set.user}'s set is one of {who} training items: "
                              "nothing to rank")
        target[row], swap[row] = np.nanmean(ranks[0]), np.nanmean(ranks[1:])
        items += len(item_set)
    return SetRanks(target, swap, items)


def bootstrap_ci(values, level: float = LEVEL, n_boot: int = N_BOOT, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of ``values`` (one per user), seeded.

    >>> bootstrap_ci([1.0, 2.0, 3.0, 4.0], seed=0) == bootstrap_ci([1.0, 2.0, 3.0, 4.0], seed=0)
    True
    """
    values = _check_values(values, "values")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (n_boot, len(values)))].mean(1)
    return _interval(means, level)


def ratio_ci(numerator, denominator, level: float = LEVEL, n_boot: int = N_BOOT,
             seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval of mean(numerator) / mean(denominator), resampling the paired
    values (one pair per user) together, seeded."""
    numerator, denominator = _check_values(numerator, "numerator"), _check_values(denominator, "denominator")
    if len(numerator) != len(denominator):
        raise MmworkError(f"numerator and denominator must pair up: {len(numerator)} vs {len(denominator)} values")
    rng = np.random.default_rng(seed)
    draw = rng.integers(0, len(numerator), (n_boot, len(numerator)))
    return _interval(numerator[draw].mean(1) / denominator[draw].mean(1), level)


def _check_values(values, what: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(values) == 0:
        raise MmworkError(f"{what} is empty: nothing to bootstrap")
    if not np.isfinite(values).all():
        raise MmworkError(f"{what} holds NaN or infinite values")
    return values


def _interval(draws: np.ndarray, level: float) -> tuple[float, float]:
    if not 0 < level < 1:
        raise MmworkError(f"level must lie in (0, 1), got {level}")
    low, high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def intra_list_diversity(vectors) -> float:
    """Mean pairwise cosine distance (1 - cosine) between the rows of ``vectors`` (one user's set);
    NaN for fewer than two items.

    >>> round(intra_list_diversity(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])), 4)
    0.6667
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    if len(vectors) < 2:
        return float("nan")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms == 0, 1, norms)
    cosine = unit @ unit.T
    upper = np.triu_indices(len(unit), 1)
    return float(np.mean(1.0 - cosine[upper]))


def lift_table(conditions: dict[str, SetRanks], level: float = LEVEL, n_boot: int = N_BOOT,
               seed: int = 0) -> pd.DataFrame:
    """One row per condition: users, items, the mean percentile rank for the target user with its
    interval, the same for the swap partners, and the lift (target / swap) with its interval."""
    rows = []
    for name, ranks in conditions.items():
        low, high = bootstrap_ci(ranks.target, level, n_boot, seed)
        swap_low, swap_high = bootstrap_ci(ranks.swap, level, n_boot, seed)
        lift_low, lift_high = ratio_ci(ranks.target, ranks.swap, level, n_boot, seed)
        rows.append({"condition": name, "users": len(ranks.target), "items": ranks.items,
                     "pr": float(ranks.target.mean()), "pr_low": low, "pr_high": high,
                     "swap_pr": float(ranks.swap.mean()), "swap_low": swap_low, "swap_high": swap_high,
                     "lift": float(ranks.target.mean() / ranks.swap.mean()), "lift_low": lift_low,
                     "lift_high": lift_high})
    return pd.DataFrame(rows)
