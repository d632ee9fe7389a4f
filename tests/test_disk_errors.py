"""A full disk, a read-only data root, a folder we may not write: one line naming the data root (and,
for a full disk, about how much space the step needs), exit status 2, and nothing half-written kept.

The full and read-only disks are real small tmpfs mounts where this runs as root (and may mount);
elsewhere those tests skip, and ENOSPC comes from the kernel's ``/dev/full`` instead."""
import errno
import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from mmwork import MmworkError, datasets, read_table
from mmwork.store import tables as store
from mmwork.cli import main
from mmwork.core.errors import DiskError
from mmwork.store.disk import disk_error, os_errno
from mmwork.store.tables import write_table


@pytest.fixture
def mount_tmpfs():
    """``mount_tmpfs(folder, size="1m", ro=False)``: a real tmpfs of that size on ``folder``, unmounted
    after the test."""
    mounted = []

    def mount(folder: Path, size: str = "1m", ro: bool = False) -> Path:
        if os.geteuid() != 0:
            pytest.skip("a real small tmpfs needs root to mount; the /dev/full tests cover ENOSPC here")
        folder.mkdir(parents=True, exist_ok=True)
        options = f"size={size}" + (",ro" if ro else "")
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip()}); the /dev/full tests cover ENOSPC")
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _fill(folder: Path) -> Path:
    """Write a filler file until the device is full; returns it (delete it to free the space)."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    with open(filler, "ab", buffering=0) as handle:  # the last few bytes a large write could not use
        try:
            while True:
                handle.write(b"\0" * 512)
        except OSError:
            pass
    return filler


def _one_line(err: str) -> str:
    assert err.startswith("mmwork: error: ") and err.strip().count("\n") == 0, err[:2000]
    assert "Traceback" not in err and len(err) < 1000
    return err


# -- the translation at the OS boundary, on any machine ---------------------------------------------

def test_the_kernels_enospc_from_pyarrow_becomes_one_line(data_root, monkeypatch):
    """/dev/full answers every write with ENOSPC: pyarrow's OSError becomes a DiskError naming the data
    root and the table's size; no temporary file is left and the table already there is kept."""
    if not Path("/dev/full").is_char_device():
        pytest.skip("no /dev/full device here")
    path = data_root / "processed" / "mine" / "items.parquet"
    write_table(pd.DataFrame({"item_id": ["a", "b"]}), path)
    real = pq.write_table

    def onto_a_full_device(table, where, **kw):
        Path(where).write_bytes(b"PAR1")  # the temporary file is begun, then the device is full
        # An open file, never the path: on failure pyarrow deletes the path it was given.
        with open("/dev/full", "wb", buffering=0) as device:
            real(table, device, **kw)
    monkeypatch.setattr(store.pq, "write_table", onto_a_full_device)
    with pytest.raises(DiskError) as raised:
        write_table(pd.DataFrame({"item_id": [f"i{n}" for n in range(100_000)]}), path)
    message = str(raised.value)
    assert raised.value.errno == errno.ENOSPC and isinstance(raised.value, MmworkError)
    assert message.startswith(f"no space left on the device holding the data root {data_root} (writing {path})")
    assert re.search(r"; this step needs about 1\.\d MB there: free some space", message) and "\n" not in message
    assert os.listdir(path.parent) == ["items.parquet"], "no temporary file left behind"
    assert read_table(path)["item_id"].tolist() == ["a", "b"], "the old table is intact"


def test_copytree_errors_and_other_errnos_are_named():
    # copytree collects one "[Errno 28] ..." string per file it could not copy: 568 for speech-prompts.
    listing = shutil.Error([(f"/src/{n}.wav", f"/data/raw/x/{n}.wav",
                             f"[Errno 28] No space left on device: '/data/raw/x/{n}.wav'") for n in range(568)])
    assert os_errno(listing) == errno.ENOSPC
    message = str(disk_error(listing, "/data/raw/x", 25_300_000, where="the data root /data"))
    assert message.startswith("no space left on the device holding the data root /data (writing /data/raw/x); "
                              "this step needs about 25 MB there")
    assert len(message) < 300
    denied = str(disk_error(PermissionError(errno.EACCES, "Permission denied", "/data/p"), "/data/p",
                            where="the data root /data"))
    assert denied.startswith("permission denied writing /data/p in the data root /data: make it writable")
    read_only = str(disk_error(OSError(errno.EROFS, "Read-only file system"), "/data/p", where="the data root /data"))
    assert read_only.startswith("the data root /data is on a read-only file system (writing /data/p)")


def test_cli_turns_a_stray_disk_oserror_into_exit_2(monkeypatch, capsys):
    """A write outside the store's own writers (say, a model file) meeting a full disk still gets one line."""
    if not Path("/dev/full").is_char_device():
        pytest.skip("no /dev/full device here")

    def full(*args, **kwargs):
        with open("/dev/full", "wb", buffering=0) as handle:  # ENOSPC from the kernel
            handle.write(b"x")
    monkeypatch.setattr(datasets, "list_datasets", full)
    assert main(["data", "list"]) == 2
    err = _one_line(capsys.readouterr().err)
    assert "no space left on the device holding" in err


# -- real small file systems (root) ---------------------------------------------------------------

def test_data_get_on_a_full_disk(tmp_path, mount_tmpfs, monkeypatch, capsys):
    root = mount_tmpfs(tmp_path / "data", "1m")
    monkeypatch.setenv("MMWORK_DATA", str(root))
    assert main(["data", "get", "speech-prompts"]) == 2
    err = _one_line(capsys.readouterr().err)
    assert f"no space left on the device holding the data root {root}" in err
    needs = float(err.split("this step needs about ")[1].split(" MB")[0])
    assert 20 <= needs <= 30, "the 568 clips take about 25 MB"
    assert os.listdir(root / "raw") == [], "the staging folder is removed, no partial raw copy"


def test_data_get_on_a_read_only_data_root(tmp_path, mount_tmpfs, monkeypatch, capsys):
    root = mount_tmpfs(tmp_path / "data", "1m", ro=True)
    monkeypatch.setenv("MMWORK_DATA", str(root))
    assert main(["data", "get", "speech-prompts"]) == 2
    err = _one_line(capsys.readouterr().err)
    assert f"the data root {root} is on a read-only file system" in err and "MMWORK_DATA" in err


def test_write_table_on_a_read_only_mount_keeps_the_old_table(tmp_path, mount_tmpfs, monkeypatch):
    root = mount_tmpfs(tmp_path / "data", "1m")
    monkeypatch.setenv("MMWORK_DATA", str(root))
    path = write_table(pd.DataFrame({"item_id": ["a"]}), root / "processed" / "mine" / "items.parquet")
    subprocess.run(["mount", "-o", "remount,ro", str(root)], check=True)
    with pytest.raises(DiskError, match="read-only file system") as raised:
        write_table(pd.DataFrame({"item_id": ["b"]}), path)
    assert raised.value.errno == errno.EROFS
    assert read_table(path)["item_id"].tolist() == ["a"]


def test_extract_on_a_full_disk_keeps_what_it_wrote_and_resumes(data_root, mount_tmpfs, capsys):
    datasets.get("speech-prompts")
    features = mount_tmpfs(data_root / "processed" / "speech-prompts" / "features", "256k")
    filler = _fill(features)
    base = ["extract", "speech-prompts", "--modalities", "audio", "--limit", "4", "--chunk-size", "4",
            "--scheduler", "sync", "--no-progress"]
    assert main(base) == 2
    err = _one_line(capsys.readouterr().err)
    assert f"no space left on the device holding the data root {data_root}" in err
    assert re.search(r"this step needs about 0\.0\d MB there", err) and "run again to resume" in err
    leftovers = [p.name for p in features.rglob("*") if p.is_file() and p != filler]
    assert leftovers == [], "no temporary or half-written part"
    filler.unlink()
    assert main(base) == 0
    assert len(read_table("speech-prompts", "features/audio")) == 4


# -- permissions (not root: root ignores them) ------------------------------------------------------

def test_data_get_into_a_folder_we_may_not_write(data_root, capsys):
    (data_root / "raw").mkdir()
    (data_root / "raw").chmod(0o555)
    try:
        try:
            (data_root / "raw" / "probe").touch()
        except PermissionError:
            pass
        else:
            pytest.skip("this user ignores file permissions (root with CAP_DAC_OVERRIDE); the read-only mount "
                        "tests cover it; `setpriv --bounding-set=-dac_override` runs it as root")
        assert main(["data", "get", "speech-prompts"]) == 2
    finally:
        (data_root / "raw").chmod(0o755)
    err = _one_line(capsys.readouterr().err)
    assert f"permission denied writing {data_root / 'raw'}" in err and f"the data root {data_root}" in err
