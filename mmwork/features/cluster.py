"""A reusable local Dask cluster: worker processes that stay warm between commands and notebooks.

``mmwork cluster start`` runs one background process holding a ``distributed.LocalCluster``: the
scheduler and one single-threaded worker process per core. Each worker runs with one BLAS / OpenMP /
numba thread (the parallelism is across processes) and imports and JIT-compiles the audio extractor
once, as it starts. The cluster's address and process id are kept in ``DATA_ROOT/cluster.json``
(written atomically); :func:`mmwork.features.extract` and ``mmwork extract`` use it whenever it runs
and no scheduler is named. :func:`status` says whether it is alive: a cluster whose process died is
noticed, its leftover workers are ended and its state file is removed. :func:`stop` ends it.

>>> status()["running"] in (True, False)
True
>>> info = start(workers=2)      # doctest: +SKIP
>>> address()                    # doctest: +SKIP
'tcp://127.0.0.1:40531'
>>> stop()["running"]            # doctest: +SKIP
False
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from mmwork.core.errors import MmworkError
from mmwork.core.paths import data_root

#: Thread pools each worker process limits to one thread (set before the workers start).
ONE_THREAD = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")
_SERVE = "mmwork.features.cluster"  # the module the background process runs (`python -m mmwork.features.cluster`)


def state_path() -> Path:
    """Where the running cluster's address and process id are kept: ``DATA_ROOT/cluster.json``."""
    return data_root() / "cluster.json"


def _read_state(path: Path | None = None) -> dict | None:
    import json
    try:
        return json.loads((path or state_path()).read_text())
    except (OSError, ValueError):
        return None  # none, or a half-written file from before atomic writes: treated as no cluster


def _ours(pid: int) -> bool:
    """Whether ``pid`` runs this module's server (not a stranger that reused the number)."""
    import psutil
    try:
        return _SERVE in " ".join(psutil.Process(pid).cmdline())
    except (psutil.Error, OSError):
        return False


def _reachable(address: str, timeout: float = 2.0) -> bool:
    host, port = address.removeprefix("tcp://").rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def _clean(state: dict) -> None:
    """End what is left of a dead cluster (its workers, in the process group its server led) and
    remove its state file, unless a newer cluster has written its own there meanwhile."""
    import psutil
    group = state.get("pid")
    for process in psutil.process_iter():
        try:
            if group and process.pid != os.getpid() and os.getpgid(process.pid) == group:
                process.kill()
        except (psutil.Error, OSError):
            continue
    current = _read_state()
    if current is not None and current.get("pid") == group:
        state_path().unlink(missing_ok=True)


def status() -> dict:
    """``running`` (bool) and, when it runs, ``address``, ``pid``, ``workers``, ``started``, ``log``;
    a cluster found dead is cleaned up, and ``cleaned`` says so."""
    state = _read_state()
    if state is None:
        return {"running": False}
    if _ours(state.get("pid", -1)) and _reachable(state.get("address", "")):
        return {"running": True} | state
    _clean(state)
    return {"running": False, "cleaned": f"the cluster of pid {state.get('pid')} had died; its state was removed"}


def address() -> str | None:
    """The running cluster's scheduler address, or None when none runs."""
    return status().get("address")


def start(workers: int | None = None, timeout: float = 180.0) -> dict:
    """Start the cluster in the background (one worker process per core unless ``workers``) and
    return its :func:`status` once its workers are up and warm; an already running one is returned
    as it is."""
    from filelock import FileLock
    if workers is not None and workers < 1:
        raise MmworkError(f"workers must be >= 1, got {workers}")
    root = data_root()
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(root / ".cluster.lock", timeout=timeout):
        current = status()
        if current["running"]:
            return current | {"note": "already running"}
        log = root / "cluster.log"
        command = [sys.executable, "-m", _SERVE, "--workers", str(workers or os.cpu_count() or 1),
                   "--state", str(state_path()), "--log", str(log)]
        with open(log, "w") as handle:
            server = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
                                      start_new_session=True,  # outlives this command; its own process group
                                      env=os.environ | {name: "1" for name in ONE_THREAD})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = _read_state()
            if state is not None and state.get("pid") == server.pid:
                return status()
            if server.poll() is not None:
                tail = log.read_text()[-600:].strip().replace("\n", " | ")
                raise MmworkError(f"the cluster failed to start (exit {server.returncode}); its log {log} ends: {tail}")
            time.sleep(0.2)
        os.killpg(server.pid, signal.SIGKILL)
        raise MmworkError(f"the cluster did not come up within {timeout:.0f} s; see {log}")


def stop(timeout: float = 60.0) -> dict:
    """End the running cluster (its server closes the workers); returns :func:`status` afterwards."""
    import psutil
    state = _read_state()
    if state is None or not _ours(state.get("pid", -1)):
        return status()
    pid = state["pid"]
    try:
        server = psutil.Process(pid)
        server.terminate()
        server.wait(timeout)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        server.kill()
    _clean(state)  # workers that outlived their server, and the state file
    return status()


def dask_setup(worker) -> None:
    """``distributed``'s preload hook, run in each worker process of the cluster as it starts: one
    thread per library, and the audio extractor's imports and JIT paid before the first task."""
    from mmwork.features.workers import limit_threads, setup_worker
    limit_threads()
    setup_worker("audio")


def _serve(workers: int, state: Path, log: Path) -> None:
    """The background process: hold a LocalCluster until SIGTERM/SIGINT, then close it."""
    import dask
    from distributed import LocalCluster
    from mmwork.store.tables import write_json

    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    # The workers' statistical profiler samples the compute thread's stack every 10 ms; on librosa's
    # deep Python stacks that costs CPU and GIL hand-offs the extraction needs (the dashboard's
    # profile page stays empty, which is all it gives).
    dask.config.set({"distributed.worker.preload": [_SERVE], "distributed.worker.profile.enabled": False})
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        write_json(state, {"address": cluster.scheduler_address, "pid": os.getpid(), "workers": workers,
                           "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "log": str(log)})
        print(f"cluster at {cluster.scheduler_address} with {workers} worker(s)", flush=True)
        while not stopping.wait(1.0):
            pass
        print("stopping", flush=True)
    current = _read_state(state)
    if current is not None and current.get("pid") == os.getpid():
        state.unlink(missing_ok=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="the background process of `mmwork cluster start`")
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--log", type=Path, required=True)
    args = parser.parse_args()
    _serve(args.workers, args.state, args.log)
