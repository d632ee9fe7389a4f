"""Parameterised notebooks run by Papermill, exported to HTML, and recorded in a run ledger.

``run_report("02-recommenders", {"epochs": 5})`` checks the parameters against the notebook's
``parameters`` cell, executes it in a fresh run folder ``reports/NAME/RUN_ID/`` (executed notebook,
HTML, figures), appends a row to ``reports/runs.parquet`` and refreshes ``reports/index.html``.
A failing cell still yields the HTML with the error visible, a run marked failed, and an exception.

Inside a notebook, ``mmwork.apps.reports.record("ndcg@10", 0.33)`` records a metric of the run, and
``headline("ndcg@10", ...)`` declares the 3-6 of them the index shows (and plots across runs; the
ledger and the pages are :mod:`mmwork.apps.report_index`).

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
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import yaml

from mmwork.apps.report_index import (LEDGER_COLUMNS, append_run, compare, ledger, ledger_lock,  # noqa: F401
                                      reports_dir, write_index)
from mmwork.core.errors import MmworkError
from mmwork.core.paths import CHECKOUT

METRIC_MIME = "application/vnd.mmwork.metric+json"
HEADLINE_MIME = "application/vnd.mmwork.headline+json"
HEADLINE_MOST = 6
KERNEL_NAME = "mmwork"


def notebooks_dir() -> Path:
    return Path(os.environ.get("MMWORK_NOTEBOOKS", CHECKOUT / "notebooks"))


# -- inside notebooks ----------------------------------------------------------------------------
def record(name: str, value) -> None:
    """Record a key metric of the running notebook (kept in the run ledger and on the index page)."""
    from IPython.display import display
    if hasattr(value, "item"):
        value = value.item()
    display({METRIC_MIME: {"name": str(name), "value": value}, "text/plain": f"{name} = {value}"}, raw=True)


def headline(*names: str) -> None:
    """Declare the run's headline metrics (names given to :func:`record`, at most six): the reports
    index shows only these per run, with their change and a trend across runs, and links to the rest.
    A name the run never records is left out; a run that declares none shows its first few metrics.

    >>> headline("classifier/test_accuracy", "cvae/conditional_accuracy")       # doctest: +SKIP
    """
    from IPython.display import display
    names = tuple(names[0]) if len(names) == 1 and isinstance(names[0], (list, tuple)) else names
    names = tuple(dict.fromkeys(names))  # a name given twice is shown once
    if not names or len(names) > HEADLINE_MOST or not all(isinstance(n, str) for n in names):
        raise MmworkError(f"headline takes 1 to {HEADLINE_MOST} metric names, got {names!r}")
    display({HEADLINE_MIME: {"names": list(names)},
             "text/plain": "headline metrics (on reports/index.html): " + ", ".join(names)}, raw=True)


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


def _harvest(executed: Path, folder: Path) -> tuple[dict, list[str], list[str]]:
    """Metrics recorded with :func:`record`, the headline declared with :func:`headline` (the last
    declaration counts), and every PNG figure written out to ``figures/``."""
    import nbformat
    nb = nbformat.read(executed, as_version=4)
    metrics, declared, figures = {}, [], []
    for index, cell in enumerate(nb.cells):
        for number, output in enumerate(cell.get("outputs", [])):
            data = output.get("data", {})
            if METRIC_MIME in data:
                metrics[data[METRIC_MIME]["name"]] = data[METRIC_MIME]["value"]
            if HEADLINE_MIME in data:
                declared = list(data[HEADLINE_MIME]["names"])
            if "image/png" in data:
                (folder / "figures").mkdir(exist_ok=True)
                name = f"figures/cell{index:03d}-{number}.png"
                (folder / name).write_bytes(base64.b64decode(data["image/png"]))
                figures.append(name)
    return metrics, declared, figures


def _export_html(executed: Path, target: Path) -> None:
    import nbformat
    from nbconvert import HTMLExporter
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nbformat.read(executed, as_version=4))
    target.write_text(body, encoding="utf-8")


@contextmanager
def _kernel_config():
    """The kernel manager's configuration for one run. On POSIX the kernel talks over Unix domain
    sockets in a private (0700) temporary folder: nothing listens on a TCP port, and ipykernel (7+)
    has no reason to print "Kernel is running over TCP without encryption" to the terminal once per
    notebook. Windows has no IPC transport; neither has a socket path too long for the OS."""
    from traitlets.config import Config
    with tempfile.TemporaryDirectory(prefix="mmwork-kernel-") as folder:
        ip = os.path.join(folder, "kernel")
        if os.name != "posix" or len(ip) > 90:  # sun_path holds 104 (macOS) to 108 (Linux) bytes; "-N" follows
            yield Config()
        else:
            yield Config({"KernelManager": {"transport": "ipc", "ip": ip}})


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
        with _kernel_config() as config:
            papermill.execute_notebook(str(path), str(executed), parameters=parameters or {}, kernel_name=kernel,
                                       language="python", progress_bar=progress, log_output=progress,
                                       cwd=str(path.parent), execution_timeout=timeout, config=config)
        status = "ok"
    except papermill.PapermillExecutionError as exc:
        status, error = "failed", f"{exc.ename}: {exc.evalue}"
    except Exception as exc:  # noqa: BLE001 - a dead kernel, a timeout: still a failed run on record
        status, error = "failed", f"{type(exc).__name__}: {exc}"
    metrics, declared, figures = {}, [], []
    if executed.exists():
        metrics, declared, figures = _harvest(executed, folder)
        _export_html(executed, folder / f"{path.stem}.html")
    row = {"run_id": run_id, "notebook": path.stem, "status": status, "started": started.isoformat(timespec="seconds"),
           "duration_s": round(time.perf_counter() - clock, 2), "parameters": json.dumps(full, default=str),
           "metrics": json.dumps(metrics, default=str), "data_hash": data_hash(full), "code_version": code_version(),
           "error": error, "html": str((folder / f"{path.stem}.html").relative_to(reports_dir())),
           "folder": str(folder.relative_to(reports_dir())), "headline": json.dumps(declared)}
    (folder / "run.json").write_text(json.dumps(row | {"figures": figures}, indent=2))
    with ledger_lock():
        append_run(row)
        write_index()
    if status != "ok":
        raise MmworkError(f"{path.stem} failed ({error}); the report with the error is {folder / (path.stem + '.html')}")
    return row | {"figures": figures, "folder": str(folder)}
