"""Data sets as code: ``names()``, ``get(name)``, ``info(name)``, ``list_datasets()``, ``import_catalogue``."""
from mmwork.datasets.registry import get, info, list_datasets, names, spec, summary
from mmwork.datasets.catalogue import import_catalogue

__all__ = ["get", "import_catalogue", "info", "list_datasets", "names", "spec", "summary"]
