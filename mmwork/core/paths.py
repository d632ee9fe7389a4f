"""Where mmwork keeps its files.

The data root is ``$MMWORK_DATA`` when set, else the ``data/`` folder of the source checkout mmwork
runs from, else ``./data``. Downloads (wheels, Debian packages) are cached under ``$MMWORK_CACHE``
(default ``~/.cache/mmwork``) so several data roots share them.

>>> from mmwork.core.paths import processed_dir
>>> processed_dir("movielens-100k").name
'movielens-100k'
"""
from __future__ import annotations

import os
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]
"""The source checkout mmwork runs from (when it runs from one: its pyproject.toml is there)."""


def data_root() -> Path:
    if os.environ.get("MMWORK_DATA"):
        return Path(os.environ["MMWORK_DATA"]).expanduser().resolve()
    if (CHECKOUT / "pyproject.toml").exists() and (CHECKOUT / "data").is_dir():
        return CHECKOUT / "data"
    return Path.cwd() / "data"


def raw_dir(dataset: str) -> Path:
    return data_root() / "raw" / dataset


def processed_dir(dataset: str) -> Path:
    return data_root() / "processed" / dataset


def cache_root() -> Path:
    """The download cache's folder (``$MMWORK_CACHE``, else ``~/.cache/mmwork``), without making it."""
    root = os.environ.get("MMWORK_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "mmwork")
    return Path(root).expanduser()


def cache_dir() -> Path:
    """:func:`cache_root`, made if missing."""
    path = cache_root()
    path.mkdir(parents=True, exist_ok=True)
    return path
