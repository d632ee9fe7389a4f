"""Checks of the canonical tables before they are written: required columns, unique non-null item ids,
interactions that point at known items.

>>> import pandas as pd
>>> validate_items(pd.DataFrame({"item_id": ["a", "b"]}))["item_id"].tolist()
['a', 'b']
"""
from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from mmwork.core.errors import MmworkError

def require_columns(df: pd.DataFrame, required: Iterable[str], what: str) -> None:
    """Fail with one line naming the missing columns of a canonical table."""
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise MmworkError(f"{what} is missing required column(s) {missing}; it has {list(df.columns)}")


def validate_items(items: pd.DataFrame, what: str = "items table") -> pd.DataFrame:
    """Check the canonical ``items`` table: an ``item_id`` column, string-typed, unique, not null."""
    require_columns(items, ["item_id"], what)
    if items["item_id"].isna().any():
        raise MmworkError(f"{what} has {int(items['item_id'].isna().sum())} empty item_id value(s); fill or drop them")
    items = items.assign(item_id=items["item_id"].astype(str))
    dupes = items["item_id"][items["item_id"].duplicated()].unique()
    if len(dupes):
        raise MmworkError(f"{what} has {len(dupes)} duplicate item_id(s), e.g. {list(dupes[:3])}; item_id must be unique")
    return items


def validate_interactions(inter: pd.DataFrame, items: pd.DataFrame | None = None,
                          what: str = "interactions table") -> pd.DataFrame:
    """Check the canonical ``interactions`` table: user_id, item_id, numeric weight (default 1.0)."""
    require_columns(inter, ["user_id", "item_id"], what)
    inter = inter.assign(user_id=inter["user_id"].astype(str), item_id=inter["item_id"].astype(str))
    if "weight" not in inter.columns:
        inter = inter.assign(weight=1.0)
    weight = pd.to_numeric(inter["weight"], errors="coerce")
    if weight.isna().any():
        raise MmworkError(f"{what} has {int(weight.isna().sum())} non-numeric or empty weight value(s)")
    inter = inter.assign(weight=weight.astype("float32"))
    if items is not None:
        unknown = ~inter["item_id"].isin(items["item_id"])
        if unknown.any():
            raise MmworkError(f"{what} has {int(unknown.sum())} row(s) whose item_id is not in the items table, "
                              f"e.g. {inter.loc[unknown, 'item_id'].iloc[0]!r}")
    return inter
