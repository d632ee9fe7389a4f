"""Train/valid/test splits of an interactions table, one function per protocol.

Every split keeps the whole catalogue as its item vocabulary and records its protocol, parameters
and a hash of its contents, so a result can always say exactly what it was measured on.

>>> split = recbole_split(interactions, seed=2020)          # doctest: +SKIP
>>> split.describe()["protocol"]                            # doctest: +SKIP
'recbole: every interaction positive, per-user random 8:1:1, full ranking'
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mmwork.core.errors import MmworkError
from mmwork.evaluation.masking import MASKS
from mmwork.store.interactions import Interactions, Split
from mmwork.store.validate import require_columns

PROTOCOLS = {
    "recbole": "every interaction positive; per user, random order, split 8:1:1; full ranking over all items, "
               "training (and, for test, validation) items excluded",
    "ratio": "per user, random order, split 8:1:1; train keeps every rating, valid/test keep ratings >= threshold "
             "as the relevant items; full ranking",
    "temporal": "per user, ordered by time, split 8:1:1 (oldest to train); full ranking",
    "loo": "leave-one-out: per user, the last interaction to test, the one before to valid; full ranking",
    "cold-items": "a random share of the items is held out with all their interactions (half valid, half test); "
                  "ranking over the held-out items only",
    "files": "train, test (and optionally valid) supplied as files",
}


def _frame(interactions: pd.DataFrame) -> pd.DataFrame:
    require_columns(interactions, ["user_id", "item_id"], "interactions")
    frame = interactions.copy()
    frame["user_id"] = frame["user_id"].astype(str)
    frame["item_id"] = frame["item_id"].astype(str)
    if "weight" not in frame:
        frame["weight"] = 1.0
    if frame.empty:
        raise MmworkError("the interactions table is empty: nothing to split")
    return frame


def _vocab(frame: pd.DataFrame, item_ids) -> tuple[np.ndarray, np.ndarray]:
    users = np.asarray(sorted(frame["user_id"].unique()), dtype=object)
    if item_ids is None:
        items = np.asarray(sorted(frame["item_id"].unique()), dtype=object)
    else:
        items = np.asarray([str(i) for i in item_ids], dtype=object)
        unknown = ~frame["item_id"].isin(set(items))
        if unknown.any():
            raise MmworkError(f"{int(unknown.sum())} interaction(s) name items missing from item_ids, "
                              f"e.g. {frame.loc[unknown, 'item_id'].iloc[0]!r}")
    return users, items


def _build(parts: dict[str, pd.DataFrame], users, items, protocol, params, candidates=None) -> Split:
    made = {name: Interactions.from_frame(part, users, items) for name, part in parts.items()}
    return Split(made["train"], made["valid"], made["test"], protocol, params, candidates,
                 description=PROTOCOLS.get(protocol, ""))


def split_counts(total: int, ratios: tuple[float, ...]) -> list[int]:
    """How many of a user's ``total`` interactions go to each part, exactly as RecBole 1.2.1's
    ``_calcu_split_ids`` computes it (train takes the remainder; a tiny part gets at least one when
    the train part can spare it).

    >>> split_counts(10, (0.8, 0.1, 0.1)), split_counts(5, (0.8, 0.1, 0.1))
    ([8, 1, 1], [3, 1, 1])
    """
    ratios = [r / sum(ratios) for r in ratios]
    counts = [int(r * total) for r in ratios]
    counts[0] = total - sum(counts[1:])
    for i in range(1, len(ratios)):
        if counts[0] <= 1:
            break
        if 0 < ratios[-i] * total < 1:
            counts[-i] += 1
            counts[0] -= 1
    return counts


def _per_user_split(frame: pd.DataFrame, ratios, order: np.ndarray) -> np.ndarray:
    """Label each row 0/1/2 (train/valid/test) by its position within its user in ``order``."""
    ordered = frame.iloc[order]
    position = ordered.groupby("user_id", sort=False).cumcount().to_numpy()
    sizes = ordered.groupby("user_id", sort=False)["user_id"].transform("size").to_numpy()
    labels = np.empty(len(ordered), dtype=np.int8)
    cache: dict[int, np.ndarray] = {}
    for size in np.unique(sizes):
        counts = split_counts(int(size), ratios)
        cache[int(size)] = np.repeat(np.arange(len(counts), dtype=np.int8), counts)
    for size, bounds in cache.items():
        mask = sizes == size
        labels[mask] = bounds[position[mask]]
    out = np.empty_like(labels)
    out[order] = labels
    return out


def recbole_split(interactions: pd.DataFrame, ratios=(0.8, 0.1, 0.1), seed: int = 2020,
                  item_ids=None) -> Split:
    """RecBole's default protocol on ML-100K: every interaction is a positive; interactions are
    shuffled, then each user's are split 8:1:1 in that order."""
    frame = _frame(interactions)
    order = np.random.default_rng(seed).permutation(len(frame))
    labels = _per_user_split(frame, ratios, order)
    users, items = _vocab(frame, item_ids)
    parts = {name: frame[labels == i] for i, name in enumerate(("train", "valid", "test"))}
    return _build(parts, users, items, "recbole", {"ratios": list(ratios), "seed": seed})


def ratio_split(interactions: pd.DataFrame, threshold: float = 4.0, ratios=(0.8, 0.1, 0.1), seed: int = 2020,
                item_ids=None) -> Split:
    """Per-user random split; only valid/test ratings ``>= threshold`` count as relevant."""
    frame = _frame(interactions)
    order = np.random.default_rng(seed).permutation(len(frame))
    labels = _per_user_split(frame, ratios, order)
    users, items = _vocab(frame, item_ids)
    relevant = frame["weight"].to_numpy() >= threshold
    parts = {"train": frame[labels == 0], "valid": frame[(labels == 1) & relevant],
             "test": frame[(labels == 2) & relevant]}
    split = _build(parts, users, items, "ratio", {"ratios": list(ratios), "seed": seed, "threshold": threshold})
    split.threshold = threshold
    return split


def temporal_split(interactions: pd.DataFrame, ratios=(0.8, 0.1, 0.1), item_ids=None) -> Split:
    """Per user, the oldest 80% train, the next 10% valid, the newest 10% test."""
    frame = _frame(interactions)
    require_columns(frame, ["timestamp"], "interactions for a temporal split")
    order = np.lexsort((np.arange(len(frame)), frame["timestamp"].to_numpy()))
    labels = _per_user_split(frame, ratios, order)
    users, items = _vocab(frame, item_ids)
    parts = {name: frame[labels == i] for i, name in enumerate(("train", "valid", "test"))}
    return _build(parts, users, items, "temporal", {"ratios": list(ratios)})


def leave_one_out(interactions: pd.DataFrame, item_ids=None, seed: int = 2020) -> Split:
    """Per user (with at least 3 interactions): the last one to test, the one before to valid.
    Without timestamps the order is random (seeded)."""
    frame = _frame(interactions)
    if "timestamp" in frame:
        order = np.lexsort((np.arange(len(frame)), frame["timestamp"].to_numpy()))
    else:
        order = np.random.default_rng(seed).permutation(len(frame))
    ordered = frame.iloc[order]
    from_end = ordered.groupby("user_id", sort=False).cumcount(ascending=False).to_numpy()
    sizes = ordered.groupby("user_id", sort=False)["user_id"].transform("size").to_numpy()
    labels_ordered = np.where((sizes >= 3) & (from_end == 0), 2, np.where((sizes >= 3) & (from_end == 1), 1, 0))
    labels = np.empty(len(frame), dtype=np.int8)
    labels[order] = labels_ordered
    users, items = _vocab(frame, item_ids)
    parts = {name: frame[labels == i] for i, name in enumerate(("train", "valid", "test"))}
    return _build(parts, users, items, "loo", {"seed": seed})


def cold_start_split(interactions: pd.DataFrame, item_ids, cold_share: float = 0.2, seed: int = 2020) -> Split:
    """Hold out ``cold_share`` of the catalogue (items with interactions), with every interaction on
    them: half the held-out items form the validation set, half the test set. Models must rank the
    held-out items from content alone; ``candidates`` restricts ranking to the test items."""
    if not 0 < cold_share < 1:
        raise MmworkError(f"cold_share must be between 0 and 1, got {cold_share}")
    frame = _frame(interactions)
    users, items = _vocab(frame, item_ids)
    active = np.asarray(sorted(frame["item_id"].unique()), dtype=object)
    rng = np.random.default_rng(seed)
    held = rng.permutation(active)[: max(2, int(round(cold_share * len(active))))]
    valid_items, test_items = set(held[: len(held) // 2]), set(held[len(held) // 2:])
    parts = {"train": frame[~frame["item_id"].isin(set(held))], "valid": frame[frame["item_id"].isin(valid_items)],
             "test": frame[frame["item_id"].isin(test_items)]}
    split = _build(parts, users, items, "cold-items", {"cold_share": cold_share, "seed": seed})
    split.candidates = np.sort(split.train.item_index(sorted(test_items)))
    split.valid_candidates = np.sort(split.train.item_index(sorted(valid_items)))
    return split


RATING_COLUMNS = ("weight", "rating", "score")  # what mmwork, Cornac/RecBole and others call a rating


def _rating_columns(columns) -> dict[str, str]:
    """How the columns of a split file map onto ``user_id``, ``item_id``, ``weight`` (and ``timestamp``):
    RecBole-style typed headers (``user_id:token``, ``rating:float``) lose their type, and the first
    of ``weight``, ``rating``, ``score`` becomes ``weight``.

    >>> _rating_columns(["user_id:token", "item_id:token", "rating:float", "timestamp:float"])
    {'user_id:token': 'user_id', 'item_id:token': 'item_id', 'rating:float': 'weight', 'timestamp:float': 'timestamp'}
    >>> _rating_columns(["user_id", "item_id", "score"])
    {'score': 'weight'}
    """
    bare = {c: str(c).split(":", 1)[0].strip() if ":" in str(c) else c for c in columns}
    rating = next((c for name in RATING_COLUMNS for c, b in bare.items() if b == name), None)
    wanted = {c: "weight" if c == rating else b for c, b in bare.items()}
    return {c: b for c, b in wanted.items()
            if b != c and (c == rating or b in ("user_id", "item_id", "timestamp"))}


def split_from_files(train, valid, test, item_ids=None, threshold: float | None = None,
                     mask: str = "recbole") -> Split:
    """A split supplied as tables (paths to CSV/Parquet, or DataFrames) of user_id, item_id [, weight],
    e.g. the exact split another library used. The rating may also be called ``rating`` or ``score``
    (Cornac, RecBole), and RecBole's typed headers (``user_id:token``, ``rating:float``) are read too.
    ``valid`` may be None (then empty: models train without early stopping). Only valid/test weights
    ``>= threshold`` are relevant (and, under the Cornac rule, only training weights ``>= threshold`` are
    masked), so a threshold needs a rating column in every file; ``mask`` names the ranking rule
    (``masking.MASKS``).

    >>> split_from_files("train.csv", None, "test.csv", threshold=4, mask="cornac")   # doctest: +SKIP
    Split(protocol='files', 943 users x 1682 items, train 80000 / valid 0 / test 19971, relevant >= 4, mask cornac, ...)
    """
    if mask not in MASKS:
        raise MmworkError(f"unknown mask {mask!r}; choose from {sorted(MASKS)}")

    def read(source, part, may_be_empty=False):
        if isinstance(source, pd.DataFrame):
            frame, name = source, f"the {part} table"
        elif not Path(source).exists():
            raise MmworkError(f"split file {source} does not exist")
        elif Path(source).suffix == ".parquet":
            frame, name = pd.read_parquet(source), str(source)
        else:
            with open(source, encoding="utf-8", errors="replace") as handle:
                first = handle.readline()
            if not first.strip():
                if may_be_empty:
                    return pd.DataFrame(columns=["user_id", "item_id", "weight"])
                raise MmworkError(f"split file {source} is empty; it needs a header line user_id,item_id,rating "
                                  f"and one line per interaction")
            sep = "\t" if "\t" in first and "," not in first else ","  # RecBole's .inter files are tab-separated
            header = pd.read_csv(source, sep=sep, nrows=0).columns
            ids = [c for c in header if str(c).split(":", 1)[0].strip() in ("user_id", "item_id")]
            frame, name = pd.read_csv(source, sep=sep, dtype={c: str for c in ids}), str(source)
        frame = frame.rename(columns=_rating_columns(frame.columns))
        if may_be_empty and frame.empty:
            return frame
        if threshold is not None and "weight" not in frame:
            raise MmworkError(
                f"a relevance threshold (--threshold {threshold:g}) needs a rating column in {name}, one of "
                f"{list(RATING_COLUMNS)} (or RecBole's rating:float); it has {list(frame.columns)}")
        if "weight" in frame:
            weight = pd.to_numeric(frame["weight"], errors="coerce")
            if weight.isna().any():
                raise MmworkError(f"{name} has {int(weight.isna().sum())} non-numeric or empty rating value(s)")
            frame = frame.assign(weight=weight)
        return _frame(frame)
    parts = {"train": read(train, "train"), "test": read(test, "test")}
    parts["valid"] = read(valid, "valid", may_be_empty=True) if valid is not None else parts["test"].iloc[:0]
    every = pd.concat(parts.values(), ignore_index=True)
    users, items = _vocab(every, item_ids)
    split = _build(parts, users, items, "files", {})
    split.threshold, split.mask = threshold, mask
    return split
