"""Where extraction tasks run: Dask's local scheduler over worker processes forked after the extractor was
warmed once (or threads, or this process alone), or a ``distributed`` cluster by address, largest
chunk first, with a progress bar.

>>> resolve_scheduler("threads")
'threads'
"""
from __future__ import annotations

import os
import sys
import uuid
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from mmwork.core.errors import MmworkError
from mmwork.features.chunks import run_chunk
from mmwork.features.modalities import Modality
from mmwork.features.workers import process_context

LOCAL_SCHEDULERS = ("processes", "threads", "sync", "synchronous")
_MODALITIES: dict[str, Modality] = {}  # this run's modalities in a local worker process (see _install)


def _install(modalities: dict[str, Modality]) -> None:
    """A local worker process's initializer: this run's modalities, sent once rather than with every
    task (a text modality carries its fitted models)."""
    _MODALITIES.update(modalities)


def _run_installed(name: str, *args) -> dict:
    return run_chunk(_MODALITIES[name], *args)


def resolve_scheduler(scheduler: str | None) -> str:
    """``scheduler``, or where work runs when it is None: ``$DASK_SCHEDULER_ADDRESS``, the running
    ``mmwork cluster``, else ``"processes"``."""
    if scheduler is not None:
        return scheduler
    from mmwork.features.cluster import address
    return os.environ.get("DASK_SCHEDULER_ADDRESS") or address() or "processes"


def compute(jobs: list[tuple[int, Modality, tuple]], scheduler: str | None, workers: int | None,
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
