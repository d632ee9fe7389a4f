"""Exact cosine nearest neighbours streamed from a Parquet feature table.

One pass over the vector column: Arrow record batches of ``item_id`` and the vector column, the
list's values buffer viewed as a 2-D float32 array (no Python objects per row), one matrix product
per batch for a whole batch of queries, and only the candidates that can still be among a query's
best ``k`` kept. Exactness does not rest on float32 rounding coinciding between CPUs or BLAS kernels:

- every float32 score comes with a proven bound on its distance from the exact cosine
  (:func:`arithmetic_bound`: the worst case of any summation order, FMA or not; :func:`error_bound`
  adds the float32 z-scoring's own rounding), so a row is dropped only when its upper bound lies
  below the k-th best lower bound, where it cannot be among the best ``k``;
- survivors are re-scored in float64 by :func:`exact_cosines`, in which each row's similarity is a
  function of that row alone (the same element-wise operations in the same order for every row, no
  BLAS): equal vectors get equal similarities wherever they sit in a batch and on every x86 CPU, and
  exact ties (duplicate vectors) are broken by ``item_id`` ascending.

Memory is one batch, whatever the table's size.

With ``standardize`` every dimension is z-scored by the column's statistics (count, mean, std in
float64), computed once and stored in ``data/indexes/DATASET/TABLE/COLUMN.stats.json`` keyed by
the table's fingerprint (part file names, sizes and modification times: a stat call per part, no
read), so they are recomputed when the table changes.

>>> import numpy as np
>>> arithmetic_bound(120) < 2e-5     # how far a float32 cosine of raw 120-d vectors can be off
True
>>> nearest("speech-prompts", "audio:mfcc_stats", np.ones(120), k=3)        # doctest: +SKIP
>>> nearest("speech-prompts", "audio:mfcc_stats",
...         vectors_of("speech-prompts", "audio:mfcc_stats", ["digits/7", "digits/8"]),
...         k=5, standardize=True, exclude=["digits/7", "digits/8"])         # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mmwork.core.errors import MmworkError
from mmwork.core.paths import data_root
from mmwork.store.tables import table_parts, table_path, write_json

BATCH_ROWS = 8192  # rows per record batch (= the store's row group): 4 MB of 120-d float32


@dataclass(frozen=True)
class FeatureColumn:
    """A vector column of a feature table: where its part files are and how wide its vectors are."""

    dataset: str
    table: str
    column: str
    files: tuple[Path, ...]
    dim: int

    @property
    def name(self) -> str:
        return f"{self.dataset}/{self.table}:{self.column}"

    @property
    def rows(self) -> int:
        return sum(pq.ParquetFile(f).metadata.num_rows for f in self.files)

    def fingerprint(self) -> str:
        """Names, sizes and modification times of the part files: a stat per part, nothing read.
        A rewritten part changes it even when its rows are the same (then derived data is rebuilt)."""
        digest = hashlib.sha256()
        for f in self.files:
            st = f.stat()
            digest.update(f"{f.name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
        return digest.hexdigest()[:16]

    def derived_dir(self) -> Path:
        """Where statistics and indexes of this table live: ``data/indexes/DATASET/TABLE``."""
        return data_root() / "indexes" / self.dataset / self.table


def feature_column(dataset: str, features: str) -> FeatureColumn:
    """Resolve ``MODALITY:COLUMN`` (``audio:mfcc_stats``; ``features/audio:mfcc_stats`` too)."""
    table, _, column = features.partition(":")
    if not column or not table:
        raise MmworkError(f"--features must look like MODALITY:COLUMN (e.g. audio:mfcc_stats), got {features!r}")
    table = table if table.startswith("features/") else f"features/{table}"
    path = table_path(dataset, table)
    files = tuple(table_parts(path)) if path.is_dir() else ((path,) if path.exists() else ())
    if not files:
        raise MmworkError(f"no table {table!r} in data set {dataset!r}; run `mmwork extract {dataset}` first")
    schema = pq.read_schema(files[0])
    if column not in schema.names:
        raise MmworkError(f"{dataset}/{table} has no column {column!r}; its columns are {schema.names}")
    kind = schema.field(column).type
    if not (pa.types.is_fixed_size_list(kind) or pa.types.is_list(kind) or pa.types.is_large_list(kind)) \
            or not pa.types.is_floating(kind.value_type):
        raise MmworkError(f"{column!r} is not a vector column ({kind}); use a list<float> column")
    if "item_id" not in schema.names:
        raise MmworkError(f"{dataset}/{table} has no item_id column; it is not a feature table")
    if pa.types.is_fixed_size_list(kind):
        dim = kind.list_size
    else:  # variable-length lists: the first row's length; every batch is checked against it
        first = next(pq.ParquetFile(files[0]).iter_batches(batch_size=1, columns=[column]), None)
        dim = len(first.column(0)[0]) if first is not None and first.num_rows else 0
    return FeatureColumn(dataset, table, column, files, dim)


def default_standardize(features: str, standardize: bool | None = None) -> bool:
    """Whether to z-score: as asked, else on for audio and image features (one large coefficient,
    such as MFCC 0, would decide alone) and off for text embeddings, which are made for plain cosine.

    >>> default_standardize("audio:mfcc_stats"), default_standardize("text:minilm")
    (True, False)
    """
    if standardize is not None:
        return bool(standardize)
    return features.partition(":")[0].removeprefix("features/") != "text"


UNIT_ROUNDOFF = 2.0 ** -24  # float32


def arithmetic_bound(dim: int) -> float:
    """A bound on |float32 score − exact cosine| for raw float32 rows (which float32 holds exactly) and
    a unit-length query: (1.5·d + 3)·u with u = 2⁻²⁴, for any summation order (γ_d = d·u/(1 − d·u)
    bounds a d-term float32 dot product however it is summed, FMA or not; the norm adds γ_d/2, the
    query's own rounding, the square root and the division u each). The factor 1.1 covers γ_d's
    denominator and the second-order terms while d·u < 0.01 (d below 167,000: checked), and 2u the
    rounding of a score ± its bound in float32.

    >>> arithmetic_bound(120) < 2e-5
    True
    """
    if dim * UNIT_ROUNDOFF >= 0.01:
        raise MmworkError(f"{dim}-dimensional vectors are too long for a float32 pass with a proven error bound")
    return 1.1 * (1.5 * dim + 3) * UNIT_ROUNDOFF + 2 * UNIT_ROUNDOFF


def error_bound(norms: np.ndarray, dim: int, offset: float) -> np.ndarray:
    """Per row, a bound on |float32 score − exact cosine| for rows z-scored in float32.

    ``norms`` are the float32 norms of the z-scored rows, ``offset`` is ‖scale ⊙ mean‖. Beyond
    :func:`arithmetic_bound`, z-scoring in float32 moves each row by ε ≤ 3.01·u·(‖r‖ + offset) (the
    rounded mean, the subtraction, the rounded scale, the product; taken as 4·u·(‖r̃‖ + offset), which
    also covers ‖r‖ ≤ ‖r̃‖ + ε and the float32 norm), and that moves its cosine by at most
    2ε / (‖r̃‖ − ε). A dimension whose mean is large next to its spread makes the offset, hence the
    bound, large; a row with ‖r̃‖ ≤ 2ε has no usable float32 direction and an infinite bound (it is
    always re-scored).

    >>> bound = error_bound(np.array([10.0, 1e-6]), 120, offset=5.0)
    >>> bool(bound[0] < 1e-4), bool(np.isinf(bound[1]))
    (True, True)
    """
    norms = np.asarray(norms, np.float64)
    shift = 4 * UNIT_ROUNDOFF * (norms + offset)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        moved = np.where(norms > 2 * shift, 2 * shift / (norms - shift), np.inf)
    return arithmetic_bound(dim) + moved


def exact_cosines(vectors: np.ndarray, unit_query: np.ndarray, stats: "ColumnStats | None" = None) -> np.ndarray:
    """float64 cosines of raw ``vectors`` (z-scored by ``stats`` first) to a unit-length float64 query.

    Each similarity is a function of its own row only: element-wise products, then sums taken one
    dimension at a time in the same order for every row (element-wise IEEE additions, no BLAS), so
    no kernel, SIMD width or position in the array can make two equal vectors score differently,
    on any CPU. A zero vector scores 0.

    >>> exact_cosines(np.array([[3.0, 4.0], [3.0, 4.0], [0.0, 0.0], [0.0, 5.0]]), np.array([1.0, 0.0])).tolist()
    [0.6, 0.6, 0.0, 0.0]
    """
    x = np.asarray(vectors, np.float64)
    if stats is not None:
        x = (x - stats.mean) * stats.scale()
    norms = np.sqrt(_row_sums(x * x))
    return _row_sums(x * unit_query) / np.where(norms == 0, np.inf, norms)  # one query, or one per row


def _row_sums(terms: np.ndarray) -> np.ndarray:
    """Each row's sum, added column by column: the same operations in the same order for every row."""
    columns = np.ascontiguousarray(terms.T)
    total = columns[0].copy() if len(columns) else np.zeros(len(terms))
    for column in columns[1:]:
        total += column
    return total


def _matrix(vectors: pa.Array, dim: int, name: str) -> np.ndarray:
    """A list column's values as an (n, dim) float32 array; a view of Arrow's buffer when it can be."""
    if vectors.null_count:
        raise MmworkError(f"{name} has {vectors.null_count} empty (null) vector(s) in a batch; re-extract the "
                          "table or drop those rows")
    if not pa.types.is_fixed_size_list(vectors.type):
        offsets = vectors.offsets.to_numpy()
        if len(vectors) and not (np.diff(offsets) == dim).all():
            raise MmworkError(f"{name} holds vectors of different lengths (not all {dim}); cosine needs one length")
    values = vectors.flatten().to_numpy(zero_copy_only=False)
    return values.astype(np.float32, copy=False).reshape(len(vectors), dim)


def batches(path: Path, column: str, dim: int, name: str, batch_rows: int = BATCH_ROWS):
    """``(item_ids, float32 (n, dim))`` record batches of one Parquet file."""
    # no pre-buffering of the whole file's column chunks (50 MB a part): read 1 MB at a time
    reader = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
    for batch in reader.iter_batches(batch_size=batch_rows, columns=["item_id", column], use_threads=False):
        yield batch.column(0), _matrix(batch.column(1), dim, name)


def nonfinite_error(name: str, count: int) -> MmworkError:
    """The error for a column with ``count`` non-finite vectors (no cosine is defined for them)."""
    return MmworkError(f"{name} has {count:,} vector(s) with NaN or infinite values; re-extract the table or "
                       "drop those rows before a cosine search")


# ---------------------------------------------------------------- statistics for z-scoring

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
    parts = _map(_moments, [(f, col.column, col.dim, col.name) for f in col.files], scheduler)
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


def _map(func, args: list[tuple], scheduler: str | None) -> list:
    """``func`` over every part: Dask tasks on the cluster at ``scheduler``, else two local threads
    (pyarrow decodes and numpy multiplies with the GIL released)."""
    if scheduler is not None:
        import dask
        from mmwork.features.workers import dask_client
        with dask_client(scheduler):
            return list(dask.compute(*[dask.delayed(func)(*a) for a in args]))
    if len(args) == 1:
        return [func(*args[0])]
    from threadpoolctl import threadpool_limits
    # one BLAS thread per part thread: OpenBLAS's spinning threads on top of ours cost 1.5x here
    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(lambda a: func(*a), args))


# ---------------------------------------------------------------- the query item's own vector

def vectors_of(dataset: str, features: str, item_ids: list[str] | str) -> np.ndarray:
    """The stored vectors of ``item_ids`` as an (m, d) float32 array, in the order given.

    Reads only the ``item_id`` column of the row groups whose min/max statistics can hold an id,
    then the vector column of just the row groups that hold one: never the whole vector column.
    """
    col = feature_column(dataset, features)
    wanted = [str(i) for i in ([item_ids] if isinstance(item_ids, str) else item_ids)]
    found: dict[str, np.ndarray] = {}
    for path in col.files:
        remaining = sorted(set(wanted) - set(found))
        if not remaining:
            break
        found.update(_find_rows(path, col, remaining))
    missing = [i for i in wanted if i not in found]
    if missing:
        raise MmworkError(f"item {missing[0]!r} has no row in {col.dataset}/{col.table}"
                          f"{f' (nor {len(missing) - 1} more)' if len(missing) > 1 else ''}; check the id "
                          f"(mmwork query {col.dataset} items)")
    return np.stack([found[i] for i in wanted]) if wanted else np.zeros((0, col.dim), np.float32)


def _find_rows(path: Path, col: FeatureColumn, wanted: list[str]) -> dict[str, np.ndarray]:
    parquet = pq.ParquetFile(path)
    meta = parquet.metadata
    leaf = next(j for j in range(meta.num_columns) if meta.schema.column(j).path == "item_id")
    groups = []
    for g in range(meta.num_row_groups):
        stats = meta.row_group(g).column(leaf).statistics
        if stats is None or not stats.has_min_max or any(stats.min <= w <= stats.max for w in wanted):
            groups.append(g)
    if not groups:
        return {}
    ids = parquet.read_row_groups(groups, columns=["item_id"]).column(0)
    where = pc.index_in(pa.array(wanted, ids.type), value_set=ids).to_numpy(zero_copy_only=False)
    hits = {w: int(p) for w, p in zip(wanted, where) if not np.isnan(p)}
    if not hits:
        return {}
    sizes = np.array([meta.row_group(g).num_rows for g in groups])
    starts = np.concatenate([[0], np.cumsum(sizes)])
    out = {}
    for g_pos in sorted({int(np.searchsorted(starts, p, side="right") - 1) for p in hits.values()}):
        mine = {item: p - starts[g_pos] for item, p in hits.items() if starts[g_pos] <= p < starts[g_pos + 1]}
        last, at = max(mine.values()), 0
        # small batches of that one row group, stopping after the last row wanted: less to decode
        for batch in parquet.iter_batches(batch_size=1024, row_groups=[groups[g_pos]], columns=[col.column]):
            vectors = _matrix(batch.column(0), col.dim, col.name)
            out.update({item: vectors[r - at].copy() for item, r in mine.items() if at <= r < at + len(vectors)})
            at += len(vectors)
            if at > last:
                break
    return out


# ---------------------------------------------------------------- the streamed search

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
    """The ``k`` rows of ``features`` with the highest cosine similarity to each query vector.

    queries: (m, d) or (d,) array. exclude: an item id to leave out of every answer, or one per
    query (``similar`` leaves out each query item itself). standardize: z-score every dimension by
    the column's stored statistics first. scheduler: a dask.distributed address; then one task per
    Parquet part runs on the cluster, else the parts are streamed here, two at a time.

    Returns a DataFrame with columns ``query`` (0..m-1), ``rank`` (1..k), ``item_id`` and
    ``similarity`` (float64), ordered by similarity descending, ties by ``item_id`` ascending.
    """
    import pandas as pd
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
            pools = _map(lambda *a: _search_file(*a, progress=bar), args, None)
    else:
        pools = _map(_search_file, args, scheduler)
    pool = pools[0]
    for other in pools[1:]:
        pool.merge(other)
    if pool.nonfinite:
        raise nonfinite_error(col.name, pool.nonfinite)
    return pd.DataFrame(_rescore(pool, unit, stats, k, excluded),
                        columns=["query", "rank", "item_id", "similarity"])


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
