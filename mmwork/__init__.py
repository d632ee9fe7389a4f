"""mmwork: a notebook-first analytics workbench for multimodal catalogues.

The package imports nothing until a name is used, so ``mmwork query`` and ``mmwork similar`` start
without torch, Dask or scikit-learn. The names below are shortcuts to the stages that define them.

>>> import mmwork
>>> mmwork.__version__
'0.1.0'
>>> mmwork.read_table.__module__
'mmwork.store.tables'
"""
from importlib import import_module

from mmwork.core.lazy import lazy_names

_SHORTCUTS = {
    "MmworkError": "mmwork.core.errors",
    "read_table": "mmwork.store.tables", "list_tables": "mmwork.store.tables", "write_table": "mmwork.store.tables",
    "catalog": "mmwork.search.queries", "feature_stat_by": "mmwork.search.queries", "open": "mmwork.search.queries",
    "query": "mmwork.search.queries", "similar": "mmwork.search.similar",
    "similar_to_text": "mmwork.search.similar", "top_items_by": "mmwork.search.queries",
    "load": "mmwork.models.persistence",
}
__all__ = sorted(_SHORTCUTS) + ["__version__"]


_shortcut, _names = lazy_names(__name__, _SHORTCUTS)


def __getattr__(name: str):
    if name == "__version__":
        globals()[name] = import_module("mmwork.core.version").version()
        return globals()[name]
    return _shortcut(name)


def __dir__():
    return __all__
