"""The Dask graph that turns a data set's ``items`` into feature tables, incrementally and with
per-item fault isolation.

Layout: ``data/processed/DATASET/features/MODALITY/part-NNNNN.parquet`` (one part per chunk of
items, in items order) and ``features/MODALITY_errors/part-NNNNN.parquet`` (item_id, stage,
error_type, message). Each chunk is one task: it reads only its rows of the items table, hashes
each item's input content together with the extractor fingerprint, reuses the previous part's row
of the same item with the same hash, extracts the rest, and replaces its part atomically, and only
if a row changed. A run killed at any point therefore resumes where it stopped, and the finished
table equals an uninterrupted run's.

>>> from mmwork.features import extract
>>> summary = extract("speech-prompts", ["audio"], scheduler="processes", workers=2)  # doctest: +SKIP
>>> summary[["modality", "rows", "extracted", "reused", "errors"]]                  # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mmwork.errors import MmworkError
from mmwork.features.modalities import MODALITIES, Modality
from mmwork.paths import data_root, processed_dir
from mmwork.store import METADATA_KEY, read_rows, remove_dead_temporaries, table_metadata, table_path, write_table

LOCAL_SCHEDULERS = ("processes", "threads", "sync", "synchronous")
DEFAULT_CHUNK = {"audio": 16, "image": 512, "text": 2048}
ERRORS_SCHEMA = pa.schema([("item_id", pa.string()), ("stage", pa.string()), ("error_type", pa.string()),
                           ("message", pa.string())])
_WORKER_READY: set[str] = set()


def _setup_worker(modality: str) -> None:
    """Once per worker process: one BLAS/torch thread (the parallelism is across processes) and a
    warm-up so numba's JIT compile is not paid inside the first chunk."""
    if modality in _WORKER_READY:
        return
    _WORKER_READY.add(modality)
    if multiprocessing.current_process().name != "MainProcess" or _in_distributed_worker():
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)
        _relax_malloc_trim()
        if "torch" in sys.modules or modality != "audio":
            import torch
            torch.set_num_threads(1)
    if modality == "audio":
        from mmwork.features.audio import warm_up
        warm_up()


def _relax_malloc_trim() -> None:
    """dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536; a fixed trim threshold also
    freezes glibc's mmap threshold at 128 KiB, so every numpy temporary above that is a fresh mmap and
    librosa features run up to 2x slower. Set a 128 MiB trim and a 32 MiB mmap threshold in this
    process (memory still goes back to the OS, in larger steps)."""
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-1, 128 * 2**20)  # M_TRIM_THRESHOLD
        libc.mallopt(-3, 32 * 2**20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass  # not glibc: nothing to relax


def _in_distributed_worker() -> bool:
    try:
        from distributed import get_worker
        get_worker()
        return True
    except (ImportError, ValueError):
        return False


def _content_hash(raw: bytes, fingerprint: str) -> str:
    return hashlib.sha256(raw + fingerprint.encode()).hexdigest()[:24]


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _error(item_id: str, stage: str, exc: BaseException) -> dict:
    """An errors-table row. Object addresses (``<_io.BytesIO object at 0x7f...>``) are dropped from the
    message, so the same bad input gives the same row in every run."""
    message = _ADDRESS.sub("", str(exc) or repr(exc))[:500]
    return {"item_id": item_id, "stage": stage, "error_type": type(exc).__name__, "message": message}


def _previous(path: str, metadata: dict) -> tuple[list[dict], bool]:
    """The rows an earlier run wrote to ``path`` (none if missing or unreadable: then it is rebuilt),
    and whether it recorded the same extractor metadata (fingerprint, parameters, chunk size)."""
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError):
        return [], False
    meta = json.loads((table.schema.metadata or {}).get(METADATA_KEY, b"{}"))
    return table.to_pylist(), meta.get("params") == metadata


def run_chunk(modality: Modality, items_path: str, start: int, stop: int, end: int, part: str, errors_part: str,
              fingerprint: str, schema: pa.Schema, metadata: dict) -> dict:
    """Extract items ``[start, stop)`` into ``part`` and ``errors_part``; items ``[stop, end)`` of the same
    part lie beyond this run's limit and keep what they had. A file whose rows would not change is not
    rewritten. Returns counts for items ``[start, stop)`` only."""
    rows = read_rows(items_path, ["item_id", modality.column], start, end).to_pylist()
    old, same = _previous(part, metadata)
    old_errors, same_errors = _previous(errors_part, metadata)
    old_row = {r["item_id"]: r for r in old}
    old_error = {e["item_id"]: e for e in old_errors}
    output: list[dict | None] = [None] * len(rows)
    errors: list[dict | None] = [None] * len(rows)
    todo = []
    for position, row in enumerate(rows):
        item_id, value = row["item_id"], row[modality.column]
        if start + position >= stop:  # beyond this run's limit: left as it was
            output[position], errors[position] = old_row.get(item_id), old_error.get(item_id)
        elif value is not None:  # None: the item has no input for this modality, which is not an error
            try:
                raw = modality.read(value)
            except Exception as exc:  # noqa: BLE001 - a missing/unreadable file is this item's error only
                errors[position] = _error(item_id, "read", exc)
                continue
            key = _content_hash(raw, fingerprint)
            if old_row.get(item_id, {}).get("content_hash") == key:
                output[position] = old_row[item_id]
            else:
                todo.append((position, key, raw))
    if todo:
        _setup_worker(modality.name)  # paid only by a chunk with work: a no-op rerun skips the warm-up
    for (position, key, _), (features, failure) in zip(todo, modality.extract([t[2] for t in todo])):
        item_id = rows[position]["item_id"]
        if failure is None:
            output[position] = {"item_id": item_id, "content_hash": key, **features}
        else:
            errors[position] = _error(item_id, *failure)
    kept, failed = [r for r in output if r is not None], [e for e in errors if e is not None]
    keys = [(r["item_id"], r["content_hash"]) for r in kept]
    if not (same and keys == [(r["item_id"], r["content_hash"]) for r in old]):
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


def _compute(tasks: list, scheduler: str | None, workers: int | None, progress: bool) -> list[dict]:
    """Run the delayed tasks on a local scheduler or a ``distributed`` cluster, with a progress bar."""
    import dask
    if progress:
        from tqdm.auto import tqdm
    else:
        from tqdm import tqdm  # tqdm.auto warns in notebooks without ipywidgets, even when disabled
    if scheduler is None:
        scheduler = os.environ.get("DASK_SCHEDULER_ADDRESS") or "processes"
    if scheduler in LOCAL_SCHEDULERS:
        from dask.callbacks import Callback
        bar = tqdm(total=len(tasks), desc="extract", unit="chunk", disable=not progress)

        class _Progress(Callback):
            def _posttask(self, key, result, dsk, state, worker_id):
                if isinstance(result, dict) and "modality" in result:
                    bar.update(1)

        from threadpoolctl import threadpool_limits
        # One BLAS thread, as in worker processes: a BLAS thread count changes float summation order,
        # and the same item must give the same bits whichever scheduler computed it.
        with _Progress(), threadpool_limits(1):
            results = dask.compute(*tasks, scheduler=scheduler, num_workers=workers or os.cpu_count())
        bar.close()
        return list(results)
    from distributed import Client, as_completed
    try:
        client = Client(scheduler, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise MmworkError(f"cannot reach the Dask scheduler at {scheduler} ({exc}); is `dask scheduler` running?") from exc
    with client:
        if progress:
            print(f"dask dashboard: {client.dashboard_link}", file=sys.stderr)
        futures = client.compute(tasks)
        results = []
        for future in tqdm(as_completed(futures), total=len(futures), desc="extract", unit="chunk", disable=not progress):
            results.append(future.result())
        return results


def extract(dataset: str, modalities: list[str] | str | None = None, *, scheduler: str | None = None,
            workers: int | None = None, chunk_size: int | None = None, limit: int | None = None,
            params: dict[str, dict] | None = None, refit: bool = False, strict: bool = False,
            progress: bool | None = None) -> pd.DataFrame:
    """Extract the feature tables of ``dataset``; returns one summary row per modality (rows, extracted,
    reused and errors count the items this run covered).

    modalities: ``"text"``, ``"image"``, ``"audio"`` (default: every one whose input column the items
    have). scheduler: ``"processes"`` (default), ``"threads"``, ``"sync"``, or a ``distributed``
    address such as ``tcp://10.0.0.5:8786`` (also read from ``DASK_SCHEDULER_ADDRESS``); a cluster's
    workers must see the same file system. params: per-modality extractor parameters, e.g.
    ``{"audio": {"n_mfcc": 13}}`` (see ``AudioConfig``, ``ImageConfig``, ``TextConfig``). chunk_size:
    items per part (default: the existing table's, else 16 audio, 512 image, 2048 text). limit: cover
    only the first N items of the catalogue in this run (a quick look); the table's other rows stay as
    they are. strict: raise if any item failed.
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

    import dask
    tasks = []
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
        shared = dask.delayed(modality, pure=True)  # one copy per worker, not one per task
        for index in range(-(-n_items // size)):
            start = index * size
            tasks.append(dask.delayed(run_chunk, pure=False)(
                shared, str(items_path), start, min(start + size, n_items), min(start + size, total),
                str(out_dir / f"part-{index:05d}.parquet"), str(err_dir / f"part-{index:05d}.parquet"),
                fingerprint, schema, metadata, dask_key_name=f"extract-{modality.name}-{index:05d}"))
        for folder in (out_dir, err_dir):
            remove_dead_temporaries(folder)  # debris of killed runs; a running writer's file stays
            for stale in folder.glob("part-*.parquet") if n_items == total else []:
                if int(stale.stem.split("-")[1]) >= -(-total // size):  # beyond the catalogue: removed items
                    stale.unlink()
    if not tasks:
        raise MmworkError(f"{dataset} has no items")
    results = pd.DataFrame(_compute(tasks, scheduler, workers, progress))
    summary = results.groupby("modality", sort=False).sum().reset_index()
    summary["seconds"] = round(time.perf_counter() - started, 2)
    summary["table"] = [str(processed_dir(dataset) / "features" / m) for m in summary["modality"]]
    if summary["rows"].sum() == 0:
        raise MmworkError(f"nothing could be extracted from {dataset}: {int(summary['errors'].sum())} item(s) "
                          f"failed and the others had no input; see {processed_dir(dataset) / 'features'}/*_errors")
    if strict and summary["errors"].sum() > 0:
        raise MmworkError(f"{int(summary['errors'].sum())} item(s) failed and --strict was given; "
                          f"see the *_errors tables under {processed_dir(dataset) / 'features'}")
    return summary


def _check_limited_run(folder: Path, layouts: list[tuple[int, str]], size: int, fingerprint: str) -> None:
    """A limited run leaves the parts beyond its limit as they are, so they must fit the parts it writes."""
    if any(found != fingerprint for _, found in layouts):
        raise MmworkError(f"{folder} holds features computed with other parameters; run without --limit "
                          "(limit=None) to recompute every item with these, or delete that folder first")
    sizes = {found for found, _ in layouts} - {size}
    if sizes:
        raise MmworkError(f"{folder} is split in parts of chunk size {sizes.pop()}; with --limit, omit "
                          "--chunk-size (or pass the same), or run without --limit to re-split the table")
