"""mmwork: a notebook-first analytics workbench for multimodal catalogues.

>>> import mmwork
>>> mmwork.__version__
'0.1.0'
"""


def __getattr__(name: str):
    # the version is looked up on first use: importlib.metadata costs every command start otherwise
    if name != "__version__":
        raise AttributeError(f"module 'mmwork' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version
    try:
        found = version("mmwork")
    except PackageNotFoundError:  # running from a source tree that is not installed
        found = "0.1.0"
    globals()["__version__"] = found
    return found

from mmwork.errors import MmworkError  # noqa: E402
from mmwork.store import read_table, list_tables, write_table  # noqa: E402
from mmwork import queries  # noqa: E402 - the module; ``mmwork.query`` is its query function
from mmwork.queries import (catalog, feature_stat_by, open, query, similar, similar_to_text,  # noqa: E402,A004
                            top_items_by)

__all__ = ["MmworkError", "catalog", "feature_stat_by", "list_tables", "open", "queries", "query", "read_table",
           "similar", "similar_to_text", "top_items_by", "write_table", "__version__"]
