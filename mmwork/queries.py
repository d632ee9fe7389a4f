"""Ad-hoc queries over the Parquet tables: Dask DataFrames with column projection and filter
pushdown, the catalogue, exact nearest neighbours computed block-wise, and the joins analysts need.

>>> import mmwork
>>> clips = mmwork.open("speech-prompts", "items", columns=["item_id", "duration_s"],
...                     filters=[("duration_s", ">", 2.0)])                       # doctest: +SKIP
>>> mmwork.similar("speech-prompts", "digits/7", features="audio:mfcc_stats")     # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mmwork.errors import MmworkError
from mmwork.store import METADATA_KEY, _parts, list_tables, table_metadata, table_path

OPERATORS = ("==", "!=", ">=", "<=", ">", "<", "in", "not in")
_WHERE = re.compile(r"^\s*([\w./-]+)\s*(==|!=|>=|<=|>|<|=|not in|in)\s*(.+?)\s*$")


def _schema(dataset: str, table: str) -> pa.Schema:
    path = table_path(dataset, table)
    files = _parts(path) if path.is_dir() else [path]
    if not files or not files[0].exists():
        known = list_tables()
        known = known[known["dataset"] == dataset]["table"].tolist()
        raise MmworkError(f"no table {table!r} in data set {dataset!r}; it has {known or 'no tables (run mmwork data get)'}")
    return pq.read_schema(files[0])


def _check(dataset: str, table: str, columns, filters) -> pa.Schema:
    schema = _schema(dataset, table)
    names = schema.names
    for column in list(columns or []) + [f[0] for f in _flatten(filters)]:
        if column not in names:
            raise MmworkError(f"{dataset}/{table} has no column {column!r}; its columns are {names}")
    for column, op, value in _flatten(filters):
        if op not in OPERATORS:
            raise MmworkError(f"unknown filter operator {op!r} on {column!r}; use one of {OPERATORS}")
        kind = schema.field(column).type
        values = value if op in ("in", "not in") else [value]
        if op in ("in", "not in") and not isinstance(value, (list, tuple, set)):
            raise MmworkError(f"filter {column} {op} needs a list of values, got {value!r}")
        numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind)
        for v in values:
            if numeric and not isinstance(v, (int, float, np.number)) or isinstance(v, bool) and numeric:
                raise MmworkError(f"filter on {column!r} ({kind}) compares with {v!r}, which is not a number")
            if (pa.types.is_string(kind) or pa.types.is_large_string(kind)) and not isinstance(v, str):
                raise MmworkError(f"filter on {column!r} (string) compares with {v!r}; quote it as text")
        if pa.types.is_list(kind) or pa.types.is_fixed_size_list(kind):
            raise MmworkError(f"cannot filter on the vector column {column!r}; filter on a scalar column")
    return schema


def _flatten(filters) -> list[tuple]:
    if not filters:
        return []
    if isinstance(filters[0], (list,)) and filters[0] and isinstance(filters[0][0], (list, tuple)):
        return [f for group in filters for f in group]  # OR of ANDs
    return [tuple(f) for f in filters]


def _client(scheduler: str | None):
    """A context that makes Dask compute on ``scheduler`` (an address), or locally when None."""
    if scheduler is None:
        return contextlib.nullcontext()
    from distributed import Client
    try:
        return Client(scheduler, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise MmworkError(f"cannot reach the Dask scheduler at {scheduler} ({exc})") from exc


def open(dataset: str, table: str, columns: list[str] | None = None, filters: list | None = None):  # noqa: A001
    """A Dask DataFrame over ``dataset``/``table`` that reads only ``columns`` and only the row
    groups whose statistics can satisfy ``filters`` (pyarrow DNF, e.g. ``[("duration_s", ">", 2)]``),
    then applies the filters row by row."""
    import dask.dataframe as dd
    _check(dataset, table, columns, filters)
    path = table_path(dataset, table)
    source = [str(p) for p in _parts(path)] if path.is_dir() else str(path)
    return dd.read_parquet(source, columns=columns, filters=filters or None, split_row_groups="adaptive")


def catalog() -> pd.DataFrame:
    """Every data set and table: rows, schema, and the producer and parameters from its metadata."""
    tables = list_tables()
    params = []
    for path in tables["path"]:
        p = Path(path)
        first = _parts(p)[0] if p.is_dir() else p
        try:
            meta = json.loads((pq.read_schema(first).metadata or {}).get(METADATA_KEY, b"{}"))
        except (OSError, pa.ArrowInvalid):
            meta = {}
        params.append(meta.get("params", {}))
    return tables.assign(params=params)


def parse_where(clauses: list[str]) -> list[tuple]:
    """``["duration_s > 2", "category in [digits, letters]"]`` -> pyarrow filters; values are read
    as YAML scalars, so ``2`` is a number and ``digits`` is text.

    >>> parse_where(["duration_s >= 2.5", "category == digits"])
    [('duration_s', '>=', 2.5), ('category', '==', 'digits')]
    """
    import yaml
    filters = []
    for clause in clauses:
        match = _WHERE.match(clause)
        if not match:
            raise MmworkError(f"cannot read --where {clause!r}; write 'COLUMN OP VALUE' with OP one of {OPERATORS}")
        column, op, raw = match.groups()
        value = yaml.safe_load(raw)
        if op == "=":
            op = "=="
        if op in ("in", "not in") and not isinstance(value, list):
            raise MmworkError(f"--where {clause!r}: '{op}' needs a list such as [a, b]")
        filters.append((column, op, value))
    return filters


def query(dataset: str, table: str, columns: list[str] | None = None, where: list[str] | None = None,
          limit: int | None = None, output: str | Path | None = None, scheduler: str | None = None) -> pd.DataFrame:
    """Projection + filter query; returns pandas (``limit`` rows at most) and optionally writes
    ``output`` (.csv or .parquet)."""
    if output is not None and Path(output).suffix not in (".csv", ".parquet"):
        raise MmworkError(f"--output must end in .csv or .parquet, got {output}")
    if limit is not None and limit < 1:
        raise MmworkError("--limit must be >= 1")
    frame = open(dataset, table, columns=columns, filters=parse_where(where or []) or None)
    with _client(scheduler):
        result = frame.head(limit, npartitions=-1) if limit else frame.compute()
    result = result.reset_index(drop=True)
    if output is not None:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        result.to_csv(output, index=False) if str(output).endswith(".csv") else result.to_parquet(output, index=False)
    return result


def _feature_spec(dataset: str, features: str) -> tuple[str, str]:
    table, _, column = features.partition(":")
    if not column:
        raise MmworkError(f"--features must look like MODALITY:COLUMN (e.g. audio:mfcc_stats), got {features!r}")
    table = table if table.startswith("features/") else f"features/{table}"
    kind = _schema(dataset, table).field(column).type if column in _schema(dataset, table).names else None
    if kind is None:
        raise MmworkError(f"{dataset}/{table} has no column {column!r}; its columns are {_schema(dataset, table).names}")
    if not (pa.types.is_fixed_size_list(kind) or pa.types.is_list(kind)):
        raise MmworkError(f"{column!r} is not a vector column ({kind})")
    return table, column


def _vector_batches(path: str, column: str, batch_size: int = 65536):
    """(item_ids, float32 matrix) batches of one Parquet file, straight from Arrow (no per-row objects)."""
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size, columns=["item_id", column]):
        vectors = batch.column(1)
        width = vectors.type.list_size if pa.types.is_fixed_size_list(vectors.type) else None
        if width is None:  # variable-length lists: every row must still have the same length
            lengths = np.diff(vectors.offsets.to_numpy())
            if len(set(lengths.tolist())) > 1:
                raise MmworkError(f"{column!r} holds vectors of different lengths; cosine needs one length")
            width = int(lengths[0]) if len(lengths) else 0
        matrix = vectors.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        yield batch.column(0).to_numpy(zero_copy_only=False), matrix.reshape(len(batch), width)


def _moments_file(path: str, column: str) -> tuple[int, np.ndarray, np.ndarray]:
    n, total, squares = 0, 0.0, 0.0
    for _, vectors in _vector_batches(path, column):
        n += len(vectors)
        total = total + vectors.sum(0, dtype=np.float64)
        squares = squares + (vectors.astype(np.float64) ** 2).sum(0)
    return n, total, squares


def _top_k_file(path: str, column: str, query: np.ndarray, k: int, center) -> pd.DataFrame:
    """Cosine similarity of one file's vectors to ``query``, batch by batch; only its k best rows leave it."""
    best_ids, best_sims = [], []
    for ids, vectors in _vector_batches(path, column):
        if center is not None:
            vectors = (vectors - center[0]) / center[1]
        norms = np.linalg.norm(vectors, axis=1)
        sims = (vectors @ query) / np.where(norms == 0, np.inf, norms)
        keep = np.argpartition(-sims, k - 1)[:k] if len(sims) > k else np.arange(len(sims))
        best_ids.append(ids[keep])
        best_sims.append(sims[keep])
    if not best_ids:
        return pd.DataFrame({"item_id": [], "similarity": []})
    frame = pd.DataFrame({"item_id": np.concatenate(best_ids), "similarity": np.concatenate(best_sims).astype(np.float64)})
    return frame.nlargest(k, "similarity")


def similar_to_vector(dataset: str, vector: np.ndarray, features: str, k: int = 10, exclude: str | None = None,
                      standardize: bool | None = None, scheduler: str | None = None) -> pd.DataFrame:
    """The ``k`` items whose ``features`` vectors have the highest cosine similarity to ``vector``:
    one Dask task per Parquet file, each streaming its file in batches and keeping only its best k,
    so the catalogue never has to fit in memory.

    standardize: z-score every dimension (over the whole table) before the cosine, so that one
    large-valued dimension (MFCC 0, HOG bins) does not decide alone. Default: on for audio and
    image features, off for text embeddings, which are made for plain cosine.
    """
    import dask
    table, column = _feature_spec(dataset, features)
    if k < 1:
        raise MmworkError("k must be >= 1")
    query = np.asarray(vector, dtype=np.float32).ravel()
    if not np.isfinite(query).all():
        raise MmworkError("the query vector is not finite: no cosine neighbours exist")
    path = table_path(dataset, table)
    files = [str(p) for p in (_parts(path) if path.is_dir() else [path])]
    standardize = table != "features/text" if standardize is None else standardize
    keep = k + (1 if exclude is not None else 0)
    with _client(scheduler):
        center = None
        if standardize:
            moments = dask.compute(*[dask.delayed(_moments_file)(f, column) for f in files])
            n = sum(m[0] for m in moments)
            mean = sum(m[1] for m in moments) / n
            std = np.sqrt(np.maximum(sum(m[2] for m in moments) / n - mean ** 2, 1e-12))
            center = (mean.astype(np.float32), std.astype(np.float32))
            query = (query - center[0]) / center[1]
        if not np.linalg.norm(query):
            raise MmworkError("the query vector is zero: no cosine neighbours exist")
        query = query / np.linalg.norm(query)
        parts = dask.compute(*[dask.delayed(_top_k_file)(f, column, query, keep, center) for f in files])
    candidates = pd.concat(parts, ignore_index=True)
    if exclude is not None:
        candidates = candidates[candidates["item_id"] != exclude]
    best = candidates.sort_values(["similarity", "item_id"], ascending=[False, True]).head(k).reset_index(drop=True)
    return _with_titles(dataset, best)


def _with_titles(dataset: str, frame: pd.DataFrame) -> pd.DataFrame:
    names = _schema(dataset, "items").names
    label = [c for c in ("title", "text", "label", "category") if c in names][:2]
    if not label:
        return frame
    items = pq.read_table(table_path(dataset, "items"), columns=["item_id", *label],
                          filters=[("item_id", "in", frame["item_id"].tolist())]).to_pandas()
    return frame.merge(items, on="item_id", how="left")


def similar(dataset: str, item_id: str, features: str, k: int = 10, standardize: bool | None = None,
            scheduler: str | None = None) -> pd.DataFrame:
    """Exact cosine nearest neighbours of one item, with the items' titles (see
    :func:`similar_to_vector` for ``standardize``)."""
    table, column = _feature_spec(dataset, features)
    path = table_path(dataset, table)
    source = [str(p) for p in _parts(path)] if path.is_dir() else str(path)
    row = pq.read_table(source, columns=[column], filters=[("item_id", "==", str(item_id))])
    if row.num_rows == 0:
        raise MmworkError(f"item {item_id!r} has no row in {dataset}/{table}; check the id (mmwork query {dataset} items)")
    return similar_to_vector(dataset, np.asarray(row.column(0)[0].as_py()), features, k, exclude=str(item_id),
                             standardize=standardize, scheduler=scheduler)


def similar_to_text(dataset: str, text: str, features: str = "text:minilm", k: int = 10,
                    scheduler: str | None = None) -> pd.DataFrame:
    """Neighbours of a free-text query, embedded with the model that made the feature column
    (MiniLM, or the saved TF-IDF/LSA and skip-gram fits)."""
    table, column = _feature_spec(dataset, features)
    if table != "features/text":
        raise MmworkError("free-text queries need a text feature column, e.g. text:minilm")
    if column == "minilm":
        from mmwork.features.text import SentenceEmbedder
        vector = SentenceEmbedder(device="cpu").fit().transform([text])[0]
    else:
        vector = _fitted_text_model(dataset, column).transform([text])[0]
    return similar_to_vector(dataset, vector, features, k, scheduler=scheduler)


def _fitted_text_model(dataset: str, column: str):
    """The saved text model that computed ``features/text`` as it is now: chosen by the configuration
    recorded in the table and checked against the table's fingerprint, so a refit never goes unseen."""
    from mmwork.features.modalities import TextModality
    from mmwork.paths import data_root
    meta = table_metadata(dataset, "features/text").get("params", {})  # what the pipeline recorded
    modality = TextModality(meta.get("requested") or meta.get("params") or {})
    rerun = f"re-run `mmwork extract {dataset} --modalities text`"
    if not modality.load_fit(data_root() / "models" / dataset):
        raise MmworkError(f"the text model that computed {dataset}/features/text is not saved here; {rerun}")
    if modality.fingerprint() != meta.get("fingerprint") or column not in modality.models:
        raise MmworkError(f"the saved text models of {dataset} no longer match features/text (refitted since); "
                          f"{rerun}")
    return modality.models[column]


def join_items(frame, dataset: str, columns: list[str]):
    """Add items metadata columns to a (Dask or pandas) frame that has ``item_id``."""
    _check(dataset, "items", ["item_id", *columns], None)
    items = pq.read_table(table_path(dataset, "items"), columns=["item_id", *columns]).to_pandas()
    return frame.merge(items.astype({"item_id": frame["item_id"].dtype}), on="item_id", how="left")


def feature_stat_by(dataset: str, features: str, by: str, dim: int = 0, scheduler: str | None = None) -> pd.DataFrame:
    """Mean and count of one dimension of a feature vector per value of an items column, e.g. the
    mean of MFCC coefficient 0 (overall energy) of the clips in each category."""
    table, column = _feature_spec(dataset, features)
    frame = open(dataset, table, columns=["item_id", column])
    values = frame.map_partitions(lambda b: pd.DataFrame({"item_id": b["item_id"].astype(str),
                                                          "value": [float(v[dim]) for v in b[column]]}),
                                  meta=pd.DataFrame({"item_id": pd.Series([], dtype=str),
                                                     "value": pd.Series([], dtype="float64")}))
    joined = join_items(values, dataset, [by])
    with _client(scheduler):
        out = joined.groupby(by)["value"].agg(["mean", "count"]).compute()
    return out.sort_values("mean", ascending=False).rename(columns={"mean": f"mean {column}[{dim}]"})


def top_items_by(dataset: str, by: str, k: int = 3, scheduler: str | None = None) -> pd.DataFrame:
    """The ``k`` most-interacted items per value of an items column (a list column such as genres
    counts the item once per value)."""
    interactions = open(dataset, "interactions", columns=["item_id"])
    with _client(scheduler):
        counts = interactions.groupby("item_id").size().compute().rename("interactions").reset_index()
    label = "title" if "title" in _schema(dataset, "items").names else "item_id"
    joined = join_items(counts, dataset, [by] + ([label] if label != "item_id" else []))
    joined = joined.explode(by) if joined[by].map(lambda v: isinstance(v, (list, np.ndarray))).any() else joined
    ranked = joined.sort_values([by, "interactions"], ascending=[True, False])
    return ranked.groupby(by, group_keys=False).head(k).reset_index(drop=True)
