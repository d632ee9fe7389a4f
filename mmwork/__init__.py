"""mmwork: a notebook-first analytics workbench for multimodal catalogues.

>>> import mmwork
>>> mmwork.__version__
'0.1.0'
"""
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("mmwork")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0"

from mmwork.errors import MmworkError  # noqa: E402
from mmwork.store import read_table, list_tables, write_table  # noqa: E402

__all__ = ["MmworkError", "read_table", "list_tables", "write_table", "__version__"]
