"""What counts as relevant, and what is removed from a user's ranking, under each masking rule.

A split names its rule (``split.mask``) and its relevance threshold (``split.threshold``: only
valid/test ratings ``>= threshold`` are relevant; None makes every held-out interaction relevant).
Lower ratings stay in the split: they are known interactions, masked or not as the rule says.

>>> relevant(split, "test"), excluded(split, "test"), candidates(split, "test")     # doctest: +SKIP
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from mmwork.store.interactions import Split

MASKS = {
    "recbole": "RecBole 1.2.1: every training item of the user is removed from the ranking (and every "
               "validation item when testing); all catalogue items are ranked",
    "cornac": "Cornac 3.0.1: only the user's positive training items (rating >= threshold) are removed (and "
              "positive validation items when testing); only items seen in training are ranked, and held-out "
              "rows of users or items unseen in training are dropped (exclude_unknowns=True)",
}


def positive(matrix: sp.spmatrix, threshold: float | None) -> sp.csr_matrix:
    """The entries ``>= threshold`` (every stored entry when None).

    >>> positive(sp.csr_matrix([[1.0, 4.0, 5.0]]), 4).toarray()
    array([[0., 4., 5.]])
    """
    out = sp.csr_matrix(matrix, copy=True)
    if threshold is not None:
        out.data[out.data < threshold] = 0
    out.eliminate_zeros()
    return out


def _known(split: Split) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks of the users and items that have at least one training interaction."""
    train = split.train.matrix
    return np.diff(train.tocsr().indptr) > 0, np.diff(train.tocsc().indptr) > 0


def relevant(split: Split, part: str) -> sp.csr_matrix:
    """The relevant ``part`` ("valid" or "test") interactions the metrics look for."""
    truth = positive(getattr(split, part).matrix, split.threshold)
    if split.mask == "cornac":
        users, items = _known(split)
        truth = positive(sp.diags(users.astype(np.float32)) @ truth @ sp.diags(items.astype(np.float32)), None)
    return truth


def excluded(split: Split, part: str) -> sp.csr_matrix:
    """The (user, item) pairs removed from the ranking when evaluating ``part``."""
    threshold = split.threshold if split.mask == "cornac" else None
    seen = positive(split.train.matrix, threshold)
    if part == "test":
        seen = (seen + positive(split.valid.matrix, threshold)).tocsr()
    return seen


def candidates(split: Split, part: str) -> np.ndarray | None:
    """The item indices ranked when evaluating ``part`` (None: the whole catalogue)."""
    chosen = split.candidates if part == "test" else split.valid_candidates
    if split.mask != "cornac":
        return chosen
    known = np.flatnonzero(_known(split)[1])
    return known if chosen is None else np.intersect1d(chosen, known)
