"""What a data set is: a :class:`DatasetSpec` per module of ``mmwork.datasets``, collected by the registry.

>>> from mmwork.datasets.movielens import SPEC
>>> SPEC.name
'movielens-100k'
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd


@dataclass(frozen=True)
class DatasetSpec:
    """What a data set is and how to build it.

    ``fetch(source)`` copies the raw inputs into a folder and returns it; ``build(raw)`` reads that
    folder and returns the canonical tables by name (``items``, ``interactions``, ``users``).
    """

    name: str
    description: str
    source: str
    license: str
    fetch: Callable[[Path | None, Path], None]
    build: Callable[[Path], dict[str, pd.DataFrame]]
    expected: dict[str, int] = field(default_factory=dict)
