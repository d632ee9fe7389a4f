"""Import a user's own catalogue: a CSV/Parquet items table whose columns point at text, image and
audio files, plus optional interactions and users tables.

``source`` is either the items table itself or a folder holding ``items.{csv,parquet}`` (and
optionally ``interactions.*``, ``users.*``). Relative file paths in the media columns are resolved
against the folder of the items table. The result is an ordinary data set under
``data/processed/NAME/``.

>>> import_catalogue("my-shop", "shop/items.csv", interactions="shop/clicks.csv")   # doctest: +SKIP
{'dataset': 'my-shop', 'tables': {'items': 120, 'interactions': 4031}, ...}
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import pandas as pd

from mmwork.core.errors import MmworkError
from mmwork.core.paths import processed_dir
from mmwork.store.tables import hash_inputs, write_table
from mmwork.store.validate import require_columns, validate_interactions, validate_items
from mmwork.datasets import registry

MEDIA_COLUMNS = ("image", "audio", "text_path")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


def _read(path: Path) -> pd.DataFrame:
    if path.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if path.suffix.lower() in (".csv", ".tsv", ".txt"):
        return pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",", dtype={"item_id": str, "user_id": str})
    raise MmworkError(f"{path} is neither CSV/TSV nor Parquet; give a .csv, .tsv or .parquet table")


def _locate(folder: Path, stem: str) -> Path | None:
    for suffix in (".parquet", ".csv", ".tsv"):
        if (folder / f"{stem}{suffix}").exists():
            return folder / f"{stem}{suffix}"
    return None


def import_catalogue(name: str, source: str | Path, interactions: str | Path | None = None,
                     users: str | Path | None = None) -> dict:
    """Validate and write a user's catalogue as data set ``name``; returns the same summary as ``get``."""
    started = time.perf_counter()
    if not _NAME.match(name):
        raise MmworkError(f"data set name {name!r} must be lower-case letters, digits, '-', '_' or '.'")
    if name in registry.names():
        raise MmworkError(f"{name!r} is a built-in data set; choose another name for your catalogue")
    source = Path(source).expanduser()
    if not source.exists():
        raise MmworkError(f"{source} does not exist; give an items table (.csv/.parquet) or a folder holding items.csv")
    items_path = _locate(source, "items") if source.is_dir() else source
    if items_path is None:
        raise MmworkError(f"{source} holds no items.csv, items.tsv or items.parquet")
    folder = items_path.parent
    if source.is_dir():
        interactions = interactions or _locate(source, "interactions")
        users = users or _locate(source, "users")

    items = validate_items(_read(items_path), f"items table {items_path}")
    missing_files = {}
    for column in MEDIA_COLUMNS:
        if column not in items.columns:
            continue
        resolved = [None if pd.isna(p) else str((folder / str(p)).resolve()) for p in items[column]]
        items[column] = resolved
        missing_files[column] = sum(1 for p in resolved if p is not None and not Path(p).exists())
    tables = {"items": items}
    inputs = [items_path]
    for table_name, path in (("interactions", interactions), ("users", users)):
        if path is None:
            continue
        path = Path(path).expanduser()
        if not path.exists():
            raise MmworkError(f"{table_name} file {path} does not exist")
        tables[table_name] = _read(path)
        inputs.append(path)
    if "interactions" in tables:
        tables["interactions"] = validate_interactions(tables["interactions"], items, f"interactions table {interactions}")
    if "users" in tables:
        require_columns(tables["users"], ["user_id"], f"users table {users}")
        tables["users"] = tables["users"].assign(user_id=tables["users"]["user_id"].astype(str))

    digest = hash_inputs(*inputs)
    for table_name, frame in tables.items():
        write_table(frame, processed_dir(name) / f"{table_name}.parquet", producer="mmwork.datasets.catalogue",
                    params={"source": str(source), "missing_files": missing_files}, input_hash=digest)
    return registry.summary(name) | {"seconds": round(time.perf_counter() - started, 2), "cached": False,
                                     "missing_files": missing_files}
