"""Package names that load their module on first use (PEP 562), so that importing one module of a stage
never pulls in the libraries of its siblings, and ``mmwork query`` starts without torch.

>>> getattr_, dir_ = lazy_names("mmwork.core", {"MmworkError": "mmwork.core.errors"})
>>> getattr_("MmworkError").__name__
'MmworkError'
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from importlib import import_module


def lazy_names(package: str, shortcuts: dict[str, str]) -> tuple[Callable, Callable]:
    """The ``__getattr__`` and ``__dir__`` of ``package``: each name in ``shortcuts`` (name -> the
    module that defines it) is imported when first asked for, then kept in the package."""

    def __getattr__(name: str):
        if name not in shortcuts:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(shortcuts[name]), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(shortcuts)

    return __getattr__, __dir__
