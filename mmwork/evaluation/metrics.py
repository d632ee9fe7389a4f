"""Ranking metrics per user, and the beyond-accuracy measures, as pure functions over arrays.

``hits[u, r]`` says whether the item ranked ``r`` (0 = top) for user ``u`` is relevant; ``n_relevant[u]``
is how many relevant items that user has. Definitions follow RecBole 1.2.1 (NDCG's ideal DCG and
MAP's normaliser use min(n_relevant, K)).

>>> import numpy as np
>>> hits = np.array([[0, 1, 0]], bool); n_rel = np.array([2])
>>> {m: round(float(f(hits, n_rel)[0]), 4) for m, f in RANKING_METRICS.items()}
{'recall': 0.5, 'precision': 0.3333, 'ndcg': 0.3869, 'mrr': 0.5, 'hit': 1.0, 'map': 0.25}
"""
from __future__ import annotations

import numpy as np
from scipy import stats

from mmwork.store.item_features import l2_normalise


def recall(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    return hits.sum(1) / n_relevant


def precision(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    return hits.sum(1) / hits.shape[1]


def hit(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    return hits.any(1).astype(float)


def mrr(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    first = hits.argmax(1)
    return np.where(hits.any(1), 1.0 / (first + 1), 0.0)


def ndcg(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    discounts = 1.0 / np.log2(np.arange(2, hits.shape[1] + 2))
    dcg = (hits * discounts).sum(1)
    ideal = np.cumsum(discounts)[np.minimum(n_relevant, hits.shape[1]) - 1]
    return dcg / ideal


def average_precision(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    precision_at = np.cumsum(hits, 1) / np.arange(1, hits.shape[1] + 1)
    return (precision_at * hits).sum(1) / np.minimum(n_relevant, hits.shape[1])


RANKING_METRICS = {"recall": recall, "precision": precision, "ndcg": ndcg, "mrr": mrr, "hit": hit,
                   "map": average_precision}


def coverage(top_items: np.ndarray, n_items: int) -> float:
    """Share of the catalogue that appears in at least one user's top-K list."""
    return len(np.unique(top_items)) / n_items


def novelty(top_items: np.ndarray, item_popularity: np.ndarray, n_users: int) -> np.ndarray:
    """Per user, mean self-information -log2(p_i) of the recommended items, where p_i is the share of
    training users who interacted with item i (items nobody had are counted as one user)."""
    share = np.maximum(item_popularity, 1) / n_users
    return (-np.log2(share[top_items])).mean(1)


def intra_list_diversity(top_items: np.ndarray, item_features: np.ndarray) -> np.ndarray:
    """Per user, mean pairwise cosine distance between the recommended items' content features."""
    vectors = l2_normalise(item_features)[top_items]  # users x K x d
    similarity = np.einsum("ukd,uld->ukl", vectors, vectors)
    k = top_items.shape[1]
    if k < 2:
        return np.zeros(len(top_items))
    off_diagonal = (similarity.sum((1, 2)) - np.einsum("ukk->u", similarity)) / (k * (k - 1))
    return 1.0 - off_diagonal


def paired_test(a: np.ndarray, b: np.ndarray) -> dict:
    """Compare two models' per-user scores on the same users: mean difference (a - b), its 95%
    confidence interval, and the paired t-test and Wilcoxon signed-rank p-values.

    >>> r = paired_test(np.array([0.5, 0.6, 0.7, 0.9]), np.array([0.4, 0.5, 0.6, 0.7]))
    >>> round(r["mean_diff"], 3), r["t_pvalue"] < 0.05
    (0.125, True)
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape:
        raise ValueError(f"paired_test needs the same users on both sides, got {a.shape} and {b.shape}")
    diff = a - b
    half = stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else np.nan
    nonzero = diff[diff != 0]
    return {
        "n_users": int(len(diff)), "mean_diff": float(diff.mean()),
        "ci95": [float(diff.mean() - half), float(diff.mean() + half)],
        "t_pvalue": float(stats.ttest_rel(a, b).pvalue) if diff.std() > 0 else (1.0 if diff.mean() == 0 else 0.0),
        "wilcoxon_pvalue": float(stats.wilcoxon(nonzero).pvalue) if len(nonzero) > 0 else 1.0,
    }
