"""Turn a data set's ``items`` into feature tables: incrementally, with per-item fault isolation,
on local worker processes or a Dask ``distributed`` cluster.

Layout: ``data/processed/DATASET/features/MODALITY/part-NNNNN.parquet`` (one part per chunk of
items, in items order) and ``features/MODALITY_errors/part-NNNNN.parquet`` (item_id, stage,
error_type, message, content_hash). Each chunk is one task: it reads only its rows of the items
table, hashes each item's input content together with the extractor fingerprint, reuses the previous
part's row (or error) of the same item with the same hash, extracts the rest, and replaces its part
atomically, and only if a row changed. A run killed at any point therefore resumes where it stopped,
and the finished table equals an uninterrupted run's.

Before anything is scheduled, the client checks each existing part (two short columns, and the
content hashes of its items): a chunk with nothing to extract is finished on the spot, so a re-run
with nothing changed starts no worker and rewrites no file. The chunks with work run largest first
(by input bytes), so that no worker idles at the end behind one long chunk.

Where they run (``scheduler=None``): ``$DASK_SCHEDULER_ADDRESS``, else the warm local cluster of
``mmwork cluster start`` when it is running (:mod:`mmwork.features.cluster`), else worker processes forked
from this one after it has warmed the extractor once (imports, numba JIT), or this process alone
when a single chunk has work.

>>> from mmwork.features import extract
>>> summary = extract("speech-prompts", ["audio"], scheduler="processes", workers=2)  # doctest: +SKIP
>>> summary[["modality", "rows", "extracted", "reused", "errors"]]                  # doctest: +SKIP
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mmwork.core.errors import DiskError, MmworkError
from mmwork.features.chunks import run_chunk
from mmwork.features.compute import LOCAL_SCHEDULERS, compute
from mmwork.features.modalities import MODALITIES, Modality
from mmwork.core.paths import data_root, processed_dir
from mmwork.store.disk import DISK_ERRNOS, disk_error, os_errno
from mmwork.store.tables import remove_dead_temporaries, table_metadata, table_path

DEFAULT_CHUNK = {"audio": 16, "image": 512, "text": 2048}
def _layouts(folder: Path) -> list[tuple[int, str]]:
    """(chunk size, fingerprint) of each readable part in ``folder``, in part order."""
    found = []
    for part in sorted(folder.glob("part-*.parquet")):
        try:
            params = table_metadata(part).get("params", {})
        except MmworkError:
            continue  # an unreadable part is rebuilt by its chunk
        found.append((params.get("chunk_size"), params.get("fingerprint")))
    return found


def _cost(rows: list[dict], column: str) -> int:
    """Input bytes of a chunk: the order in which chunks are handed out, largest first."""
    total = 0
    for row in rows:
        value = row[column]
        if isinstance(value, (bytes, bytearray)):
            total += len(value)
        elif value is not None:
            try:
                total += os.path.getsize(value)
            except (OSError, ValueError):
                total += len(str(value))  # inline text, or a missing file (its read error is quick)
    return total


def extract(dataset: str, modalities: list[str] | str | None = None, *, scheduler: str | None = None,
            workers: int | None = None, chunk_size: int | None = None, limit: int | None = None,
            params: dict[str, dict] | None = None, refit: bool = False, strict: bool = False,
            progress: bool | None = None) -> pd.DataFrame:
    """Extract the feature tables of ``dataset``; returns one summary row per modality (rows, extracted,
    reused and errors count the items this run covered).

    modalities: ``"text"``, ``"image"``, ``"audio"`` (default: every one whose input column the items
    have). scheduler: ``"processes"``, ``"threads"``, ``"sync"``, or a ``distributed`` address such as
    ``tcp://10.0.0.5:8786``; a cluster's workers must see the same file system. None (default):
    ``$DASK_SCHEDULER_ADDRESS``, else the local cluster of ``mmwork cluster start`` if it runs, else
    ``"processes"``. workers: local worker processes (default: one per core). params: per-modality
    extractor parameters, e.g. ``{"audio": {"n_mfcc": 13}}`` (see ``AudioConfig``, ``ImageConfig``,
    ``TextConfig``). chunk_size: items per part (default: the existing table's, else 16 audio, 512
    image, 2048 text). limit: cover only the first N items of the catalogue in this run (a quick look);
    the table's other rows stay as they are. strict: raise if any item failed.
    """
    started = time.perf_counter()
    items_path = table_path(dataset, "items")
    if not items_path.is_file():
        raise MmworkError(f"data set {dataset!r} has no items table; run `mmwork data get {dataset}` first")
    columns = pq.read_schema(items_path).names
    total = pq.ParquetFile(items_path).metadata.num_rows
    for name, value in (("chunk_size", chunk_size), ("workers", workers), ("limit", limit)):
        if value is not None and value < 1:
            raise MmworkError(f"{name} must be >= 1, got {value}")
    n_items = min(total, limit) if limit is not None else total
    if isinstance(modalities, str):
        modalities = [m.strip() for m in modalities.split(",") if m.strip()]
    params = params or {}
    unknown = set(modalities or []) - set(MODALITIES) | set(params) - set(MODALITIES)
    if unknown:
        raise MmworkError(f"unknown modality {sorted(unknown)}; choose from {sorted(MODALITIES)}")
    configured = {name: MODALITIES[name](values) for name, values in params.items()}  # all checked, used or not
    chosen: list[Modality] = []
    for name, cls in MODALITIES.items():
        if modalities is not None and name not in modalities:
            continue
        modality = configured.get(name) or cls()
        modality.column = modality.input_column(columns)
        if modality.column is None:
            if modalities is not None:
                raise MmworkError(f"{dataset} items have no {name} input column (looked for "
                                  f"{', '.join(cls.input_columns)}); its columns are {columns}")
            continue
        chosen.append(modality)
    if not chosen:
        raise MmworkError(f"{dataset} items have no text, image or audio column to extract from")
    progress = sys.stderr.isatty() if progress is None else progress

    if scheduler is not None and scheduler not in LOCAL_SCHEDULERS and ":" not in scheduler:
        raise MmworkError(f"scheduler {scheduler!r} is neither {', '.join(LOCAL_SCHEDULERS)} nor an address "
                          "such as tcp://HOST:8786")

    jobs, done = [], []
    try:
        results = _plan_and_run(dataset, chosen, items_path, n_items, total, chunk_size, refit, scheduler, workers,
                                progress, jobs, done)
    except (DiskError, OSError) as exc:  # a full disk, a read-only or foreign data root, here or in a worker
        if os_errno(exc) not in DISK_ERRNOS:
            raise
        path = getattr(exc, "path", None) or getattr(exc, "filename", None) or processed_dir(dataset) / "features"
        if jobs:  # the parts this run had still to write
            needs = sum((args[2] - args[1]) * _row_bytes(args[7]) for _, _, args in jobs)
        else:
            needs = n_items * sum(_modality_row_bytes(m) for m in chosen)
        raise disk_error(exc, path, needs, then="the parts already written are complete and kept: run again "
                         "to resume") from exc
    summary = results.groupby("modality").sum().reindex([m.name for m in chosen]).reset_index()
    summary["seconds"] = round(time.perf_counter() - started, 2)
    summary["table"] = [str(processed_dir(dataset) / "features" / m) for m in summary["modality"]]
    if summary["rows"].sum() == 0:
        raise MmworkError(f"nothing could be extracted from {dataset}: {int(summary['errors'].sum())} item(s) "
                          f"failed and the others had no input; see {processed_dir(dataset) / 'features'}/*_errors")
    if strict and summary["errors"].sum() > 0:
        raise MmworkError(f"{int(summary['errors'].sum())} item(s) failed and --strict was given; "
                          f"see the *_errors tables under {processed_dir(dataset) / 'features'}")
    return summary


def _plan_and_run(dataset, chosen, items_path, n_items, total, chunk_size, refit, scheduler, workers, progress,
                  jobs: list, done: list) -> pd.DataFrame:
    """Prepare each modality, finish here the parts with no work, queue the others in ``jobs`` (the
    finished ones' counts go to ``done``) and run them; one summary row per part."""
    for modality in chosen:
        modality.prepare(items_path, modality.column, data_root() / "models" / dataset, refit=refit)
        out_dir = processed_dir(dataset) / "features" / modality.name
        err_dir = processed_dir(dataset) / "features" / f"{modality.name}_errors"
        fingerprint = modality.fingerprint()
        layouts = _layouts(out_dir)
        size = chunk_size or (layouts[0][0] if layouts else None) or DEFAULT_CHUNK[modality.name]
        if n_items < total:
            _check_limited_run(out_dir, layouts, size, fingerprint)
        schema = pa.schema([("item_id", pa.string()), ("content_hash", pa.string())]
                           + list(modality.columns().items()))
        metadata = {"extractor": f"mmwork.features.{modality.name}", "params": modality.effective_params(),
                    "requested": modality.config.model_dump(), "input_column": modality.column,
                    "chunk_size": size, "fingerprint": fingerprint}
        for folder in (out_dir, err_dir):
            remove_dead_temporaries(folder)  # debris of killed runs; a running writer's file stays
            for stale in folder.glob("part-*.parquet") if n_items == total else []:
                if int(stale.stem.split("-")[1]) >= -(-total // size):  # beyond the catalogue: removed items
                    stale.unlink()
        items = pq.read_table(items_path, columns=["item_id", modality.column]).to_pylist()
        for index in range(-(-n_items // size)):
            start, name = index * size, f"part-{index:05d}.parquet"
            part, errors_part = out_dir / name, err_dir / name
            args = (str(items_path), start, min(start + size, n_items), min(start + size, total), str(part),
                    str(errors_part), fingerprint, schema, metadata)
            if part.exists() or errors_part.exists():  # finished here if no item needs extracting
                result = run_chunk(modality, *args, only_without_work=True, rows=items[start:start + size])
                if result is not None:
                    done.append(result)
                    continue
            jobs.append((_cost(items[start:args[2]], modality.column), modality, args))
    if not jobs and not done:
        raise MmworkError(f"{dataset} has no items")
    return pd.DataFrame(done + (compute(jobs, scheduler, workers, progress) if jobs else []))


def _modality_row_bytes(modality: Modality) -> int:
    """``_row_bytes`` of a modality's feature row; 0 when its columns are not known yet (text before
    its models were fitted)."""
    try:
        return _row_bytes(pa.schema(list(modality.columns().items())))
    except MmworkError:
        return 0


def _row_bytes(schema: pa.Schema) -> int:
    """About how many bytes a feature row takes on disk (fixed-size vectors exactly, ids roughly).

    >>> _row_bytes(pa.schema([("item_id", pa.string()), ("v", pa.list_(pa.float32(), 120))]))
    512
    """
    size = 0
    for field in schema:
        kind = field.type
        if pa.types.is_fixed_size_list(kind) and pa.types.is_primitive(kind.value_type):
            size += kind.list_size * kind.value_type.bit_width // 8
        elif pa.types.is_primitive(kind):
            size += max(kind.bit_width // 8, 1)
        else:
            size += 32
    return size


def _check_limited_run(folder: Path, layouts: list[tuple[int, str]], size: int, fingerprint: str) -> None:
    """A limited run leaves the parts beyond its limit as they are, so they must fit the parts it writes."""
    if any(found != fingerprint for _, found in layouts):
        raise MmworkError(f"{folder} holds features computed with other parameters; run without --limit "
                          "(limit=None) to recompute every item with these, or delete that folder first")
    sizes = {found for found, _ in layouts} - {size}
    if sizes:
        raise MmworkError(f"{folder} is split in parts of chunk size {sizes.pop()}; with --limit, omit "
                          "--chunk-size (or pass the same), or run without --limit to re-split the table")
