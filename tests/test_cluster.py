"""`mmwork cluster`: a real local Dask cluster started in the background, found by `extract`,
cleaned up when its process dies, and stopped."""
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import psutil
import pytest

from mmwork import datasets, read_table
from mmwork.features import cluster
from mmwork.features import extract


@pytest.fixture
def root(data_root):
    """A private data root with speech-prompts; skipped where this machine cannot spawn processes."""
    try:
        subprocess.run([sys.executable, "-c", "pass"], check=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot spawn processes here ({exc})")
    datasets.get("speech-prompts")
    yield data_root
    cluster.stop()  # whatever a failed test left running


def _group(pid: int) -> list[int]:
    """The live processes of the process group the cluster's server leads (server and workers)."""
    alive = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pid and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process.pid)
        except (psutil.Error, OSError):
            continue
    return alive


def _gone(pid: int, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while _group(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    return not _group(pid)


def test_start_extract_on_it_then_stop(root):
    assert cluster.status() == {"running": False}
    info = cluster.start(workers=1)
    assert info["running"] and info["workers"] == 1 and info["address"].startswith("tcp://127.0.0.1:")
    assert (root / "cluster.json").is_file() and cluster.address() == info["address"]
    assert cluster.start()["pid"] == info["pid"], "a second start reuses the running cluster"
    # scheduler=None: extract finds the running cluster and its warm worker computes the chunks
    summary = extract("speech-prompts", "audio", limit=24, chunk_size=8, progress=False)
    assert summary[["rows", "extracted"]].values.tolist() == [[24, 24]]
    from distributed import Client
    with Client(info["address"], timeout="30s") as client:
        log = client.run_on_scheduler(lambda dask_scheduler: [str(t[0]) for t in dask_scheduler.transition_log])
    assert sum(key.startswith("extract-audio-part-") for key in set(log)) == 3
    on_cluster = read_table("speech-prompts", "features/audio")
    features = root / "processed" / "speech-prompts" / "features"
    import shutil
    shutil.rmtree(features)
    extract("speech-prompts", "audio", scheduler="sync", limit=24, chunk_size=8, progress=False)
    pd.testing.assert_frame_equal(on_cluster, read_table("speech-prompts", "features/audio"))  # same bits
    out = subprocess.run([sys.executable, "-m", "mmwork", "cluster", "status"], capture_output=True, text=True)
    assert out.returncode == 0 and f"running at {info['address']}" in out.stdout
    out = subprocess.run([sys.executable, "-m", "mmwork", "cluster", "stop"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "not running"
    assert _gone(info["pid"]), "stop ends the server and its workers"
    assert not (root / "cluster.json").exists() and cluster.address() is None


def test_a_dead_cluster_is_noticed_and_cleaned(root):
    info = cluster.start(workers=1)
    workers = [pid for pid in _group(info["pid"]) if pid != info["pid"]]
    assert workers, "the worker runs in the server's process group"
    os.kill(info["pid"], signal.SIGKILL)
    psutil.Process(info["pid"]).wait(30)
    state = cluster.status()
    assert state["running"] is False and "had died" in state["cleaned"]
    assert not (root / "cluster.json").exists()
    assert _gone(info["pid"]), "the dead server's workers are ended too"
    summary = extract("speech-prompts", "audio", limit=8, progress=False)  # falls back to local processes
    assert summary["rows"].item() == 8


def test_status_without_a_cluster(root):
    out = subprocess.run([sys.executable, "-m", "mmwork", "cluster", "status", "--json"], capture_output=True,
                         text=True)
    assert out.returncode == 0 and '"running": false' in out.stdout
    (root / "cluster.json").write_text('{"address": "tcp://127.0.0.1:1", "pid": 999999999}')  # a stale file
    assert cluster.status()["running"] is False and not (root / "cluster.json").exists()
    with pytest.raises(cluster.MmworkError, match="workers must be >= 1"):
        cluster.start(workers=0)
