"""Parquet tables on disk: atomic writes, explicit schemas, provenance metadata, a catalogue.

A table lives at ``data/processed/DATASET/TABLE.parquet``. Writes go to a hidden temporary sibling
and are renamed into place, so a killed run leaves either the old table or the new one, never half
of one. Every table carries key-value metadata under the key ``mmwork``: producer, parameters,
mmwork version, a hash of its inputs and its creation time.

>>> import pandas as pd, tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "items.parquet"
>>> _ = write_table(pd.DataFrame({"item_id": ["a", "b"]}), path, producer="doctest")
>>> read_table(path)["item_id"].tolist()
['a', 'b']
>>> table_metadata(path)["producer"]
'doctest'
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import uuid
from contextlib import suppress
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from mmwork.core.errors import MmworkError
from mmwork.core.paths import data_root, processed_dir
from mmwork.core.version import version
from mmwork.store.disk import disk_errors

if TYPE_CHECKING:  # pandas is imported where a function returns or hashes a DataFrame
    import pandas as pd

METADATA_KEY = b"mmwork"
ROW_GROUP_SIZE = 8192  # row groups are the unit Dask reads in parallel and filters skip


def table_path(dataset: str, table: str) -> Path:
    """``TABLE.parquet`` for a one-file table, or the folder ``TABLE/`` of part files that the
    feature pipeline writes (e.g. ``features/audio``)."""
    folder = processed_dir(dataset) / table
    return folder if folder.is_dir() else processed_dir(dataset) / f"{table}.parquet"


def table_parts(path: Path) -> list[Path]:
    """The Parquet parts of a table stored as a folder, in order (hidden and temporary files left out)."""
    return sorted(p for p in path.glob("*.parquet") if not p.name.startswith((".", "_")))


def hash_inputs(*parts: Any) -> str:
    """A stable short hash of the things a table was built from (strings, bytes, DataFrames, files).

    >>> hash_inputs("a", b"b") == hash_inputs("a", b"b")
    True
    """
    digest = hashlib.sha256()
    for part in parts:
        if type(part).__name__ == "DataFrame":  # pandas, imported only when a caller already has it
            import pandas as pd
            digest.update(pd.util.hash_pandas_object(part, index=False).values.tobytes())
        elif isinstance(part, (bytes, bytearray)):
            digest.update(part)
        elif isinstance(part, Path):
            digest.update(part.name.encode())
            with open(part, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


# -- OS errors at the store's boundary --------------------------------------------------------------

def write_table(data: pd.DataFrame | pa.Table, path: str | Path, *, schema: pa.Schema | None = None,
                producer: str = "user", params: dict | None = None, input_hash: str | None = None) -> Path:
    """Write ``data`` to ``path`` atomically with an explicit schema and provenance metadata.

    ``schema`` fixes the column types (e.g. ``list<float32>`` of a fixed size); without it the schema
    is inferred from the data. Returns the path written.
    """
    path = Path(path)
    try:
        table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(
            data, schema=schema, preserve_index=False)
        if schema is not None and isinstance(data, pa.Table):
            table = table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, KeyError) as exc:
        raise MmworkError(f"cannot write {path.name}: data does not match its schema ({exc})") from exc
    meta = {
        "producer": producer,
        "params": params or {},
        "mmwork_version": version(),
        "input_hash": input_hash or hash_inputs(table.schema.to_string()),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "rows": table.num_rows,
    }
    existing = dict(table.schema.metadata or {})
    existing[METADATA_KEY] = json.dumps(meta, default=str).encode()
    table = table.replace_schema_metadata(existing)

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    def write(tmp: Path) -> None:
        remove_dead_temporaries(path.parent, path.name)
        pq.write_table(table, tmp, row_group_size=ROW_GROUP_SIZE, compression="zstd", **_encodings(table.schema))
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())

    # the table's size uncompressed: an upper bound of what a full disk lacked
    _replace_atomically(path, tmp, write, table.nbytes, "table")
    return path


def _replace_atomically(path: Path, tmp: Path, write, size: int, what: str) -> None:
    """``write(tmp)``, then rename ``tmp`` to ``path``: a reader sees the old file or the new one. An
    OSError (a full disk, a read-only or foreign folder) becomes :func:`disk_error`'s one line; the
    temporary file goes, the old file (if any) stays."""
    with disk_errors(path, size, then=f"nothing partial was written (a {what} already there is kept)"):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write(tmp)
            os.replace(tmp, path)
        finally:
            with suppress(OSError):  # could not be made: nothing to remove
                tmp.unlink(missing_ok=True)


def _encodings(schema: pa.Schema) -> dict:
    """Parquet encodings by column: float vectors (lists of floats) byte-stream-split and never
    dictionary-encoded, every other column dictionary-encoded as pyarrow does by default. Dictionaries
    of float features never repeat, and the split bytes compress better: 1.3x smaller and about 1.7x
    faster to decode on 120-d MFCC vectors.

    >>> _encodings(pa.schema([("id", pa.string()), ("v", pa.list_(pa.float32(), 4))]))
    {'use_dictionary': ['id'], 'column_encoding': {'v.list.element': 'BYTE_STREAM_SPLIT'}}
    """
    dictionary, split = [], {}
    for field in schema:
        kind = field.type
        listed = pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)
        if listed and pa.types.is_floating(kind.value_type):
            split[f"{field.name}.list.element"] = "BYTE_STREAM_SPLIT"
        elif listed:
            dictionary.append(f"{field.name}.list.element")
        elif not pa.types.is_nested(kind):
            dictionary.append(field.name)
    return {"use_dictionary": dictionary, "column_encoding": split} if split else {}


def _resolve(path_or_dataset: str | Path, table: str | None) -> Path:
    if table is not None:
        return table_path(str(path_or_dataset), table)
    return Path(path_or_dataset)


def _open(path: Path) -> pq.ParquetFile:
    """The table's (first) Parquet file, for its schema and metadata."""
    files = table_parts(path) if path.is_dir() else [path]
    if not path.exists() or not files:
        hint = (f"run `mmwork data get {path.parent.name}`" if path.parent.parent == processed_dir("x").parent
                else "check the path, or build the table first")
        raise MmworkError(f"no table at {path}; {hint}")
    try:
        return pq.ParquetFile(files[0])
    except (pa.ArrowInvalid, OSError) as exc:
        raise MmworkError(f"table {path} is unreadable or truncated ({exc}); delete it and rebuild it") from exc


def read_table(path_or_dataset: str | Path, table: str | None = None, *, columns: list[str] | None = None,
               filters: list | None = None, as_dask: bool = False):
    """Read a table as a pandas DataFrame (or a Dask DataFrame with ``as_dask=True``).

    Call it with a path, or with a data set name and a table name:
    ``read_table("movielens-100k", "interactions", columns=["user_id", "item_id"])``.
    """
    path = _resolve(path_or_dataset, table)
    parquet = _open(path)
    if columns is not None:
        missing = [c for c in columns if c not in parquet.schema_arrow.names]
        if missing:
            raise MmworkError(f"{path.name} has no column(s) {missing}; it has {parquet.schema_arrow.names}")
    if as_dask:
        import dask.dataframe as dd
        source = [str(p) for p in table_parts(path)] if path.is_dir() else str(path)
        return dd.read_parquet(source, columns=columns, filters=filters, split_row_groups="adaptive")
    try:
        source = [str(p) for p in table_parts(path)] if path.is_dir() else path
        return pq.read_table(source, columns=columns, filters=filters).to_pandas()
    except (pa.ArrowInvalid, OSError) as exc:
        raise MmworkError(f"table {path} is unreadable or truncated ({exc}); delete it and rebuild it") from exc


def table_schema(path_or_dataset: str | Path, table: str | None = None) -> pa.Schema:
    """A table's Arrow schema, read from its footer (no rows are read).

    >>> table_schema("movielens-100k", "items").names[:2]     # doctest: +SKIP
    ['item_id', 'title']
    """
    return _open(_resolve(path_or_dataset, table)).schema_arrow


def table_metadata(path_or_dataset: str | Path, table: str | None = None) -> dict:
    """The provenance metadata mmwork wrote with a table (empty for tables written by others)."""
    raw = (_open(_resolve(path_or_dataset, table)).schema_arrow.metadata or {}).get(METADATA_KEY)
    return json.loads(raw) if raw else {}


def list_tables(root: str | Path | None = None) -> pd.DataFrame:
    """Every table under ``data/processed``: data set, table, rows, columns, producer, created.

    Reading only: it never deletes anything (temporary files are not tables and are not listed).
    """
    root = Path(root) if root is not None else data_root() / "processed"
    rows = []
    files = sorted(p for p in root.glob("**/*.parquet") if not p.name.startswith((".", "_"))) if root.exists() else []
    tables = sorted({p.parent if p.name.startswith("part-") else p for p in files})
    for path in tables:
        rel = path.relative_to(root)
        name = rel.with_suffix("").as_posix() if path.is_file() else rel.as_posix()
        entry = {"dataset": rel.parts[0], "table": name[len(rel.parts[0]) + 1:], "path": str(path)}
        try:
            parquet = _open(path)
            count = sum(pq.ParquetFile(p).metadata.num_rows for p in table_parts(path)) if path.is_dir() \
                else parquet.metadata.num_rows
        except MmworkError as exc:
            rows.append(entry | {"rows": None, "columns": None, "schema": f"UNREADABLE: {exc}",
                                 "producer": None, "created": None})
            continue
        meta = json.loads((parquet.schema_arrow.metadata or {}).get(METADATA_KEY, b"{}"))
        rows.append(entry | {
            "rows": count,
            "columns": len(parquet.schema_arrow.names),
            "schema": ", ".join(f"{f.name}:{f.type}" for f in parquet.schema_arrow),
            "producer": meta.get("producer"),
            "created": meta.get("created"),
        })
    import pandas as pd
    return pd.DataFrame(rows, columns=["dataset", "table", "rows", "columns", "schema", "producer", "created", "path"])


def remove_dead_temporaries(folder: str | Path, name: str | None = None) -> list[Path]:
    """Delete the temporary files in ``folder`` (of table file ``name`` only, if given) that killed
    writers left: ``.NAME.tmp-PID-HEX`` whose PID no longer runs. A live writer's file is left alone.
    Returns the paths removed.

    >>> import tempfile, pathlib
    >>> remove_dead_temporaries(pathlib.Path(tempfile.mkdtemp()))
    []
    """
    pattern = f".{glob.escape(name) if name else '*'}.tmp-*"
    dead = sorted(p for p in Path(folder).glob(pattern) if not _writer_alive(p))
    for path in dead:
        path.unlink(missing_ok=True)
    return dead


def _writer_alive(tmp: Path) -> bool:
    """Whether the process named in a temporary file's name (``.NAME.tmp-PID-HEX``) still runs: a
    live writer's file is work in progress, a dead one's is debris from a killed run."""
    try:
        pid = int(tmp.name.rsplit(".tmp-", 1)[1].split("-")[0])
        os.kill(pid, 0)
    except (ValueError, IndexError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def write_json(path: str | Path, payload: dict) -> None:
    """Write ``payload`` as JSON through a temporary sibling, so a reader never sees half a file."""
    path = Path(path)
    text = json.dumps(payload, indent=1, default=str)
    _replace_atomically(path, path.with_name(path.name + ".tmp"), lambda tmp: tmp.write_text(text),
                        len(text.encode()), "file")


def swap_in_folder(staging: Path, target: Path) -> None:
    """Move the complete folder ``staging`` to ``target``, replacing what was there; ``target`` holds
    the old folder until the new one is in place."""
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    with disk_errors(target, then="the folder that was there is kept"):
        moved = target.exists()
        if moved:
            os.replace(target, old)
        try:
            os.replace(staging, target)
        except OSError:
            if moved:
                os.replace(old, target)
            raise
    shutil.rmtree(old, ignore_errors=True)


def read_rows(path: str | Path, columns: list[str], start: int, stop: int) -> pa.Table:
    """Rows ``[start, stop)`` of a one-file table, reading only the row groups that hold them.

    >>> import pandas as pd, tempfile, pathlib
    >>> p = write_table(pd.DataFrame({"item_id": list("abcd")}), pathlib.Path(tempfile.mkdtemp()) / "t.parquet")
    >>> read_rows(p, ["item_id"], 1, 3).column("item_id").to_pylist()
    ['b', 'c']
    """
    parquet = pq.ParquetFile(path)
    groups, offset, first = [], 0, None
    for index in range(parquet.num_row_groups):
        size = parquet.metadata.row_group(index).num_rows
        if offset + size > start and offset < stop:
            groups.append(index)
            first = offset if first is None else first
        offset += size
    if not groups:
        return parquet.schema_arrow.empty_table().select(columns)
    table = parquet.read_row_groups(groups, columns=columns)
    return table.slice(start - first, stop - start)
