"""One extraction task: a chunk of items read from the items table, each item's content hashed with the
extractor's fingerprint, unchanged rows (and errors) reused from the chunk's previous part, the rest
extracted with per-item fault isolation, and the part replaced atomically only if a row changed.

>>> ERRORS_SCHEMA.names
['item_id', 'stage', 'error_type', 'message', 'content_hash']
"""
from __future__ import annotations

import hashlib
import json
import os
import re

import pyarrow as pa
import pyarrow.parquet as pq

from mmwork.features.modalities import Modality
from mmwork.features.workers import setup_worker
from mmwork.store.tables import METADATA_KEY, read_rows, write_table

ERRORS_SCHEMA = pa.schema([("item_id", pa.string()), ("stage", pa.string()), ("error_type", pa.string()),
                           ("message", pa.string()), ("content_hash", pa.string())])


def _content_hash(raw: bytes, fingerprint: str) -> str:
    return hashlib.sha256(raw + fingerprint.encode()).hexdigest()[:24]


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _error(item_id: str, stage: str, exc: BaseException, content_hash: str | None = None) -> dict:
    """An errors-table row. Object addresses (``<_io.BytesIO object at 0x7f...>``) are dropped from the
    message, so the same bad input gives the same row in every run. ``content_hash`` (of an input that
    was read but failed to decode or extract) lets a re-run skip it while the input is unchanged."""
    message = _ADDRESS.sub("", str(exc) or repr(exc))[:500]
    return {"item_id": item_id, "stage": stage, "error_type": type(exc).__name__, "message": message,
            "content_hash": content_hash}


def _previous_keys(path: str, metadata: dict) -> tuple[dict[str, str], bool]:
    """``item_id -> content_hash`` of the rows an earlier run wrote to ``path``, in order (none if
    missing or unreadable: then it is rebuilt), and whether it recorded the same extractor metadata
    (fingerprint, parameters, chunk size). Reads two short columns, never the vectors."""
    try:
        parquet = pq.ParquetFile(path)
        meta = json.loads((parquet.schema_arrow.metadata or {}).get(METADATA_KEY, b"{}"))
        keys = parquet.read(columns=["item_id", "content_hash"])
    except (pa.ArrowInvalid, OSError, KeyError):
        return {}, False
    return dict(zip(keys.column(0).to_pylist(), keys.column(1).to_pylist())), meta.get("params") == metadata


def _previous_errors(path: str, metadata: dict) -> tuple[list[dict], bool]:
    """The errors rows an earlier run wrote to ``path`` and whether it recorded the same metadata."""
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError):
        return [], False
    meta = json.loads((table.schema.metadata or {}).get(METADATA_KEY, b"{}"))
    rows = [{name: row.get(name) for name in ERRORS_SCHEMA.names} for row in table.to_pylist()]
    return rows, meta.get("params") == metadata


def run_chunk(modality: Modality, items_path: str, start: int, stop: int, end: int, part: str, errors_part: str,
              fingerprint: str, schema: pa.Schema, metadata: dict, *, only_without_work: bool = False,
              rows: list[dict] | None = None) -> dict | None:
    """Extract items ``[start, stop)`` into ``part`` and ``errors_part``; items ``[stop, end)`` of the same
    part lie beyond this run's limit and keep what they had. A file whose rows would not change is not
    rewritten. Returns counts for items ``[start, stop)`` only.

    An item is extracted again only if its input's content (or the extractor) changed: its previous
    row, or its previous error (a decode failure is as reproducible as a success), is kept as it was.
    ``only_without_work=True`` (the client's check before it schedules anything) finishes the chunk only
    when no item needs extracting, and returns None, having written nothing, when one does. ``rows``:
    the items rows ``[start, end)`` when the caller has them already."""
    if rows is None:
        rows = read_rows(items_path, ["item_id", modality.column], start, end).to_pylist()
    old_keys, same = _previous_keys(part, metadata)
    old_errors, same_errors = _previous_errors(errors_part, metadata)
    old_error = {e["item_id"]: e for e in old_errors}
    output: list[dict | str | None] = [None] * len(rows)  # an item_id (str) keeps that item's previous row
    errors: list[dict | None] = [None] * len(rows)
    todo = []
    for position, row in enumerate(rows):
        item_id, value = row["item_id"], row[modality.column]
        if start + position >= stop:  # beyond this run's limit: left as it was
            output[position] = item_id if item_id in old_keys else None
            errors[position] = old_error.get(item_id)
        elif value is not None:  # None: the item has no input for this modality, which is not an error
            try:
                raw = modality.read(value)
            except Exception as exc:  # noqa: BLE001 - a missing/unreadable file is this item's error only
                errors[position] = _error(item_id, "read", exc)
                continue
            key = _content_hash(raw, fingerprint)
            if old_keys.get(item_id) == key:
                output[position] = item_id
            elif old_error.get(item_id, {}).get("content_hash") == key:
                errors[position] = old_error[item_id]
            elif only_without_work:
                return None  # at the first item with work: a worker will read and hash this chunk anyway
            else:
                todo.append((position, key, raw))
    if todo:
        setup_worker(modality.name)  # paid only by a chunk with work: a no-op rerun skips the warm-up
    for (position, key, _), (features, failure) in zip(todo, modality.extract([t[2] for t in todo])):
        item_id = rows[position]["item_id"]
        if failure is None:
            output[position] = {"item_id": item_id, "content_hash": key, **features}
        else:
            errors[position] = _error(item_id, *failure, content_hash=key)
    kept, failed = [r for r in output if r is not None], [e for e in errors if e is not None]
    keys = [(r, old_keys[r]) if isinstance(r, str) else (r["item_id"], r["content_hash"]) for r in kept]
    if not (same and keys == list(old_keys.items())):
        if any(isinstance(r, str) for r in kept):  # only now read the previous vectors, to carry them over
            previous = {r["item_id"]: r for r in pq.read_table(part).to_pylist()}
            kept = [previous[r] if isinstance(r, str) else r for r in kept]
        table = pa.Table.from_pylist(kept, schema=schema) if kept else schema.empty_table()
        write_table(table, part, schema=schema, producer=f"mmwork.features.{modality.name}", params=metadata,
                    input_hash=fingerprint)
    if failed and not (same_errors and failed == old_errors):
        write_table(pa.Table.from_pylist(failed, schema=ERRORS_SCHEMA), errors_part, schema=ERRORS_SCHEMA,
                    producer=f"mmwork.features.{modality.name}", params=metadata, input_hash=fingerprint)
    elif not failed and os.path.exists(errors_part):
        os.remove(errors_part)
    scope = stop - start
    extracted = sum(output[position] is not None for position, _, _ in todo)
    rows_done = sum(r is not None for r in output[:scope])
    return {"modality": modality.name, "rows": rows_done, "errors": sum(e is not None for e in errors[:scope]),
            "extracted": extracted, "reused": rows_done - extracted}
