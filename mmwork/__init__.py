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
from mmwork.query import catalog, open, query, similar, similar_to_text  # noqa: E402,A004

__all__ = ["MmworkError", "catalog", "list_tables", "open", "query", "read_table", "similar", "similar_to_text",
           "write_table", "__version__"]
