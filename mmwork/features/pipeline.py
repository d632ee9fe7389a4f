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

import hashlib
import json
import os
import re
import sys
import time
import uuid
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mmwork.core.errors import DiskError, MmworkError
from mmwork.features.modalities import MODALITIES, Modality
from mmwork.features.workers import process_context, setup_worker
from mmwork.core.paths import data_root, processed_dir
from mmwork.store.disk import DISK_ERRNOS, disk_error, os_errno
from mmwork.store.tables import METADATA_KEY, read_rows, remove_dead_temporaries, table_metadata, table_path, write_table

LOCAL_SCHEDULERS = ("processes", "threads", "sync", "synchronous")
DEFAULT_CHUNK = {"audio": 16, "image": 512, "text": 2048}
ERRORS_SCHEMA = pa.schema([("item_id", pa.string()), ("stage", pa.string()), ("error_type", pa.string()),
                           ("message", pa.string()), ("content_hash", pa.string())])
_MODALITIES: dict[str, Modality] = {}  # this run's modalities in a local worker process (see _install)


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


def _install(modalities: dict[str, Modality]) -> None:
    """A local worker process's initializer: this run's modalities, sent once rather than with every
    task (a text modality carries its fitted models)."""
    _MODALITIES.update(modalities)


def _run_installed(name: str, *args) -> dict:
    return run_chunk(_MODALITIES[name], *args)


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


def resolve_scheduler(scheduler: str | None) -> str:
    """``scheduler``, or where work runs when it is None: ``$DASK_SCHEDULER_ADDRESS``, the running
    ``mmwork cluster``, else ``"processes"``."""
    if scheduler is not None:
        return scheduler
    from mmwork.features.cluster import address
    return os.environ.get("DASK_SCHEDULER_ADDRESS") or address() or "processes"


def _compute(jobs: list[tuple[int, Modality, tuple]], scheduler: str | None, workers: int | None,
             progress: bool) -> list[dict]:
    """Run ``(cost, modality, run_chunk arguments)`` jobs, largest cost first, with a progress bar."""
    if progress:
        from tqdm.auto import tqdm
    else:
        from tqdm import (
            tqdm,  # tqdm.auto warns in notebooks without ipywidgets, even when disabled
        )
    jobs = sorted(jobs, key=lambda job: -job[0])
    scheduler = resolve_scheduler(scheduler)
    with tqdm(total=len(jobs), desc="extract", unit="chunk", disable=not progress) as bar:
        if scheduler not in LOCAL_SCHEDULERS:
            return _compute_on_cluster(jobs, scheduler, bar, progress)
        return _compute_locally(jobs, scheduler, workers, bar)


def _compute_locally(jobs: list, scheduler: str, workers: int | None, bar) -> list[dict]:
    """One Dask task per job on Dask's local scheduler, over our own pool: on Linux, worker processes
    forked after the extractor was warmed here once (imports, numba JIT) and given this run's
    modalities once, rather than with every task."""
    import dask
    from dask.callbacks import Callback
    from threadpoolctl import threadpool_limits

    class Progress(Callback):
        def _posttask(self, key, result, dsk, state, worker_id):
            bar.update()

    workers = min(workers or os.cpu_count() or 1, len(jobs))
    if scheduler in ("sync", "synchronous") or workers == 1:
        scheduler, executor = "sync", None
    elif scheduler == "threads":
        executor = ThreadPoolExecutor(workers)
    else:
        modalities = {modality.name: modality for _, modality, _ in jobs}
        context = process_context()
        if context.get_start_method() == "fork":
            for name in modalities:
                _warm(name)  # once here, inherited by every worker
        executor = ProcessPoolExecutor(workers, mp_context=context, initializer=_install, initargs=(modalities,))
    in_processes = isinstance(executor, ProcessPoolExecutor)
    # Dask's local scheduler starts independent tasks from the highest key down: the largest job gets it
    tasks = [dask.delayed(_run_installed if in_processes else run_chunk, pure=False)(
        modality.name if in_processes else modality, *args,
        dask_key_name=f"extract-{modality.name}-{len(jobs) - rank:05d}")
        for rank, (_, modality, args) in enumerate(jobs)]
    try:
        # One BLAS thread, as in worker processes: the same item gives the same bits on any scheduler.
        with threadpool_limits(1), Progress():
            # chunksize 1: Dask's process scheduler would otherwise hand tasks out six at a time, and the
            # last few batches would leave a worker idle
            return list(dask.compute(*tasks, scheduler=scheduler, pool=executor, optimize_graph=False, chunksize=1))
    except BrokenProcessPool as exc:
        raise MmworkError(f"a worker process died ({exc}); the parts already written are kept: run "
                          "again to resume, or with --scheduler sync to see the failing item") from exc
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


def _warm(modality: str) -> None:
    """Pay a modality's imports and JIT compilation in this process, before workers are forked."""
    if modality == "audio":
        from mmwork.features.audio import warm_up
        warm_up()


def _compute_on_cluster(jobs: list, scheduler: str, bar, progress: bool) -> list[dict]:
    from distributed import Client, as_completed
    try:
        client = Client(scheduler, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise MmworkError(f"cannot reach the Dask scheduler at {scheduler} ({exc}); is it running? "
                          "(`mmwork cluster status`)") from exc
    with client:
        if progress:
            print(f"dask dashboard: {client.dashboard_link}", file=sys.stderr)
        shared = {modality.name: client.scatter(modality, broadcast=True, hash=False)  # one copy per worker
                  for _, modality, _ in jobs}
        run = uuid.uuid4().hex[:8]  # keys unique to this run: other clients may share the cluster
        futures = [client.submit(run_chunk, shared[modality.name], *args, pure=False, priority=len(jobs) - rank,
                                 key=f"extract-{modality.name}-{Path(args[4]).stem}-{run}")
                   for rank, (_, modality, args) in enumerate(jobs)]
        results = []
        for future in as_completed(futures):
            results.append(future.result())
            bar.update()
        return results


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
    return pd.DataFrame(done + (_compute(jobs, scheduler, workers, progress) if jobs else []))


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
