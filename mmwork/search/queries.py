"""Ad-hoc queries over the Parquet tables: projection and filter pushdown (pyarrow's scanner here, Dask
DataFrames on a cluster), the catalogue, and the joins and group-bys analysts need. Similarity
search is :mod:`mmwork.search.similar`.

>>> import mmwork
>>> clips = mmwork.open("speech-prompts", "items", columns=["item_id", "duration_s"],
...                     filters=[("duration_s", ">", 2.0)])                       # doctest: +SKIP
>>> mmwork.query("speech-prompts", "items", where=["duration_s > 2"], limit=5)  # doctest: +SKIP
"""
from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mmwork.core.errors import MmworkError
from mmwork.features.workers import dask_client
from mmwork.store.tables import METADATA_KEY, ROW_GROUP_SIZE, list_tables, table_parts, table_path

if TYPE_CHECKING:  # pandas is imported by the functions that return a DataFrame
    import pandas as pd

OPERATORS = ("==", "!=", ">=", "<=", ">", "<", "in", "not in")
_WHERE = re.compile(r"^\s*([\w./-]+)\s*(==|!=|>=|<=|>|<|=|not in|in)\s*(.+?)\s*$")


def _schema(dataset: str, table: str) -> pa.Schema:
    path = table_path(dataset, table)
    files = table_parts(path) if path.is_dir() else [path]
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


def open(dataset: str, table: str, columns: list[str] | None = None, filters: list | None = None):  # noqa: A001
    """A Dask DataFrame over ``dataset``/``table`` that reads only ``columns`` and only the row
    groups whose statistics can satisfy ``filters`` (pyarrow DNF, e.g. ``[("duration_s", ">", 2)]``),
    then applies the filters row by row."""
    import dask.dataframe as dd
    _check(dataset, table, columns, filters)
    path = table_path(dataset, table)
    source = [str(p) for p in table_parts(path)] if path.is_dir() else str(path)
    return dd.read_parquet(source, columns=columns, filters=filters or None, split_row_groups="adaptive")


def catalog() -> pd.DataFrame:
    """Every data set and table: rows, schema, and the producer and parameters from its metadata."""
    tables = list_tables()
    params = []
    for path in tables["path"]:
        p = Path(path)
        first = table_parts(p)[0] if p.is_dir() else p
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


def _arrow_to_pandas(data: pa.Table) -> pd.DataFrame:
    """The pandas frame a Dask read of ``data`` gives (Dask's ``convert-string`` types), so a query
    answers in the same types whichever engine ran it."""
    import pandas as pd

    def types(kind: pa.DataType):
        if kind in (pa.string(), pa.large_string()):
            return pd.StringDtype("pyarrow")
        if kind in (pa.date32(), pa.date64()) or pa.types.is_decimal(kind):
            return pd.ArrowDtype(kind)
        return None
    return data.to_pandas(types_mapper=types)


def select(dataset: str, table: str, columns: list[str] | None = None, filters: list | None = None,
           limit: int | None = None) -> pd.DataFrame:
    """Eager, in-process counterpart of :func:`open`: pyarrow's dataset scanner reads only ``columns``,
    skips the row groups whose statistics rule ``filters`` out (pyarrow DNF: a list of tuples ANDed,
    or a list of such lists ORed), filters the rest row by row and stops after ``limit`` rows.
    No Dask: for an answer that fits in memory this is many times faster than building a graph.

    >>> select("speech-prompts", "items", ["item_id"], [("category", "==", "digits")], limit=3)  # doctest: +SKIP
    """
    import pyarrow.dataset as ds
    schema = _check(dataset, table, columns, filters)
    path = table_path(dataset, table)
    files = [str(p) for p in table_parts(path)] if path.is_dir() else [str(path)]
    # with a limit, read one row group at a time: the default read-ahead (16 batches of 4 files)
    # decodes tens of MB of vectors to return 10 rows (2 s instead of 0.1 s at 1M rows)
    lean = {"fragment_readahead": 1, "batch_readahead": 1, "batch_size": ROW_GROUP_SIZE} if limit else {}
    scanner = ds.dataset(files, schema=schema, format="parquet").scanner(
        columns=columns, filter=pq.filters_to_expression(filters) if filters else None, **lean)
    return _arrow_to_pandas(scanner.head(limit) if limit else scanner.to_table())


def _write_output(result: pd.DataFrame, output: Path, provenance: dict) -> None:
    """Write a query's answer to .csv or .parquet through a temporary and a rename: never half a file."""
    from mmwork.store.tables import write_table
    if output.suffix == ".parquet":
        write_table(result, output, producer="mmwork query", params=provenance)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        result.to_csv(tmp, index=False)
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)


def query(dataset: str, table: str, columns: list[str] | None = None, where: list[str] | None = None,
          limit: int | None = None, output: str | Path | None = None, scheduler: str | None = None,
          filters: list | None = None) -> pd.DataFrame:
    """Projection + filter query; returns pandas (``limit`` rows at most, in table order) and
    optionally writes ``output`` (.csv or .parquet).

    where: clauses such as ``"duration_s > 2"`` (ANDed; see :func:`parse_where`); or give
    ``filters`` in pyarrow DNF instead, which can also OR groups of clauses.
    Runs in this process with pyarrow's scanner (:func:`select`); with ``scheduler`` (a Dask
    address) the same read runs on that cluster (:func:`open`).

    >>> query("speech-prompts", "items", ["item_id", "duration_s"], ["duration_s > 2"], limit=5)  # doctest: +SKIP
    """
    if output is not None and Path(output).suffix not in (".csv", ".parquet"):
        raise MmworkError(f"--output must end in .csv or .parquet, got {output}")
    if limit is not None and limit < 1:
        raise MmworkError("--limit must be >= 1")
    if where and filters:
        raise MmworkError("give the filter as where clauses or as pyarrow filters, not both")
    filters = filters or parse_where(where or []) or None
    if scheduler is None:
        result = select(dataset, table, columns=columns, filters=filters, limit=limit)
    else:
        frame = open(dataset, table, columns=columns, filters=filters)
        with dask_client(scheduler):
            result = frame.head(limit, npartitions=-1) if limit else frame.compute()
        result = result.reset_index(drop=True)
    if output is not None:
        _write_output(result, Path(output), {"dataset": dataset, "table": table, "columns": columns,
                                             "filters": filters, "limit": limit})
    return result


def join_items(frame, dataset: str, columns: list[str]):
    """Add items metadata columns to a (Dask or pandas) frame that has ``item_id``."""
    _check(dataset, "items", ["item_id", *columns], None)
    items = pq.read_table(table_path(dataset, "items"), columns=["item_id", *columns]).to_pandas()
    return frame.merge(items.astype({"item_id": frame["item_id"].dtype}), on="item_id", how="left")


def feature_stat_by(dataset: str, features: str, by: str, dim: int = 0, scheduler: str | None = None) -> pd.DataFrame:
    """Mean and count of one dimension of a feature vector per value of an items column, e.g. the
    mean of MFCC coefficient 0 (overall energy) of the clips in each category."""
    import pandas as pd

    from mmwork.search.columns import feature_column
    col = feature_column(dataset, features)
    table, column = col.table, col.column
    frame = open(dataset, table, columns=["item_id", column])
    values = frame.map_partitions(lambda b: pd.DataFrame({"item_id": b["item_id"].astype(str),
                                                          "value": [float(v[dim]) for v in b[column]]}),
                                  meta=pd.DataFrame({"item_id": pd.Series([], dtype=str),
                                                     "value": pd.Series([], dtype="float64")}))
    joined = join_items(values, dataset, [by])
    with dask_client(scheduler):
        out = joined.groupby(by)["value"].agg(["mean", "count"]).compute()
    return out.sort_values("mean", ascending=False).rename(columns={"mean": f"mean {column}[{dim}]"})


def top_items_by(dataset: str, by: str, k: int = 3, scheduler: str | None = None) -> pd.DataFrame:
    """The ``k`` most-interacted items per value of an items column (a list column such as genres
    counts the item once per value)."""
    interactions = open(dataset, "interactions", columns=["item_id"])
    with dask_client(scheduler):
        counts = interactions.groupby("item_id").size().compute().rename("interactions").reset_index()
    label = "title" if "title" in _schema(dataset, "items").names else "item_id"
    joined = join_items(counts, dataset, [by] + ([label] if label != "item_id" else []))
    joined = joined.explode(by) if joined[by].map(lambda v: isinstance(v, (list, np.ndarray))).any() else joined
    ranked = joined.sort_values([by, "interactions"], ascending=[True, False])
    return ranked.groupby(by, group_keys=False).head(k).reset_index(drop=True)
