"""Generation for one user: profiles from their history, training pairs for a profile-conditioned
language model, and :func:`for_user`, which samples item texts for a profile and optionally reranks
them with a guide.

An item's *content* f(i) is the concatenation of its feature vectors (e.g. its MiniLM text vector and
its genre multi-hot), each modality L2-normalised first (see :func:`content_vectors`); a user's
*profile* p(u) is the mean of f(i) over the items they interacted with in training. A conditional
language model learns p(text of i | profile of u without i) over the training interactions
(:func:`training_pairs`), so at generation time it writes item texts that read like that user's items.

Pure functions over arrays and a fitted model: nothing here reads the store or knows a recommender;
``mmwork.apps.personalise`` wires them to data, guide and judge.

>>> import numpy as np, scipy.sparse as sp
>>> matrix = sp.csr_matrix(np.array([[1, 1, 0], [0, 0, 1]], np.float32))
>>> content = {"text": np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]])}
>>> user_profiles(matrix, content).astype(float).round(2).tolist()
[[0.5, 0.5], [0.6, 0.8]]
>>> parse_labels(["Heat (1995). Genres: Action, Crime.", "Heat"], ["Action", "Crime", "Drama"]).tolist()
[[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
>>> for_user(model, tokenizer, profile, n=5, candidates=50, guide=score_texts)      # doctest: +SKIP
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mmwork.core.errors import MmworkError
from mmwork.store.item_features import content_vector


def content_vectors(item_content: dict[str, np.ndarray] | np.ndarray) -> np.ndarray:
    """One float32 row per item: each modality's rows L2-normalised (all-zero rows stay zero), then
    concatenated in the dict's order. This is f(i), the space profiles live in."""
    parts = list(item_content.values()) if isinstance(item_content, dict) else [item_content]
    for array in parts:
        if np.ndim(array) != 2:
            raise MmworkError(f"item content must be 2-d arrays (items x features), got shape {np.shape(array)}")
    if not parts:
        raise MmworkError("item content is empty: give at least one feature matrix")
    rows = {len(a) for a in parts}
    if len(rows) != 1:
        raise MmworkError(f"the item content matrices have different numbers of rows: {sorted(rows)}")
    vectors = content_vector(parts, np.float64)
    if not np.isfinite(vectors).all():
        raise MmworkError("item content holds NaN or infinite values")
    return vectors.astype(np.float32)


def _binary(matrix, n_items: int) -> sp.csr_matrix:
    matrix = sp.csr_matrix(matrix, dtype=np.float64)
    if matrix.shape[1] != n_items:
        raise MmworkError(f"the interaction matrix has {matrix.shape[1]} item columns but the item content "
                          f"{n_items} rows; align the content to the matrix's items")
    matrix.eliminate_zeros()
    matrix.data[:] = 1.0
    return matrix


def user_profiles(matrix, item_content: dict[str, np.ndarray] | np.ndarray) -> np.ndarray:
    """p(u) for every row of the user x item ``matrix`` (training interactions; any nonzero counts
    once): the mean of :func:`content_vectors` over the user's items, float32 (n_users x D). A user
    with no items gets a zero row (an empty profile)."""
    vectors = content_vectors(item_content)
    binary = _binary(matrix, len(vectors))
    counts = np.asarray(binary.sum(1)).ravel()
    sums = np.asarray(binary @ vectors.astype(np.float64))
    return (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)


class Pairs(NamedTuple):
    """What :func:`training_pairs` returns: one row per (user, item) training interaction kept."""

    users: np.ndarray
    """Row index of the user in the matrix."""
    items: np.ndarray
    """Column index of the item, whose text is the target."""
    condition: np.ndarray
    """(n_pairs, D) float32: the user's profile (without the item when ``leave_one_out``)."""


def training_pairs(matrix, item_content: dict[str, np.ndarray] | np.ndarray, leave_one_out: bool = True) -> Pairs:
    """(profile, item) pairs over the interactions of ``matrix``: the language model learns to write
    item i's text from the profile of a user who chose i. With ``leave_one_out`` the profile is the
    mean over the user's *other* items, so the model cannot read the target's own content off the
    condition; users with a single item then have no pair (their profile would be empty)."""
    vectors = content_vectors(item_content).astype(np.float64)
    binary = _binary(matrix, len(vectors)).tocoo()
    users, items = binary.row.astype(np.int64), binary.col.astype(np.int64)
    order = np.lexsort((items, users))
    users, items = users[order], items[order]
    counts = np.bincount(users, minlength=binary.shape[0]).astype(np.float64)
    sums = np.zeros((binary.shape[0], vectors.shape[1]))
    np.add.at(sums, users, vectors[items])
    if leave_one_out:
        keep = counts[users] > 1
        users, items = users[keep], items[keep]
        condition = (sums[users] - vectors[items]) / (counts[users] - 1)[:, None]
    else:
        condition = sums[users] / counts[users][:, None]
    return Pairs(users, items, condition.astype(np.float32))


def parse_labels(texts: Sequence[str], vocabulary: Sequence[str], marker: str = "Genres:") -> np.ndarray:
    """Multi-hot rows (len(texts) x len(vocabulary), float32) of the labels a text lists after its
    last ``marker``, comma-separated (a MovieLens text: "Heat (1995). Genres: Action, Crime.").
    Matching is case-insensitive and exact per label; names outside the vocabulary and texts without
    the marker give zeros."""
    position = {str(v).strip().lower(): j for j, v in enumerate(vocabulary)}
    pattern = re.compile(re.escape(marker), re.IGNORECASE)
    out = np.zeros((len(texts), len(position)), np.float32)
    for row, text in enumerate(texts):
        found = list(pattern.finditer(text))
        if not found:
            continue
        for name in text[found[-1].end():].split(","):
            j = position.get(name.strip().rstrip(".").strip().lower())
            if j is not None:
                out[row, j] = 1.0
    return out


def check_request(n: int, candidates: int, temperature: float, top_p: float | None) -> None:
    """The one-line errors :func:`for_user` gives for a bad request, before any compute.

    >>> check_request(10, 50, 0.0, None)
    Traceback (most recent call last):
    ...
    mmwork.core.errors.MmworkError: temperature must be a positive number, got 0.0
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise MmworkError(f"n must be a positive integer, got {n!r}")
    if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < n:
        raise MmworkError(f"candidates must be an integer >= n ({n}), got {candidates!r}")
    if not isinstance(temperature, (int, float)) or not temperature > 0 or not np.isfinite(temperature):
        raise MmworkError(f"temperature must be a positive number, got {temperature!r}")
    if top_p is not None and (not isinstance(top_p, (int, float)) or not 0 < top_p <= 1):
        raise MmworkError(f"top_p must lie in (0, 1], got {top_p!r}")


def for_user(model, tokenizer, profile, n: int = 10, *, candidates: int = 50,
             guide: Callable[[list[str]], Sequence[float]] | None = None, seed: int = 0,
             temperature: float = 1.0, top_p: float | None = None, exclude: Iterable[str] = ()) -> pd.DataFrame:
    """``n`` item texts written for one user: ``candidates`` samples of the profile-conditioned
    ``model`` (decoded with ``tokenizer``; empty texts, repeats and the texts in ``exclude``, e.g.
    those of the user's own items, dropped), then, with a ``guide``
    (a callable: list of texts -> one score each, higher = better), the ``n`` it scores highest, else
    the first ``n`` in sampling order. Fewer than ``n`` come back when the samples hold fewer
    distinct texts.

    Returns a frame of ``rank`` (1 = first), ``text``, ``guide_score`` (NaN without a guide) and
    ``sample`` (the position among the candidates). The same seed gives the same frame.
    """
    check_request(n, candidates, temperature, top_p)
    if guide is not None and not callable(guide):
        raise MmworkError(f"guide must be a callable texts -> scores, got {type(guide).__name__}")
    profile = np.asarray(profile, dtype=np.float32).reshape(-1)
    dim = getattr(model.config, "condition_dim", 0)
    if profile.shape != (dim,):
        raise MmworkError(f"the profile has {profile.size} values but the model is conditioned on {dim}; "
                          "build it with the same item features the model was trained with")
    if not np.isfinite(profile).all():
        raise MmworkError("the profile holds NaN or infinite values")
    if not np.abs(profile).sum() > 0:
        raise MmworkError("the profile is empty (all zeros: the user has no training items with content); "
                          "nothing to condition on")
    ids = model.sample(candidates, condition=profile, seed=seed, temperature=temperature, top_p=top_p)
    texts = tokenizer.decode(ids)
    excluded = set(exclude)
    first = {}
    for position, text in enumerate(texts):
        if text.strip() and text not in first and text not in excluded:
            first[text] = position
    kept = list(first)
    if not kept:
        raise MmworkError(f"all {candidates} samples decoded to empty or excluded texts; draw more candidates, "
                          "train the model longer or raise the temperature")
    if guide is None:
        scores = np.full(len(kept), np.nan)
        order = np.arange(len(kept))
    else:
        scores = np.asarray(guide(kept), dtype=np.float64).reshape(-1)
        if scores.shape != (len(kept),):
            raise MmworkError(f"the guide returned {scores.size} scores for {len(kept)} texts")
        order = np.argsort(-scores, kind="stable")
    order = order[:n]
    return pd.DataFrame({"rank": np.arange(1, len(order) + 1), "text": [kept[i] for i in order],
                         "guide_score": scores[order], "sample": [first[kept[i]] for i in order]})
