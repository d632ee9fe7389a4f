"""Per-dimension statistics of a vector column (count, mean, std in float64) for z-scored search: one
streamed pass (Chan et al.'s merge over batches and parts), kept in a JSON file keyed by the table's
fingerprint so they are recomputed when the table changes.

>>> ColumnStats(2, np.zeros(2), np.array([2.0, 0.0])).scale().tolist()
[0.5, 0.0]
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmwork.search.columns import FeatureColumn, batches, feature_column, map_parts, nonfinite_error
from mmwork.store.tables import write_json

@dataclass(frozen=True)
class ColumnStats:
    """Per-dimension count, mean and standard deviation (population) of a vector column, float64."""

    count: int
    mean: np.ndarray
    std: np.ndarray

    def scale(self) -> np.ndarray:
        """1/std, and 0 for a constant dimension (it carries nothing to compare)."""
        return np.divide(1.0, self.std, out=np.zeros_like(self.std), where=self.std > 1e-12)


def _moments(path: Path, column: str, dim: int, name: str) -> tuple[int, np.ndarray, np.ndarray, int]:
    """Count, mean and sum of squared deviations of one file (Chan et al.'s merge over batches), and
    how many rows are not finite."""
    n, mean, m2, bad = 0, np.zeros(dim), np.zeros(dim), 0
    for _, vectors in batches(path, column, dim, name):
        x = vectors.astype(np.float64)
        finite = np.isfinite(x).all(axis=1)
        if not finite.all():
            bad += int((~finite).sum())
            x = x[finite]
        if len(x):
            batch_mean = x.mean(0)
            n, mean, m2 = _merge((n, mean, m2), (len(x), batch_mean, ((x - batch_mean) ** 2).sum(0)))
    return n, mean, m2, bad


def _merge(a, b):
    (na, ma, sa), (nb, mb, sb) = a, b
    n = na + nb
    if n == 0:
        return 0, ma, sa
    delta = mb - ma
    return n, ma + delta * nb / n, sa + sb + delta ** 2 * na * nb / n


def column_stats(dataset: str, features: str, *, scheduler: str | None = None) -> ColumnStats:
    """The column's per-dimension statistics, read from the stored JSON when the table's fingerprint
    still matches, else computed in one streamed pass (one task per part file on ``scheduler``) and
    stored atomically."""
    col = feature_column(dataset, features)
    return column_stats_of(col, scheduler)


def column_stats_of(col: FeatureColumn, scheduler: str | None = None) -> ColumnStats:
    """:func:`column_stats` for a resolved column: read from its cache file while the table is unchanged."""
    path = col.derived_dir() / f"{col.column}.stats.json"
    fingerprint = col.fingerprint()
    try:
        saved = json.loads(path.read_text())
        if saved.get("fingerprint") == fingerprint and len(saved["mean"]) == col.dim:
            return ColumnStats(saved["count"], np.asarray(saved["mean"]), np.asarray(saved["std"]))
    except (OSError, ValueError, KeyError):
        pass
    parts = map_parts(_moments, [(f, col.column, col.dim, col.name) for f in col.files], scheduler)
    bad = sum(p[3] for p in parts)
    if bad:
        raise nonfinite_error(col.name, bad)
    n, mean, m2 = 0, np.zeros(col.dim), np.zeros(col.dim)
    for part in parts:
        n, mean, m2 = _merge((n, mean, m2), part[:3])
    stats = ColumnStats(n, mean, np.sqrt(m2 / max(n, 1)))
    write_json(path, {"table": col.name, "fingerprint": fingerprint, "count": n,
                      "mean": stats.mean.tolist(), "std": stats.std.tolist()})
    return stats
