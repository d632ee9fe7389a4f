"""Parameterised notebooks run by Papermill, exported to HTML, and recorded in a run ledger.

``run_report("02-recommenders", {"epochs": 5})`` checks the parameters against the notebook's
``parameters`` cell, executes it in a fresh run folder ``reports/NAME/RUN_ID/`` (executed notebook,
HTML, figures), appends a row to ``reports/runs.parquet`` and refreshes ``reports/index.html``.
A failing cell still yields the HTML with the error visible, a run marked failed, and an exception.

Inside a notebook, ``mmwork.apps.reports.record("ndcg@10", 0.33)`` records a key metric of the run.

>>> run = run_report("04-explore", {"dataset": "speech-prompts"})     # doctest: +SKIP
>>> run["status"], run["metrics"]                                     # doctest: +SKIP
"""
from __future__ import annotations

import ast
import base64
import hashlib
import json
import os
import secrets
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import yaml

from mmwork.core.errors import MmworkError
from mmwork.core.paths import CHECKOUT

METRIC_MIME = "application/vnd.mmwork.metric+json"
KERNEL_NAME = "mmwork"
LEDGER_COLUMNS = ["run_id", "notebook", "status", "started", "duration_s", "parameters", "metrics", "data_hash",
                  "code_version", "error", "html", "folder"]


def notebooks_dir() -> Path:
    return Path(os.environ.get("MMWORK_NOTEBOOKS", CHECKOUT / "notebooks"))


def reports_dir() -> Path:
    return Path(os.environ.get("MMWORK_REPORTS", CHECKOUT / "reports"))


# -- inside notebooks ----------------------------------------------------------------------------
def record(name: str, value) -> None:
    """Record a key metric of the running notebook (kept in the run ledger and on the index page)."""
    from IPython.display import display
    if hasattr(value, "item"):
        value = value.item()
    display({METRIC_MIME: {"name": str(name), "value": value}, "text/plain": f"{name} = {value}"}, raw=True)


# -- parameters ----------------------------------------------------------------------------------
def find_notebook(name: str | Path) -> Path:
    path = Path(name)
    if path.suffix == ".ipynb" and path.exists():
        return path
    candidate = notebooks_dir() / (path.name if path.suffix == ".ipynb" else f"{path.name}.ipynb")
    if candidate.exists():
        return candidate
    known = sorted(p.stem for p in notebooks_dir().glob("*.ipynb"))
    raise MmworkError(f"no notebook {name!r}; notebooks in {notebooks_dir()}: {known}")


def notebook_parameters(path: Path) -> dict:
    """The names and default values of the cell tagged ``parameters``, parsed by Papermill's own
    Python translator (``papermill.inspect_notebook`` minus its kernel look-up, so a notebook without
    kernel metadata works too); a default that is not a Python literal accepts any value. Like
    Papermill, it skips a line holding more than one ``=`` (a comment's included).

    >>> notebook_parameters(find_notebook("02-recommenders"))["k"]      # doctest: +SKIP
    10
    """
    from papermill.iorw import load_notebook_node
    from papermill.translators import PythonTranslator
    from papermill.utils import find_first_tagged_cell_index
    nb = load_notebook_node(str(path))
    index = find_first_tagged_cell_index(nb, "parameters")
    if index < 0:
        raise MmworkError(f"{path.name} has no cell tagged 'parameters'; tag one so its values can be set")
    return {p.name: _literal(p.default) for p in PythonTranslator.inspect(nb.cells[index])}


def _literal(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None  # not a literal: accept any value


def _type_ok(default, value) -> bool:
    if default is None or value is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def check_parameters(path: Path, given: dict) -> dict:
    """Fail before anything runs on an unknown name or a value of the wrong type."""
    defaults = notebook_parameters(path)
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise MmworkError(f"{path.stem} has no parameter(s) {unknown}; its parameters are {sorted(defaults)}")
    for name, value in given.items():
        if not _type_ok(defaults[name], value):
            raise MmworkError(f"parameter {name}={value!r} of {path.stem} should be a {type(defaults[name]).__name__} "
                              f"like its default {defaults[name]!r}")
    return defaults | given


def read_parameters(pairs: list[tuple[str, str]] | None = None, files: list[str | Path] | None = None) -> dict:
    """``-f params.yaml`` files then ``-p NAME VALUE`` pairs (values read as YAML: 5 is a number)."""
    params: dict = {}
    for file in files or []:
        if not Path(file).exists():
            raise MmworkError(f"parameter file {file} does not exist")
        loaded = yaml.safe_load(Path(file).read_text()) or {}
        if not isinstance(loaded, dict):
            raise MmworkError(f"parameter file {file} must hold a mapping of name: value")
        params |= loaded
    for name, value in pairs or []:
        params[name] = yaml.safe_load(value)
    return params


# -- running ---------------------------------------------------------------------------------------
def ensure_kernel() -> str:
    """Make sure the Jupyter kernel named ``mmwork`` runs this interpreter (installing it into this
    environment's prefix if needed); return its name.

    >>> ensure_kernel()                          # doctest: +SKIP
    'mmwork'
    """
    from ipykernel.kernelspec import install
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    def runs_here() -> bool:  # compare unresolved paths: every venv's python links to the same binary
        try:
            argv = KernelSpecManager().get_kernel_spec(KERNEL_NAME).argv
        except NoSuchKernel:
            return False
        return bool(argv) and os.path.abspath(argv[0]) == os.path.abspath(sys.executable)

    if not runs_here():
        install(kernel_name=KERNEL_NAME, display_name="Python (mmwork)", prefix=sys.prefix)
        if not runs_here():
            where = KernelSpecManager().find_kernel_specs()[KERNEL_NAME]
            raise MmworkError(f"the Jupyter kernel {KERNEL_NAME!r} in {where} runs another Python and hides this "
                              f"environment's; remove it with `jupyter kernelspec remove {KERNEL_NAME}`")
    return KERNEL_NAME


def code_version() -> str:
    from mmwork.core.version import version
    try:
        commit = subprocess.run(["git", "-C", str(CHECKOUT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(CHECKOUT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", ""
    return f"{version()}+{commit}{'.dirty' if dirty else ''}" if commit else version()


def data_hash(parameters: dict) -> str:
    """A hash of the provenance of the data set the run read (its tables' input hashes)."""
    from mmwork.store.tables import list_tables, table_metadata
    dataset = parameters.get("dataset")
    if not dataset:
        return ""
    tables = list_tables()
    tables = tables[tables["dataset"] == dataset]
    hashes = []
    for path in tables["path"]:
        try:
            hashes.append(table_metadata(path).get("input_hash", ""))
        except MmworkError:
            hashes.append("unreadable")
    return hashlib.sha256("|".join(sorted(hashes)).encode()).hexdigest()[:16] if hashes else ""


def _new_run_folder(notebook: str) -> tuple[str, Path]:
    # A random suffix and an exclusive mkdir: two runs started in the same second never share a folder.
    while True:
        run_id = f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        folder = reports_dir() / notebook / run_id
        try:
            folder.mkdir(parents=True, exist_ok=False)
            return run_id, folder
        except FileExistsError:
            continue


def _harvest(executed: Path, folder: Path) -> tuple[dict, list[str]]:
    """Metrics recorded with :func:`record`, and every PNG figure written out to ``figures/``."""
    import nbformat
    nb = nbformat.read(executed, as_version=4)
    metrics, figures = {}, []
    for index, cell in enumerate(nb.cells):
        for number, output in enumerate(cell.get("outputs", [])):
            data = output.get("data", {})
            if METRIC_MIME in data:
                metrics[data[METRIC_MIME]["name"]] = data[METRIC_MIME]["value"]
            if "image/png" in data:
                (folder / "figures").mkdir(exist_ok=True)
                name = f"figures/cell{index:03d}-{number}.png"
                (folder / name).write_bytes(base64.b64decode(data["image/png"]))
                figures.append(name)
    return metrics, figures


def _export_html(executed: Path, target: Path) -> None:
    import nbformat
    from nbconvert import HTMLExporter
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nbformat.read(executed, as_version=4))
    target.write_text(body, encoding="utf-8")


def run_report(notebook: str | Path, parameters: dict | None = None, progress: bool = True,
               timeout: int | None = None) -> dict:
    """Execute ``notebook`` with ``parameters``; returns the ledger row. Raises MmworkError (after
    writing the HTML and the ledger row) if a cell failed."""
    import papermill
    path = find_notebook(notebook)
    full = check_parameters(path, parameters or {})
    kernel = ensure_kernel()
    run_id, folder = _new_run_folder(path.stem)
    executed = folder / f"{path.stem}.ipynb"
    started, clock = datetime.now(timezone.utc), time.perf_counter()
    error = ""
    try:
        papermill.execute_notebook(str(path), str(executed), parameters=parameters or {}, kernel_name=kernel,
                                   language="python", progress_bar=progress, log_output=progress, cwd=str(path.parent),
                                   execution_timeout=timeout)
        status = "ok"
    except papermill.PapermillExecutionError as exc:
        status, error = "failed", f"{exc.ename}: {exc.evalue}"
    except Exception as exc:  # noqa: BLE001 - a dead kernel, a timeout: still a failed run on record
        status, error = "failed", f"{type(exc).__name__}: {exc}"
    metrics, figures = ({}, [])
    if executed.exists():
        metrics, figures = _harvest(executed, folder)
        _export_html(executed, folder / f"{path.stem}.html")
    row = {"run_id": run_id, "notebook": path.stem, "status": status, "started": started.isoformat(timespec="seconds"),
           "duration_s": round(time.perf_counter() - clock, 2), "parameters": json.dumps(full, default=str),
           "metrics": json.dumps(metrics, default=str), "data_hash": data_hash(full), "code_version": code_version(),
           "error": error, "html": str((folder / f"{path.stem}.html").relative_to(reports_dir())),
           "folder": str(folder.relative_to(reports_dir()))}
    (folder / "run.json").write_text(json.dumps(row | {"figures": figures}, indent=2))
    with _ledger_lock():
        _append(row)
        write_index()
    if status != "ok":
        raise MmworkError(f"{path.stem} failed ({error}); the report with the error is {folder / (path.stem + '.html')}")
    return row | {"figures": figures, "folder": str(folder)}


# -- ledger and index ------------------------------------------------------------------------------
def _ledger_lock():
    """A file lock around the ledger: concurrent runs (threads or processes) append one at a time."""
    from filelock import FileLock
    reports_dir().mkdir(parents=True, exist_ok=True)
    return FileLock(reports_dir() / ".ledger.lock")


def ledger() -> pd.DataFrame:
    """Every run so far, oldest first (``reports/runs.parquet``)."""
    from mmwork.store.tables import read_table
    path = reports_dir() / "runs.parquet"
    return read_table(path) if path.exists() else pd.DataFrame(columns=LEDGER_COLUMNS)


def _append(row: dict) -> None:
    from mmwork.store.tables import write_table
    table = pd.concat([ledger(), pd.DataFrame([row])], ignore_index=True)[LEDGER_COLUMNS]
    write_table(table.astype({"duration_s": float}), reports_dir() / "runs.parquet", producer="mmwork.apps.reports")


def compare(run_a: str, run_b: str) -> pd.DataFrame:
    """Metrics of two runs side by side with their difference (b - a)."""
    runs = ledger().set_index("run_id")
    for run in (run_a, run_b):
        if run not in runs.index:
            raise MmworkError(f"no run {run!r} in the ledger; see `mmwork report list`")
    a, b = (json.loads(runs.loc[r, "metrics"]) for r in (run_a, run_b))
    rows = []
    for name in sorted(set(a) | set(b)):
        va, vb = a.get(name), b.get(name)
        diff = vb - va if isinstance(va, (int, float)) and isinstance(vb, (int, float)) else None
        rows.append({"metric": name, run_a: va, run_b: vb, "difference": diff})
    return pd.DataFrame(rows)


def _metric_rows(metrics: dict, previous: dict | None) -> list[dict]:
    """Each metric with its change since ``previous`` (None when either side is not a number)."""
    rows = []
    for name, value in metrics.items():
        before = (previous or {}).get(name)
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (value, before))
        rows.append({"name": name, "value": f"{value:.4g}" if isinstance(value, float) else value,
                     "change": value - before if numbers else None})
    return rows


def write_index() -> Path:
    """``reports/index.html`` (from ``templates/index.html.j2``): every run, newest first, with status,
    parameters, key metrics (and their change since the previous successful run of the same
    notebook) and links.

    >>> write_index()                                   # doctest: +SKIP
    PosixPath('reports/index.html')
    """
    from jinja2 import Environment, PackageLoader
    runs, previous = [], {}
    for run in ledger().to_dict("records"):
        metrics = json.loads(run["metrics"] or "{}")
        runs.append(run | {"parameters": json.loads(run["parameters"] or "{}"),
                           "metrics": _metric_rows(metrics, previous.get(run["notebook"]))})
        if run["status"] == "ok":
            previous[run["notebook"]] = metrics
    templates = Environment(loader=PackageLoader("mmwork", "templates"), autoescape=True, trim_blocks=True,
                            lstrip_blocks=True)
    page = templates.get_template("index.html.j2").render(runs=runs[::-1])
    target = reports_dir() / "index.html"
    tmp = target.with_name(".index.html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(target)
    return target
