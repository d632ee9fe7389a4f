"""Disk errors as one clear line: a full disk, a quota, no permission or a read-only mount under the data
root (or the download cache) becomes a :class:`DiskError` that says how much room is needed and what
to do, and nothing partial is kept.

>>> import errno
>>> os_errno(OSError(errno.ENOSPC, "No space left on device"))
28
>>> megabytes(3_000_000)
'3.0 MB'
"""
from __future__ import annotations

import errno
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path

from mmwork.core.errors import DiskError, MmworkError
from mmwork.core.paths import data_root

_FULL = (errno.ENOSPC, errno.EDQUOT)
_DENIED = (errno.EACCES, errno.EPERM)
DISK_ERRNOS = frozenset(_FULL + _DENIED + (errno.EROFS,))


def os_errno(exc: BaseException) -> int | None:
    """The errno behind ``exc``: an OSError's (or a DiskError's) own, one named in its message (pyarrow's
    ``[errno 28]``), or the first that a ``shutil.Error`` lists (``copytree`` collects one message per file).

    >>> os_errno(OSError(errno.ENOSPC, "No space left on device"))
    28
    >>> os_errno(shutil.Error([("a.wav", "b.wav", "[Errno 28] No space left on device: 'b.wav'")]))
    28
    >>> os_errno(ValueError("x")) is None
    True
    """
    if isinstance(exc, DiskError):
        return exc.errno
    if isinstance(exc, shutil.Error):
        texts = [str(entry[-1]) for entry in (exc.args[0] if exc.args and isinstance(exc.args[0], list) else [])]
    elif isinstance(exc, OSError):
        if exc.errno:
            return exc.errno
        texts = [str(exc)]
    else:
        return None
    for text in texts:
        found = re.search(r"\[errno (\d+)\]", text, re.IGNORECASE)
        if found:
            return int(found.group(1))
        for code in DISK_ERRNOS:
            if os.strerror(code).lower() in text.lower():
                return code
    return None


def _inside(path: Path, folder: Path) -> bool:
    try:
        Path(os.path.abspath(path)).relative_to(os.path.abspath(folder))
        return True
    except ValueError:
        return False


def megabytes(size: int) -> str:
    """``size`` bytes for a message.

    >>> megabytes(25_300_000), megabytes(40_000)
    ('25 MB', '0.04 MB')
    """
    mb = size / 1e6
    return f"{mb:.0f} MB" if mb >= 10 else f"{mb:.1f} MB" if mb >= 1 else f"{max(mb, 0.01):.2f} MB"


def disk_error(exc: BaseException, path: str | Path, needs: int | None = None, *, at_least: bool = False,
               then: str = "nothing partial was kept", where: str | None = None,
               setting: str = "MMWORK_DATA") -> DiskError:
    """The one-line error for an OSError (or ``shutil.Error``) met writing ``path``: a full disk names the
    device's folder (the data root, unless ``where`` says otherwise) and about how much space the step
    ``needs`` (bytes); permission denied and read-only file systems say what to change. ``then`` says
    what became of the work (the callers keep their atomic writes: nothing half-written is left).

    >>> str(disk_error(OSError(errno.EROFS, "Read-only file system"), "/mnt/ro/x.parquet", where="/mnt/ro"))
    '/mnt/ro is on a read-only file system (writing /mnt/ro/x.parquet): remount it read-write, or point \
MMWORK_DATA at a writable folder; nothing partial was kept'
    """
    path = Path(path)
    code = os_errno(exc)
    if where is None:
        root = data_root()
        where = f"the data root {root}" if _inside(path, root) else str(path.parent)
    if code in _FULL:
        what = "no space left" if code == errno.ENOSPC else "the disk quota is exceeded"
        size = f"; this step needs {'more than' if at_least else 'about'} {megabytes(needs)} there" if needs else ""
        message = (f"{what} on the device holding {where} (writing {path}){size}: free some space, or point "
                   f"{setting} at a bigger disk; {then}")
    elif code in _DENIED:
        message = (f"permission denied writing {path} in {where}: make it writable by this user, or point "
                   f"{setting} at a folder you own; {then}")
    elif code == errno.EROFS:
        message = (f"{where} is on a read-only file system (writing {path}): remount it read-write, or point "
                   f"{setting} at a writable folder; {then}")
    else:
        detail = (os.strerror(code) if code else "") or (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        message = f"cannot write {path} in {where} ({detail[:200]}); {then}"
    return DiskError(message, code, str(path))


@contextmanager
def disk_errors(path: str | Path, needs: int | None = None, **how):
    """Turn an OSError raised inside the block (writing ``path``) into :func:`disk_error`'s one line."""
    try:
        yield
    except MmworkError:
        raise
    except OSError as exc:  # shutil.Error is an OSError too
        raise disk_error(exc, path, needs, **how) from exc


def folder_size(folder: str | Path) -> int:
    """Bytes in the files under ``folder`` (0 if it does not exist)."""
    total = 0
    for dirpath, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total
