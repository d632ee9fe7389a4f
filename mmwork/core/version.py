"""mmwork's version, looked up once on first use (importlib.metadata costs every command's start otherwise).

>>> from mmwork.core.version import version
>>> version().count(".") >= 2
True
"""
from __future__ import annotations

from functools import cache


@cache
def version() -> str:
    from importlib.metadata import PackageNotFoundError, version as installed
    try:
        return installed("mmwork")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0.1.0"
