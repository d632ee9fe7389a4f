"""Does generated content fit its user? Percentile ranks by a judge recommender on one scoring path,
the swap test, a placebo, and bootstrap intervals over users, swap partners and generator seeds.

The *judge* is a recommender that did not steer generation. It must rank every item, real or
generated, with **one** scorer: :class:`ContentJudge` reads a content model only through
``score_items``, so a catalogue item is scored from its content exactly as a new text with the same
content would be (a hybrid's warm path, with item embeddings and biases, is never used), and a
generated copy of catalogue item i takes i's score, hence i's rank. For a user u and a set of items S,
each item's **percentile rank** is the share (0-100, ties counted half) of the comparison items it
outscores for u: the whole catalogue minus u's training items minus the catalogue items of S; 50 is
what a random item gets. The **swap test** ranks the same set for m other users (leaving out, for each,
items they already have in training). Per condition, :func:`lift_table` reports the mean rank for the
target users, for the swap partners, their **difference** (target - swap, percentile points) and the
**lift** (target / swap, a ratio of bounded ranks whose ceiling is 100 / swap, so compare conditions
by the difference). Intervals are percentile bootstraps that resample generator seeds, users, and
each user's swap partners (:func:`hierarchical_bootstrap`). A **placebo** hands one user's set to
another (:func:`placebo_donors`): its lift interval should cover 1.

>>> ranks = percentile_ranks(np.array([[2.0, 0.0]]), np.array([[0.0, 1.0, 3.0]]), np.ones((1, 3), bool))
>>> ranks.round(1).tolist()
[[66.7, 16.7]]
>>> judge_sets(ContentJudge(model, catalogue), sets, train.matrix, scores, partners)   # doctest: +SKIP
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mmwork.core.errors import MmworkError
from mmwork.store.item_features import l2_normalise

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


@dataclass
class ContentJudge:
    """A content recommender read through one scoring path: ``score_items`` on the catalogue's content
    for catalogue items, and on their own content for new ones.

    >>> judge = ContentJudge(hybrid, {"text:minilm": minilm, "items:genres": genres})   # doctest: +SKIP
    >>> judge.catalogue_scores(np.array([0, 1])).shape                                   # doctest: +SKIP
    (2, 1682)
    """

    model: object
    """A fitted recommender with ``score_items`` (``ContentBased``, ``MultimodalHybrid``, ``TextFactors``)."""
    catalogue: dict
    """The catalogue's item features ``{spec: rows}``, aligned to the model's items, as it was fitted with."""
    batch: int = 64
    """Users scored per call."""

    def __post_init__(self):
        if not callable(getattr(self.model, "score_items", None)):
            raise MmworkError(f"a judge scores new items by their content; {type(self.model).__name__} has no "
                              "score_items")

    def score_items(self, users, features: dict) -> np.ndarray:
        """Scores (len(users) x items) of items given by content; ``features`` may hold more specs than
        the model reads (the others are ignored)."""
        names = getattr(self.model, "modalities_", list(features))
        missing = [n for n in names if n not in features]
        if missing:
            raise MmworkError(f"the items' features lack {missing}, which the judge reads")
        users = np.asarray(users, dtype=np.int64)
        out = [self.model.score_items(users[a:a + self.batch], {n: features[n] for n in names})
               for a in range(0, len(users), self.batch)]
        return np.concatenate([o.cpu().numpy() if hasattr(o, "cpu") else np.asarray(o) for o in out])

    def catalogue_scores(self, users) -> np.ndarray:
        """Scores (len(users) x n_items) of every catalogue item, each through its content."""
        return self.score_items(users, self.catalogue)

    def score(self, users):
        """:meth:`catalogue_scores` as a torch tensor, so that ``mmwork.evaluation.evaluate`` can measure
        the judge as it is used here (every item on the content path)."""
        import torch
        return torch.as_tensor(self.catalogue_scores(users))


def set_ranks(judge, users: np.ndarray, item_set: ItemSet, catalogue_scores: np.ndarray,
              train: sp.csr_matrix) -> np.ndarray:
    """Percentile ranks (len(users) x len(item_set)) of one set's items for each of ``users`` (training
    matrix rows), given the judge's ``catalogue_scores`` for those users. New items are scored by
    ``judge.score_items``, except twins (a copy of catalogue item i), which take i's catalogue score;
    NaN where a catalogue item of the set (or a twin) is one of that user's training items."""
    users = np.asarray(users, dtype=np.int64)
    if len(item_set) == 0:
        raise MmworkError(f"user row {item_set.user}'s item set is empty")
    allowed = np.asarray(train[users].todense()) == 0
    if item_set.features is not None:
        twins = np.full(len(item_set), -1) if item_set.twins is None else np.asarray(item_set.twins, dtype=np.int64)
        scores = catalogue_scores[:, np.maximum(twins, 0)].astype(np.float64)
        new = np.flatnonzero(twins < 0)
        if len(new):
            fresh = judge.score_items(users, {k: np.asarray(v)[new] for k, v in item_set.features.items()})
            scores[:, new] = fresh.cpu().numpy() if hasattr(fresh, "cpu") else np.asarray(fresh)
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


def placebo_donors(users: np.ndarray, partners: np.ndarray, seed: int = 0) -> np.ndarray:
    """For each of ``users``, the position (in ``users``) of a random *other* user who is not among
    its swap ``partners``: the placebo gives user i the set made for user ``donors[i]``.

    >>> users, partners = np.array([3, 5, 7, 9]), np.array([[5], [7], [9], [3]])
    >>> donors = placebo_donors(users, partners, seed=0)
    >>> any(users[d] in (u, *p) for u, p, d in zip(users, partners, donors))
    False
    """
    users, partners = np.asarray(users), np.asarray(partners)
    rng = np.random.default_rng([seed, 7])
    out = np.empty(len(users), dtype=np.int64)
    for row, user in enumerate(users):
        free = np.flatnonzero((users != user) & ~np.isin(users, partners[row]))
        if len(free) == 0:
            raise MmworkError(f"the placebo needs a user outside each user's {partners.shape[1]} swap partners; "
                              f"evaluate more than {partners.shape[1] + 1} users or use fewer swaps")
        out[row] = rng.choice(free)
    return out


@dataclass
class SetRanks:
    """Per-user mean percentile ranks of one condition (one row per evaluated user)."""

    target: np.ndarray
    """(users,): mean rank of the user's set for the user."""
    swap: np.ndarray
    """(users, partners): mean rank of the same set for each swap partner (NaN where every item of the
    set is one of that partner's training items)."""
    items: int
    """Items ranked in all."""


def judge_sets(judge, sets: Sequence[ItemSet], train: sp.csr_matrix, catalogue_scores: dict[int, np.ndarray],
               partners: np.ndarray) -> SetRanks:
    """Rank every user's set for its user and for that user's swap ``partners`` (a row per set, as
    from :func:`swap_partners`); ``catalogue_scores`` maps each user row to the judge's scores of
    every catalogue item (:meth:`ContentJudge.catalogue_scores`). Means skip the items a user already
    has in training (see :func:`set_ranks`)."""
    if len(sets) != len(partners):
        raise MmworkError(f"{len(sets)} item sets but {len(partners)} rows of swap partners")
    train = sp.csr_matrix(train)
    target, swap, items = np.empty(len(sets)), np.empty((len(sets), partners.shape[1])), 0
    for row, item_set in enumerate(sets):
        users = np.concatenate([[item_set.user], partners[row]]).astype(np.int64)
        ranks = set_ranks(judge, users, item_set, np.stack([catalogue_scores[int(u)] for u in users]), train)
        if np.isnan(ranks[0]).all() or np.isnan(ranks[1:]).all():
            who = "the user's" if np.isnan(ranks[0]).all() else "every swap partner's"
            raise MmworkError(f"every item of user row {item_set.user}'s set is one of {who} training items: "
                              "nothing to rank")
        target[row] = np.nanmean(ranks[0])
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            swap[row] = np.nanmean(ranks[1:], axis=1)
        items += len(item_set)
    return SetRanks(target, swap, items)


def hierarchical_bootstrap(target, swap, n_boot: int = N_BOOT, seed: int = 0, chunk: int = 100) -> np.ndarray:
    """Bootstrap draws (n_boot x 2: mean target rank, mean swap rank) that resample, in each draw, the
    generator seeds, the users, and each drawn user's swap partners, all with replacement.
    ``target`` is (seeds, users), ``swap`` (seeds, users, partners) with NaN for a partner who could
    not rank the set. The point estimates are ``target.mean()`` and the mean over seeds and users of
    each user's mean over partners.

    Written here, not ``scipy.stats.bootstrap``: that resamples independent samples (or paired
    observations) at one level, and this resamples three nested levels in each draw (seeds, users,
    and the partners of each drawn user).

    >>> t, s = np.full((3, 4), 60.0), np.full((3, 4, 2), 50.0)
    >>> hierarchical_bootstrap(t, s, n_boot=5).mean(0).tolist()
    [60.0, 50.0]
    """
    target = np.asarray(target, dtype=np.float64)
    swap = np.asarray(swap, dtype=np.float64)
    if target.ndim != 2 or swap.ndim != 3 or swap.shape[:2] != target.shape or 0 in swap.shape:
        raise MmworkError(f"target must be (seeds, users) and swap (seeds, users, partners); got {target.shape} "
                          f"and {swap.shape}")
    if not np.isfinite(target).all() or np.isnan(swap).all(axis=2).any():
        raise MmworkError("every (seed, user) needs a finite target rank and at least one partner's rank")
    n_seeds, n_users = target.shape
    rng = np.random.default_rng(seed)
    out = np.empty((n_boot, 2))
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        s = rng.integers(0, n_seeds, (b, n_seeds))[:, :, None]
        u = rng.integers(0, n_users, (b, n_users))[:, None, :]
        p = rng.integers(0, swap.shape[2], (b, n_users, swap.shape[2]))[:, None, :, :]
        out[start:start + b, 0] = target[s, u].mean((1, 2))
        with warnings.catch_warnings():  # a draw of only the partners who could not rank: skipped
            warnings.simplefilter("ignore", RuntimeWarning)
            out[start:start + b, 1] = np.nanmean(np.nanmean(swap[s[..., None], u[..., None], p], axis=3), (1, 2))
    return out


def bootstrap_ci(values, level: float = LEVEL, n_boot: int = N_BOOT, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of ``values`` (one per user), seeded.

    Kept by hand rather than ``scipy.stats.bootstrap(..., method="percentile")``, measured: scipy draws
    the same resamples from the same generator, but its interval ends differed from ``np.quantile``'s
    in the last bits (about 1e-15) in 287 of 600 random cases (this and :func:`ratio_ci`), so the
    published intervals would move; it also refuses a single value and warns for one draw.

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
    values (one pair per user) together, seeded (by hand for the reason :func:`bootstrap_ci` gives)."""
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
    unit = l2_normalise(vectors)
    cosine = unit @ unit.T
    upper = np.triu_indices(len(unit), 1)
    return float(np.mean(1.0 - cosine[upper]))


def lift_table(conditions: dict, level: float = LEVEL, n_boot: int = N_BOOT, seed: int = 0) -> pd.DataFrame:
    """One row per condition (``{name: SetRanks}``, or ``{name: [SetRanks per generator seed]}``):
    users, seeds, items, the mean percentile rank for the target users (``pr``), for the swap
    partners (``swap_pr``), their difference (``diff`` = pr - swap_pr, percentile points) and the
    lift (pr / swap_pr), each with a 95% interval (``_low``/``_high``) from
    :func:`hierarchical_bootstrap` (seeds, users and swap partners resampled).

    >>> one = SetRanks(np.array([60.0, 70.0]), np.array([[50.0, 55.0], [45.0, 50.0]]), 4)
    >>> row = lift_table({"a": [one, one]}, n_boot=200).iloc[0]
    >>> [round(float(row[k]), 3) for k in ("pr", "swap_pr", "diff", "lift")]
    [65.0, 50.0, 15.0, 1.3]
    """
    rows = []
    for name, ranks in conditions.items():
        per_seed = [ranks] if isinstance(ranks, SetRanks) else list(ranks)
        target = np.stack([r.target for r in per_seed])
        swap = np.stack([r.swap if r.swap.ndim == 2 else r.swap[:, None] for r in per_seed])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            pr, swap_pr = float(target.mean()), float(np.nanmean(np.nanmean(swap, axis=2)))
        draws = hierarchical_bootstrap(target, swap, n_boot, seed)
        interval = {"pr": draws[:, 0], "swap": draws[:, 1], "diff": draws[:, 0] - draws[:, 1],
                    "lift": draws[:, 0] / draws[:, 1]}
        ends = {key: _interval(values, level) for key, values in interval.items()}
        rows.append({"condition": name, "users": target.shape[1], "seeds": target.shape[0],
                     "items": sum(r.items for r in per_seed),
                     "pr": pr, "pr_low": ends["pr"][0], "pr_high": ends["pr"][1],
                     "swap_pr": swap_pr, "swap_low": ends["swap"][0], "swap_high": ends["swap"][1],
                     "diff": pr - swap_pr, "diff_low": ends["diff"][0], "diff_high": ends["diff"][1],
                     "lift": pr / swap_pr, "lift_low": ends["lift"][0], "lift_high": ends["lift"][1]})
    return pd.DataFrame(rows)


def rank_correlation(a, b, allowed) -> np.ndarray:
    """Spearman correlation, per row (user), between two models' scores of the ``allowed`` items
    (e.g. the catalogue minus the user's training items); ties get mean ranks.

    >>> rank_correlation([[1.0, 2.0, 3.0, 9.0]], [[10.0, 20.0, 30.0, 0.0]], [[True, True, True, False]]).tolist()
    [1.0]
    """
    from scipy.stats import rankdata
    a, b = np.atleast_2d(np.asarray(a, np.float64)), np.atleast_2d(np.asarray(b, np.float64))
    allowed = np.atleast_2d(np.asarray(allowed, bool))
    if not a.shape == b.shape == allowed.shape:
        raise MmworkError(f"the two score matrices and allowed must share one shape; got {a.shape}, {b.shape}, "
                          f"{allowed.shape}")
    out = np.empty(len(a))
    for row in range(len(a)):
        x, y = rankdata(a[row, allowed[row]]), rankdata(b[row, allowed[row]])
        if len(x) < 3 or x.std() == 0 or y.std() == 0:
            raise MmworkError("a rank correlation needs at least 3 allowed items with varying scores per user")
        out[row] = float(np.corrcoef(x, y)[0, 1])
    return out
