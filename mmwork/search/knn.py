"""Exact cosine nearest neighbours streamed from a Parquet feature table.

One pass over the vector column: Arrow record batches of ``item_id`` and the vector column, the
list's values buffer viewed as a 2-D float32 array (no Python objects per row), one matrix product
per batch for a whole batch of queries, and only the candidates that can still be among a query's
best ``k`` kept. Exactness does not rest on float32 rounding coinciding between CPUs or BLAS kernels:

- every float32 score comes with a proven bound on its distance from the exact cosine
  (:func:`mmwork.search.bounds.arithmetic_bound`: the worst case of any summation order, FMA or not; :func:`mmwork.search.bounds.error_bound`
  adds the float32 z-scoring's own rounding), so a row is dropped only when its upper bound lies
  below the k-th best lower bound, where it cannot be among the best ``k``;
- survivors are re-scored in float64 by :func:`mmwork.search.bounds.exact_cosines`, in which each row's similarity is a
  function of that row alone (the same element-wise operations in the same order for every row, no
  BLAS): equal vectors get equal similarities wherever they sit in a batch and on every x86 CPU, and
  exact ties (duplicate vectors) are broken by ``item_id`` ascending.

Memory is one batch, whatever the table's size.

With ``standardize`` every dimension is z-scored by the column's statistics (count, mean, std in
float64), computed once and stored in ``data/indexes/DATASET/TABLE/COLUMN.stats.json`` keyed by
the table's fingerprint (part file names, sizes and modification times: a stat call per part, no
read), so they are recomputed when the table changes (:mod:`mmwork.search.stats`).

>>> import numpy as np
>>> nearest("speech-prompts", "audio:mfcc_stats", np.ones(120), k=3)        # doctest: +SKIP
>>> nearest("speech-prompts", "audio:mfcc_stats",
...         vectors_of("speech-prompts", "audio:mfcc_stats", ["digits/7", "digits/8"]),
...         k=5, standardize=True, exclude=["digits/7", "digits/8"])         # doctest: +SKIP
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from mmwork.core.errors import MmworkError
from mmwork.search.bounds import arithmetic_bound, error_bound, exact_cosines
from mmwork.search.columns import FeatureColumn, batches, feature_column, map_parts, nonfinite_error
from mmwork.search.stats import ColumnStats, column_stats_of


class _Pool:
    """Candidates of m queries: every row whose upper bound reaches its query's k-th best lower bound
    so far (so it may still be among the best k), with its id and raw vector."""

    def __init__(self, m: int, k: int):
        self.m, self.k = m, k
        self.kth = np.full(m, -np.inf, np.float32)  # per query, a lower bound of the true k-th best
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.size = 0
        self.nonfinite = 0

    def add(self, scores: np.ndarray, bounds: np.ndarray | float, ids: pa.Array, vectors: np.ndarray) -> None:
        """``bounds``: one error bound per row, or one for all (raw vectors: no (n, m) temporary)."""
        per_row = np.ndim(bounds) > 0
        bad = np.isnan(scores[:, 0])  # a row with NaN/inf scores NaN against every (finite) query
        if bad.any():
            self.nonfinite += int(bad.sum())
            scores[bad] = -np.inf
            if per_row:
                bounds[bad] = 0
        b = np.asarray(bounds, np.float32)[:, None] if per_row else np.float32(bounds)
        mask = scores + b >= self.kth if per_row else scores >= self.kth - b
        if mask.sum() > 4 * self.k * self.m + 256 and len(scores) >= self.k:  # loose threshold: tighten it
            low = scores - b
            batch_kth = np.partition(low, len(low) - self.k, axis=0)[len(low) - self.k]
            mask = scores + b >= np.maximum(self.kth, batch_kth)
        rows, queries = np.nonzero(mask)
        if len(rows):
            kept, err = scores[rows, queries], b[rows, 0] if per_row else b
            self.parts.append((queries.astype(np.int32), kept - err, kept + err,
                               ids.take(pa.array(rows)).to_numpy(zero_copy_only=False), vectors[rows]))
            self.size += len(rows)
            self.prune()  # small (about k rows per query); keeps the k-th best, hence the threshold, current

    def merge(self, other: "_Pool") -> None:
        self.parts += other.parts
        self.size += other.size
        self.nonfinite += other.nonfinite
        self.prune()

    def arrays(self):
        if not self.parts:
            return (np.zeros(0, np.int32), np.zeros(0, np.float32), np.zeros(0, np.float32), np.zeros(0, object),
                    np.zeros((0, 0), np.float32))
        return tuple(np.concatenate(a) for a in zip(*self.parts))

    def prune(self) -> None:
        q, low, high, ids, v = self.arrays()
        order = np.lexsort((-low, q))
        q, low, high = q[order], low[order], high[order]
        start = np.searchsorted(q, np.arange(self.m))
        count = np.bincount(q, minlength=self.m)
        kth = np.where(count >= self.k, low[np.minimum(start + self.k - 1, len(low) - 1)], -np.inf)
        self.kth = np.maximum(self.kth, kth.astype(np.float32))
        keep = high >= self.kth[q]
        order = order[keep]
        self.parts = [(q[keep], low[keep], high[keep], ids[order], v[order])] if keep.any() else []
        self.size = int(keep.sum())


def _center(stats: ColumnStats | None):
    """float32 mean and scale for the streamed z-scoring, and ‖scale ⊙ mean‖ for :func:`error_bound`."""
    if stats is None:
        return None
    return (stats.mean.astype(np.float32), stats.scale().astype(np.float32),
            float(np.linalg.norm(stats.mean * stats.scale())))


def _search_file(path: Path, column: str, dim: int, name: str, queries: np.ndarray, keep: int,
                 center, progress=None) -> _Pool:
    """One file's candidates for unit-norm float32 ``queries`` (m, d)."""
    pool = _Pool(len(queries), keep)
    buffer = None
    for ids, vectors in batches(path, column, dim, name):
        rows = vectors
        if center is not None:
            if buffer is None or len(buffer) < len(vectors):
                buffer = np.empty_like(vectors)
            rows = np.subtract(vectors, center[0], out=buffer[:len(vectors)])
            rows *= center[1]
        norms = np.sqrt(np.einsum("ij,ij->i", rows, rows))
        bounds = arithmetic_bound(dim) if center is None else error_bound(norms, dim, center[2])
        norms[norms == 0] = np.inf  # a zero vector has no direction: it scores 0
        scores = rows @ queries.T
        with np.errstate(invalid="ignore"):  # inf/inf of a non-finite row: NaN, counted by the pool
            scores /= norms[:, None]
        pool.add(scores, bounds, ids, vectors)
        if progress is not None:
            progress.update(len(vectors))
    return pool


def unit_queries(queries: np.ndarray, stats: ColumnStats | None) -> np.ndarray:
    """float64 queries, z-scored when ``stats``, scaled to unit length."""
    q = np.asarray(queries, np.float64)
    if stats is not None:
        q = (q - stats.mean) * stats.scale()
    norms = np.linalg.norm(q, axis=1)
    if (norms == 0).any():
        raise MmworkError(f"query {int(np.flatnonzero(norms == 0)[0])} is a zero vector"
                          f"{' after z-scoring' if stats is not None else ''}: no cosine neighbours exist")
    return q / norms[:, None]


def check_queries(col: FeatureColumn, queries, k: int, excluded: int = 0, rows: int | None = None) -> np.ndarray:
    """``queries`` as an (m, d) float64 array, or a one-line error: wrong width, not finite, bad k
    (``rows``: the table's row count when the caller knows it)."""
    q = np.asarray(queries, dtype=np.float64)
    if q.ndim == 1:
        q = q[None, :]
    if q.ndim != 2 or q.shape[1] != col.dim:
        raise MmworkError(f"query vectors have {q.shape[-1] if q.ndim else 0} dimension(s) but {col.name} has "
                          f"{col.dim}; embed the query with the model that made the column")
    if not np.isfinite(q).all():
        raise MmworkError("a query vector has NaN or infinite values: no cosine neighbours exist")
    rows = col.rows if rows is None else rows
    if not 1 <= k <= rows - excluded:
        raise MmworkError(f"k must be between 1 and {rows - excluded:,} ({col.name} has {rows:,} rows"
                          f"{', less the query item' if excluded else ''}), got {k}")
    return q


def nearest(dataset: str, features: str, queries, k: int = 10, *, standardize: bool = False,
            exclude: list[str] | str | None = None, scheduler: str | None = None,
            progress: bool | None = None):
    """:func:`nearest_table` as a pandas DataFrame."""
    return nearest_table(dataset, features, queries, k, standardize=standardize, exclude=exclude,
                         scheduler=scheduler, progress=progress).to_pandas()


def nearest_table(dataset: str, features: str, queries, k: int = 10, *, standardize: bool = False,
                  exclude: list[str] | str | None = None, scheduler: str | None = None,
                  progress: bool | None = None) -> pa.Table:
    """The ``k`` rows of ``features`` with the highest cosine similarity to each query vector.

    queries: (m, d) or (d,) array. exclude: an item id to leave out of every answer, or one per
    query (``similar`` leaves out each query item itself). standardize: z-score every dimension by
    the column's stored statistics first. scheduler: a dask.distributed address; then one task per
    Parquet part runs on the cluster, else the parts are streamed here, two at a time.

    Returns an Arrow table with columns ``query`` (0..m-1), ``rank`` (1..k), ``item_id`` and
    ``similarity`` (float64), ordered by similarity descending, ties by ``item_id`` ascending.
    """
    col = feature_column(dataset, features)
    excluded = [exclude] if isinstance(exclude, str) else list(exclude or [])
    q64 = check_queries(col, queries, k, excluded=1 if excluded else 0)
    if len(excluded) not in (0, 1, len(q64)):
        raise MmworkError(f"exclude names {len(excluded)} items for {len(q64)} queries; give one, or one per query")
    stats = column_stats_of(col, scheduler) if standardize else None
    unit = unit_queries(q64, stats)
    keep = k + (1 if excluded else 0)
    args = [(f, col.column, col.dim, col.name, unit.astype(np.float32), keep, _center(stats)) for f in col.files]
    if scheduler is None and progress is not False:
        from tqdm import tqdm  # a bar only for searches longer than a second (delay), off a terminal never
        with tqdm(total=col.rows, unit="row", unit_scale=True, desc=f"nearest in {col.name}", delay=1.0,
                  disable=None if progress is None else not progress, leave=False) as bar:
            pools = map_parts(lambda *a: _search_file(*a, progress=bar), args, None)
    else:
        pools = map_parts(_search_file, args, scheduler)
    pool = pools[0]
    for other in pools[1:]:
        pool.merge(other)
    if pool.nonfinite:
        raise nonfinite_error(col.name, pool.nonfinite)
    return neighbour_table(_rescore(pool, unit, stats, k, excluded))


NEIGHBOURS = pa.schema([("query", pa.int64()), ("rank", pa.int64()), ("item_id", pa.string()),
                        ("similarity", pa.float64())])


def neighbour_table(rows: list[tuple[int, int, str, float]]) -> pa.Table:
    """``(query, rank, item_id, similarity)`` rows as an Arrow table (the answer of every search)."""
    return pa.Table.from_pylist([dict(zip(NEIGHBOURS.names, row)) for row in rows], schema=NEIGHBOURS)


def _rescore(pool: _Pool, unit: np.ndarray, stats: ColumnStats | None, k: int, excluded: list[str]) -> list:
    """Exact float64 cosines of the surviving candidates (all queries at once); top k per query, ties
    by item id."""
    q, _, _, ids, vectors = pool.arrays()
    if excluded:
        keep = ids != (np.asarray(excluded, dtype=object)[q] if len(excluded) > 1 else excluded[0])
        q, ids, vectors = q[keep], ids[keep], vectors[keep]
    sims = exact_cosines(vectors, unit[q], stats)
    order = np.lexsort((ids.astype(str), -sims, q))
    rows, rank, previous = [], 0, -1
    for i in order:
        rank = rank + 1 if q[i] == previous else 1
        previous = q[i]
        if rank <= k:
            rows.append((int(q[i]), rank, str(ids[i]), float(sims[i])))
    return rows


def exact_top(vectors: np.ndarray, ids: np.ndarray, unit_query: np.ndarray, stats: ColumnStats | None,
              k: int) -> list[tuple[str, float]]:
    """The best ``k`` of a few candidate raw vectors by :func:`exact_cosines` to ``unit_query`` (already
    z-scored and unit length), ties broken by item id ascending."""
    sims = exact_cosines(vectors, unit_query, stats)
    ids = np.asarray(ids, dtype=object)
    order = np.lexsort((ids.astype(str), -sims))[:k]
    return [(str(ids[i]), float(sims[i])) for i in order]
