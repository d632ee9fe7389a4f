"""The one exception type users see: a one-line message that says what is wrong and how to fix it."""


class MmworkError(Exception):
    """A user-facing error; the CLI prints its message on one line and exits with status 2.

    >>> str(MmworkError("unknown data set 'x'; run `mmwork data list`"))
    "unknown data set 'x'; run `mmwork data list`"
    """


class DiskError(MmworkError):
    """A write under the data root (or the download cache) refused by the operating system: a full
    disk, no permission, a read-only file system. ``errno`` and ``path`` say which and where; the
    message (see :func:`mmwork.store.tables.disk_error`) says how much space the step needs.

    >>> import pickle, errno
    >>> pickle.loads(pickle.dumps(DiskError("no space left", errno.ENOSPC, "/data/x"))).errno == errno.ENOSPC
    True
    """

    def __init__(self, message: str, errno: int | None = None, path: str | None = None):
        super().__init__(message)
        self.errno, self.path = errno, path

    def __reduce__(self):  # raised in worker processes, re-raised by the client: keep errno and path
        return (type(self), (str(self), self.errno, self.path))
