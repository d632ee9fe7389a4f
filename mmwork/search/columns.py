"""The vector columns of feature tables, as the search reads them: where a column's parts are, its width,
its record batches as float32 matrices, the vectors of given items, and a map over its parts.

>>> from mmwork.search.columns import default_standardize
>>> default_standardize("audio:mfcc_stats"), default_standardize("text:minilm")
(True, False)
"""
from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mmwork.core.errors import MmworkError
from mmwork.core.paths import data_root
from mmwork.store.tables import table_parts, table_path

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
    where = pc.fill_null(pc.index_in(pa.array(wanted, ids.type), value_set=ids), -1).to_numpy()
    hits = {w: int(p) for w, p in zip(wanted, where) if p >= 0}
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


def map_parts(func, args: list[tuple], scheduler: str | None) -> list:
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
