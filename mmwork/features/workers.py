"""How a worker process is set up for extraction (locally forked, or on a Dask cluster), and where Dask
computes: one BLAS/torch thread per worker, relaxed malloc trimming, a warm audio extractor, and a
client for a scheduler address.

>>> from mmwork.features.workers import dask_client
>>> with dask_client(None):     # no address: Dask computes here
...     pass
"""
from __future__ import annotations

import contextlib
import multiprocessing
import sys

from mmwork.core.errors import MmworkError

_READY: set[str] = set()


def setup_worker(modality: str) -> None:
    """Once per worker process: one BLAS/torch thread (the parallelism is across processes) and a
    warm-up so numba's JIT compile is not paid inside the first chunk."""
    if modality in _READY:
        return
    _READY.add(modality)
    if multiprocessing.current_process().name != "MainProcess" or in_distributed_worker():
        limit_threads(torch_too="torch" in sys.modules or modality != "audio")
    if modality == "audio":
        from mmwork.features.audio import warm_up
        warm_up()


def limit_threads(torch_too: bool = False) -> None:
    """One BLAS/OpenMP (and torch) thread in this worker process, and glibc's malloc thresholds
    relaxed (see :func:`relax_malloc_trim`). A BLAS thread count also changes float summation order:
    one thread everywhere keeps results bit-identical whichever scheduler computed them."""
    from threadpoolctl import threadpool_limits
    threadpool_limits(1)
    relax_malloc_trim()
    if torch_too:
        import torch
        torch.set_num_threads(1)


def relax_malloc_trim() -> None:
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


def in_distributed_worker() -> bool:
    try:
        from distributed import get_worker
        get_worker()
        return True
    except (ImportError, ValueError):
        return False


def process_context():
    """Fork where it is safe (Linux): the workers start with this process's imports and warmed
    extractor, in milliseconds. Elsewhere spawn, and each worker warms itself once."""
    return multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")


def dask_client(scheduler: str | None):
    """A context that makes Dask compute on ``scheduler`` (an address), or locally when None."""
    if scheduler is None:
        return contextlib.nullcontext()
    from distributed import Client
    try:
        return Client(scheduler, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise MmworkError(f"cannot reach the Dask scheduler at {scheduler} ({exc})") from exc
