"""An approximate nearest-neighbour index of a feature column, for repeated look-ups.

faiss-cpu over the column's unit vectors (z-scored first with the stored column statistics when
``standardize``), searched by inner product, which on unit vectors is the cosine. Two kinds:
``ivf`` (the default: an inverted file of 4·√n k-means cells, 16 probed per look-up) and ``hnsw``
(a graph, M 32). Why faiss: a CPU wheel on PyPI with no CUDA; both kinds in one library; inner
product built in. Why IVF by default: on the 1M x 120 benchmark, whose 1,362 noisy copies of each clip
make neighbourhoods dense, IVF built in 15 s with recall@10 0.98 at 0.2 ms a query, while HNSW took
100 s and reached 0.84-0.90 even at efSearch 512-2048. Candidates are re-scored exactly (float64,
from the raw vectors kept beside the index), so the similarities and tie order are those of
:func:`mmwork.search.knn.nearest`; only a true neighbour the index missed can differ.

An index lives in ``data/indexes/DATASET/TABLE/COLUMN.KIND`` (``.KIND-z`` when z-scored):
``index.faiss``, ``vectors.npy`` (the raw float32 rows), ``ids.parquet`` (row -> item_id) and
``meta.json`` (table, column, the table's fingerprint, parameters, statistics). It is written in a
staging folder and swapped in whole. A table that changed since (another fingerprint) makes the
index stale: it is rebuilt, with a warning, never used. An index made for another table or column
is refused. On a Dask cluster (``scheduler=``) the index is not used: the search there is exact.

>>> build("speech-prompts", "audio:mfcc_stats")                          # doctest: +SKIP
>>> search("speech-prompts", "audio:mfcc_stats", vector, k=10)            # doctest: +SKIP
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mmwork.search import columns, knn
from mmwork.search.stats import ColumnStats, column_stats_of
from mmwork.core.errors import MmworkError
from mmwork.store.item_features import l2_normalise
from mmwork.store.tables import swap_in_folder, write_json

log = logging.getLogger("mmwork.search.index")

KINDS = ("ivf", "hnsw")
KIND = "ivf"
M = 32  # HNSW graph degree: the usual choice for 100-1000-d vectors
EF_CONSTRUCTION = 64  # HNSW candidates per insertion: 1M x 120 audio rows in 100 s on 2 quiet cores
EF_SEARCH = 512  # HNSW candidates per look-up: recall@10 0.84 on the dense 1M-row benchmark, 0.5 ms
NPROBE = 16  # IVF cells searched per look-up: recall@10 0.98 on the same benchmark at 0.2 ms
TRAIN_PER_CELL = 64  # IVF k-means training rows per cell (faiss asks for at least 39)
ADD_ROWS = 65536  # rows handed to faiss at a time while building
_LOADED: dict[Path, tuple[tuple, "Index"]] = {}  # folder -> (its build time, the loaded index): notebooks reuse it


class Index:
    """A loaded index: the faiss graph, the raw vectors (memory-mapped) and the row -> item_id map."""

    def __init__(self, folder: Path):
        import faiss
        self.folder = folder
        self.meta = json.loads((folder / "meta.json").read_text())
        flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if self.meta["kind"] == "hnsw" else 0
        self.graph = faiss.read_index(str(folder / "index.faiss"), flags)
        self.vectors = np.load(folder / "vectors.npy", mmap_mode="r")
        self.ids = pq.read_table(folder / "ids.parquet").column(0).combine_chunks()
        stats = self.meta.get("stats")
        self.stats = ColumnStats(stats["count"], np.asarray(stats["mean"]), np.asarray(stats["std"])) \
            if stats else None

    def search(self, unit: np.ndarray, k: int, excluded: list[str]) -> list[tuple]:
        """(query, rank, item_id, similarity) rows for unit-length float64 queries."""
        keep = k + (1 if excluded else 0)
        wanted = min(max(2 * keep, keep + 16), self.graph.ntotal)
        if self.meta["kind"] == "hnsw":
            self.graph.hnsw.efSearch = max(EF_SEARCH, wanted)
        else:
            self.graph.nprobe = min(NPROBE, self.graph.nlist)
        _, found = self.graph.search(np.ascontiguousarray(unit, np.float32), wanted)
        rows = []
        for j, hits in enumerate(found):
            hits = np.sort(hits[hits >= 0])
            ids = self.ids.take(pa.array(hits)).to_numpy(zero_copy_only=False)
            vectors = self.vectors[hits]
            if excluded:
                drop = ids != (excluded[0] if len(excluded) == 1 else excluded[j])
                ids, vectors = ids[drop], vectors[drop]
            rows.extend((j, rank, item, sim) for rank, (item, sim)
                        in enumerate(knn.exact_top(vectors, ids, unit[j], self.stats, k), 1))
        return rows


def folder(col: columns.FeatureColumn, standardize: bool, kind: str = KIND) -> Path:
    """Where the index of ``col`` lives."""
    return col.derived_dir() / f"{col.column}.{kind}{'-z' if standardize else ''}"


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise MmworkError(f"unknown index kind {kind!r}; choose one of {', '.join(KINDS)}")


def build(dataset: str, features: str, *, standardize: bool | None = None, kind: str = KIND,
          progress: bool | None = None) -> dict:
    """Build (or rebuild) the index of ``features`` and return its metadata.

    standardize: z-score every dimension first (default: on for audio and image, off for text), as
    :func:`mmwork.similar` does; an index answers only searches made the same way.
    """
    from filelock import FileLock
    _check_kind(kind)
    col = columns.feature_column(dataset, features)
    standardize = columns.default_standardize(features, standardize)
    target = folder(col, standardize, kind)
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        return _build(col, standardize, kind, target, progress)


def _build(col: columns.FeatureColumn, standardize: bool, kind: str, target: Path, progress: bool | None) -> dict:
    import faiss
    from tqdm import tqdm
    fingerprint = col.fingerprint()
    stats = column_stats_of(col) if standardize else None
    rows = col.rows
    staging = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        raw = np.lib.format.open_memmap(staging / "vectors.npy", mode="w+", dtype=np.float32, shape=(rows, col.dim))
        at = 0
        with pq.ParquetWriter(staging / "ids.parquet", pa.schema([("item_id", pa.string())])) as ids, \
                tqdm(total=2 * rows, unit="row", unit_scale=True, desc=f"index {col.name}",
                     disable=None if progress is None else not progress) as bar:
            for path in col.files:  # pass 1: the raw rows and their ids (pass 2 checks them finite)
                for item_ids, vectors in columns.batches(path, col.column, col.dim, col.name):
                    raw[at:at + len(vectors)] = vectors
                    ids.write_table(pa.table({"item_id": item_ids.cast(pa.string())}))
                    at += len(vectors)
                    bar.update(len(vectors))
            if at != rows or col.fingerprint() != fingerprint:
                raise MmworkError(f"{col.name} changed while its index was built; build it again")
            graph = _new_index(kind, raw, stats, col.name)
            for start in range(0, rows, ADD_ROWS):  # pass 2: into faiss
                graph.add(_unit_rows(raw[start:start + ADD_ROWS], stats, col.name))
                bar.update(min(ADD_ROWS, rows - start))
        raw.flush()
        del raw
        faiss.write_index(graph, str(staging / "index.faiss"))
        meta = {"name": col.name, "dataset": col.dataset, "table": col.table, "column": col.column, "kind": kind,
                "standardize": standardize, "fingerprint": fingerprint, "rows": rows, "dim": col.dim,
                "params": ({"M": M, "efConstruction": EF_CONSTRUCTION, "efSearch": EF_SEARCH} if kind == "hnsw"
                           else {"nlist": graph.nlist, "nprobe": NPROBE, "trained_on": graph.nlist * TRAIN_PER_CELL})
                | {"metric": "inner product on unit vectors", "faiss": faiss.__version__},
                "stats": {"count": stats.count, "mean": stats.mean.tolist(), "std": stats.std.tolist()}
                if stats else None,
                "built": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        write_json(staging / "meta.json", meta)
        swap_in_folder(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _LOADED.pop(target, None)
    return meta


def _new_index(kind: str, raw: np.ndarray, stats: ColumnStats | None, name: str):
    """An empty faiss index of ``kind``; an IVF one trained (k-means, seeded) on a sample of ``raw``."""
    import faiss
    rows, dim = raw.shape
    if kind == "hnsw":
        graph = faiss.IndexHNSWFlat(dim, M, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = EF_CONSTRUCTION
        return graph
    nlist = int(np.clip(round(4 * np.sqrt(rows)), 1, max(1, rows // 39)))
    graph = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    graph.cp.seed = 0
    sample = np.sort(np.random.default_rng(0).choice(rows, min(rows, nlist * TRAIN_PER_CELL), replace=False))
    graph.train(_unit_rows(raw[sample], stats, name))
    return graph


def _unit_rows(vectors: np.ndarray, stats: ColumnStats | None, name: str) -> np.ndarray:
    """Rows z-scored (float64 statistics) and scaled to unit length, as float32 for faiss."""
    x = vectors.astype(np.float64)
    if not np.isfinite(x).all():
        raise columns.nonfinite_error(name, int((~np.isfinite(x).all(axis=1)).sum()))
    if stats is not None:
        x = (x - stats.mean) * stats.scale()
    return np.ascontiguousarray(l2_normalise(x), np.float32)


def load(dataset: str, features: str, *, standardize: bool | None = None, kind: str = KIND,
         progress: bool | None = None, col: columns.FeatureColumn | None = None) -> Index:
    """The index of ``features``, built first when there is none and rebuilt (with a warning) when
    the table changed since it was built; refused when it was made for another table or column.
    Kept loaded in this process while the table and the index stay as they are."""
    from filelock import FileLock
    _check_kind(kind)
    col = col or columns.feature_column(dataset, features)
    standardize = columns.default_standardize(features, standardize)
    where = folder(col, standardize, kind)
    fingerprint = col.fingerprint()
    cached = _LOADED.get(where)
    if cached is not None and cached[0] == _stamp(where, fingerprint):
        return cached[1]
    _refuse_foreign(where, col, standardize)
    meta = _meta(where)
    if meta is None or meta["fingerprint"] != fingerprint:
        where.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(where) + ".lock"):
            meta = _meta(where)  # another process may have rebuilt it meanwhile
            if meta is None or meta["fingerprint"] != fingerprint:
                if meta is not None:
                    log.warning("the index of %s is stale (the table changed since %s); rebuilding it",
                                col.name, meta.get("built"))
                _build(col, standardize, kind, where, progress)
    loaded = Index(where)
    _LOADED[where] = (_stamp(where, fingerprint), loaded)
    return loaded


def _stamp(where: Path, fingerprint: str) -> tuple:
    """What a loaded index is valid for: the table as it is and the index files as they are."""
    try:
        return fingerprint, (where / "meta.json").stat().st_mtime_ns
    except OSError:
        return fingerprint, None


def _meta(where: Path) -> dict | None:
    try:
        return json.loads((where / "meta.json").read_text())
    except (OSError, ValueError):
        return None


def _refuse_foreign(where: Path, col: columns.FeatureColumn, standardize: bool) -> None:
    meta = _meta(where)
    if meta is None:
        return
    made_for = (meta.get("name"), meta.get("dim"), bool(meta.get("standardize")))
    if made_for != (col.name, col.dim, standardize):
        raise MmworkError(f"the index in {where} was built for {meta.get('name')} ({meta.get('dim')}-d"
                          f"{', z-scored' if meta.get('standardize') else ''}), not {col.name} ({col.dim}-d"
                          f"{', z-scored' if standardize else ''}); delete it, then `mmwork index build`")


def search(dataset: str, features: str, queries, k: int = 10, *, standardize: bool | None = None,
           exclude: list[str] | str | None = None, progress: bool | None = None, kind: str = KIND):
    """:func:`search_table` as a pandas DataFrame."""
    return search_table(dataset, features, queries, k, standardize=standardize, exclude=exclude,
                        progress=progress, kind=kind).to_pandas()


def search_table(dataset: str, features: str, queries, k: int = 10, *, standardize: bool | None = None,
                 exclude: list[str] | str | None = None, progress: bool | None = None,
                 kind: str = KIND) -> pa.Table:
    """Approximate nearest neighbours of each query vector from the index, re-scored exactly; the
    same columns as :func:`mmwork.search.knn.nearest_table` (query, rank, item_id, similarity)."""
    col = columns.feature_column(dataset, features)
    excluded = [exclude] if isinstance(exclude, str) else list(exclude or [])
    index = load(dataset, features, standardize=standardize, kind=kind, progress=progress, col=col)
    q64 = knn.check_queries(col, queries, k, excluded=1 if excluded else 0, rows=index.meta["rows"])
    unit = knn.unit_queries(q64, index.stats)
    return knn.neighbour_table(index.search(unit, k, excluded))


def list_indexes():
    """Every index under ``data/indexes``: table, kind, z-scored, rows, fresh or stale, size, built."""
    import pandas as pd
    from mmwork.core.paths import data_root
    rows = []
    for meta_path in sorted((data_root() / "indexes").glob("**/meta.json")):
        where = meta_path.parent
        if where.name.startswith("."):
            continue
        meta = json.loads(meta_path.read_text())
        try:
            col = columns.feature_column(meta["dataset"], f"{meta['table']}:{meta['column']}")
            state = "fresh" if col.fingerprint() == meta["fingerprint"] else "stale"
        except MmworkError:
            state = "table gone"
        size = sum(p.stat().st_size for p in where.iterdir()) / 2 ** 20
        rows.append({"table": meta["name"], "kind": meta["kind"], "standardize": meta["standardize"],
                     "rows": meta["rows"], "state": state, "size_mb": round(size, 1), "built": meta["built"],
                     "path": str(where)})
    return pd.DataFrame(rows, columns=["table", "kind", "standardize", "rows", "state", "size_mb", "built", "path"])


def recall_at_k(dataset: str, features: str, item_ids: list[str], k: int = 10, *,
                standardize: bool | None = None, kind: str = KIND) -> float:
    """Share of the exact top ``k`` neighbours of ``item_ids`` that the index finds too."""
    standardize = columns.default_standardize(features, standardize)
    queries = columns.vectors_of(dataset, features, item_ids)
    exact = knn.nearest(dataset, features, queries, k, standardize=standardize, exclude=item_ids)
    approx = search(dataset, features, queries, k, standardize=standardize, exclude=item_ids, kind=kind)
    hits = sum(len(set(exact.loc[exact["query"] == j, "item_id"]) & set(approx.loc[approx["query"] == j, "item_id"]))
               for j in range(len(item_ids)))
    return hits / (k * len(item_ids))


def side_by_side(dataset: str, item_id: str, features: str, k: int = 10, *, standardize: bool | None = None,
                 scheduler: str | None = None):
    """The exact neighbours of ``item_id`` (on ``scheduler`` when given) next to the index's, rank by
    rank, with the share of the exact ones the index found in ``frame.attrs["recall"]``."""
    import pandas as pd
    standardize = columns.default_standardize(features, standardize)
    query = columns.vectors_of(dataset, features, [item_id])
    exact = knn.nearest(dataset, features, query, k, standardize=standardize, exclude=item_id, scheduler=scheduler)
    approx = search(dataset, features, query, k, standardize=standardize, exclude=item_id)
    frame = pd.DataFrame({"rank": exact["rank"], "exact": exact["item_id"], "exact_similarity": exact["similarity"],
                          "index": approx["item_id"], "index_similarity": approx["similarity"]})
    frame.attrs["recall"] = len(set(exact["item_id"]) & set(approx["item_id"])) / len(exact)
    return frame
