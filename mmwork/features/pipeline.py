"""The Dask graph that turns a data set's ``items`` into feature tables, incrementally and with
per-item fault isolation.

Layout: ``data/processed/DATASET/features/MODALITY/part-NNNNN.parquet`` (one part per chunk of
items, in items order) and ``features/MODALITY_errors/part-NNNNN.parquet`` (item_id, stage,
error_type, message). Each chunk is one task: it reads only its rows of the items table, hashes
each item's input content together with the extractor fingerprint, reuses the rows of the previous
part whose hash is unchanged, extracts the rest, and replaces its part atomically. A run killed at
any point therefore resumes where it stopped, and the finished table equals an uninterrupted run's.

>>> from mmwork.features import extract
>>> summary = extract("speech-prompts", ["audio"], scheduler="processes", workers=2)  # doctest: +SKIP
>>> summary[["modality", "rows", "extracted", "reused", "errors"]]                  # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import multiprocessing
import os
import sys
import time

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mmwork.errors import MmworkError
from mmwork.features.modalities import MODALITIES, Modality
from mmwork.paths import data_root, processed_dir
from mmwork.store import read_rows, table_path, write_table

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


def run_chunk(modality: Modality, items_path: str, start: int, stop: int, part: str, errors_part: str,
              fingerprint: str, schema: pa.Schema, metadata: dict) -> dict:
    """Extract items ``[start, stop)`` into ``part`` and ``errors_part``; return counts only."""
    _setup_worker(modality.name)
    rows = read_rows(items_path, ["item_id", modality.column], start, stop).to_pylist()
    previous = {}
    if os.path.exists(part):
        try:
            old = pq.read_table(part)
            previous = {r["content_hash"]: r for r in old.to_pylist()}
        except (pa.ArrowInvalid, OSError):
            previous = {}  # an unreadable part is simply rebuilt
    output: list[dict | None] = [None] * len(rows)
    errors, todo = [], []
    for position, row in enumerate(rows):
        if row[modality.column] is None:
            continue  # the item has no input for this modality: nothing to extract, not an error
        try:
            raw = modality.read(row[modality.column])
        except Exception as exc:  # noqa: BLE001 - a missing/unreadable file is this item's error only
            errors.append({"item_id": row["item_id"], "stage": "read", "error_type": type(exc).__name__,
                           "message": str(exc)[:500]})
            continue
        key = _content_hash(raw, fingerprint)
        hit = previous.get(key)
        if hit is not None and hit["item_id"] == row["item_id"]:
            output[position] = hit
        else:
            todo.append((position, row["item_id"], key, raw))
    for (position, item_id, key, _), (features, failure) in zip(todo, modality.extract([t[3] for t in todo])):
        if failure is not None:
            stage, exc = failure
            errors.append({"item_id": item_id, "stage": stage, "error_type": type(exc).__name__,
                           "message": str(exc)[:500] or repr(exc)})
        else:
            output[position] = {"item_id": item_id, "content_hash": key, **features}
    kept = [r for r in output if r is not None]
    reused = len(kept) - (len(todo) - len(errors) + sum(1 for e in errors if e["stage"] == "read"))
    table = pa.Table.from_pylist(kept, schema=schema) if kept else schema.empty_table()
    write_table(table, part, schema=schema, producer=f"mmwork.features.{modality.name}", params=metadata,
                input_hash=fingerprint)
    if errors:
        write_table(pa.Table.from_pylist(errors, schema=ERRORS_SCHEMA), errors_part, schema=ERRORS_SCHEMA,
                    producer=f"mmwork.features.{modality.name}", params=metadata, input_hash=fingerprint)
    elif os.path.exists(errors_part):
        os.remove(errors_part)
    return {"modality": modality.name, "rows": len(kept), "errors": len(errors),
            "extracted": len(todo) - sum(1 for e in errors if e["stage"] != "read"), "reused": max(reused, 0)}


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
    """Extract the feature tables of ``dataset``; returns one summary row per modality.

    modalities: ``"text"``, ``"image"``, ``"audio"`` (default: every one whose input column the items
    have). scheduler: ``"processes"`` (default), ``"threads"``, ``"sync"``, or a ``distributed``
    address such as ``tcp://10.0.0.5:8786`` (also read from ``DASK_SCHEDULER_ADDRESS``); a cluster's
    workers must see the same file system. params: per-modality extractor parameters, e.g.
    ``{"audio": {"n_mfcc": 13}}``. limit: only the first N items (a quick look). strict: raise if any
    item failed.
    """
    started = time.perf_counter()
    items_path = table_path(dataset, "items")
    if not items_path.is_file():
        raise MmworkError(f"data set {dataset!r} has no items table; run `mmwork data get {dataset}` first")
    columns = pq.read_schema(items_path).names
    total = pq.ParquetFile(items_path).metadata.num_rows
    n_items = min(total, limit) if limit is not None else total
    if isinstance(modalities, str):
        modalities = [m.strip() for m in modalities.split(",") if m.strip()]
    params = params or {}
    unknown = set(modalities or []) - set(MODALITIES) | set(params) - set(MODALITIES)
    if unknown:
        raise MmworkError(f"unknown modality {sorted(unknown)}; choose from {sorted(MODALITIES)}")
    chosen: list[Modality] = []
    for name, cls in MODALITIES.items():
        if modalities is not None and name not in modalities:
            continue
        modality = cls(**params.get(name, {}))
        modality.column = modality.input_column(columns)
        if modality.column is None:
            if modalities is not None:
                raise MmworkError(f"{dataset} items have no {name} input column (looked for "
                                  f"{', '.join(cls.input_columns)}); its columns are {columns}")
            continue
        chosen.append(modality)
    if not chosen:
        raise MmworkError(f"{dataset} items have no text, image or audio column to extract from")
    if chunk_size is not None and chunk_size < 1:
        raise MmworkError("chunk_size must be >= 1")
    if workers is not None and workers < 1:
        raise MmworkError("workers must be >= 1")
    progress = sys.stderr.isatty() if progress is None else progress

    import dask
    tasks = []
    for modality in chosen:
        modality.prepare(items_path, modality.column, data_root() / "models" / dataset, refit=refit)
        out_dir = processed_dir(dataset) / "features" / modality.name
        err_dir = processed_dir(dataset) / "features" / f"{modality.name}_errors"
        size = chunk_size or DEFAULT_CHUNK[modality.name]
        n_chunks = -(-n_items // size)
        fingerprint = modality.fingerprint()
        schema = pa.schema([("item_id", pa.string()), ("content_hash", pa.string())]
                           + list(modality.columns().items()))
        metadata = {"extractor": f"mmwork.features.{modality.name}", "params": modality.params,
                    "input_column": modality.column, "chunk_size": size, "fingerprint": fingerprint}
        shared = dask.delayed(modality, pure=True)  # one copy per worker, not one per task
        for index in range(n_chunks):
            tasks.append(dask.delayed(run_chunk, pure=False)(
                shared, str(items_path), index * size, min((index + 1) * size, n_items),
                str(out_dir / f"part-{index:05d}.parquet"), str(err_dir / f"part-{index:05d}.parquet"),
                fingerprint, schema, metadata, dask_key_name=f"extract-{modality.name}-{index:05d}"))
        for folder in (out_dir, err_dir):  # parts beyond the catalogue's end belong to removed items
            for stale in folder.glob("part-*.parquet") if folder.exists() else []:
                if int(stale.stem.split("-")[1]) >= n_chunks:
                    stale.unlink()
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
