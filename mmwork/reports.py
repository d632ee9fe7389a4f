"""Parameterised notebooks run by Papermill, exported to HTML, and recorded in a run ledger.

``run_report("02-recommenders", {"epochs": 5})`` checks the parameters against the notebook's
``parameters`` cell, executes it in a fresh run folder ``reports/NAME/RUN_ID/`` (executed notebook,
HTML, figures), appends a row to ``reports/runs.parquet`` and refreshes ``reports/index.html``.
A failing cell still yields the HTML with the error visible, a run marked failed, and an exception.

Inside a notebook, ``mmwork.reports.record("ndcg@10", 0.33)`` records a key metric of the run.

>>> run = run_report("04-explore", {"dataset": "speech-prompts"})     # doctest: +SKIP
>>> run["status"], run["metrics"]                                     # doctest: +SKIP
"""
from __future__ import annotations

import ast
import base64
import fcntl
import hashlib
import html
import json
import os
import secrets
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import yaml

from mmwork.errors import MmworkError
from mmwork.paths import _CHECKOUT

METRIC_MIME = "application/vnd.mmwork.metric+json"
KERNEL_NAME = "mmwork"
LEDGER_COLUMNS = ["run_id", "notebook", "status", "started", "duration_s", "parameters", "metrics", "data_hash",
                  "code_version", "error", "html", "folder"]


def notebooks_dir() -> Path:
    return Path(os.environ.get("MMWORK_NOTEBOOKS", _CHECKOUT / "notebooks"))


def reports_dir() -> Path:
    return Path(os.environ.get("MMWORK_REPORTS", _CHECKOUT / "reports"))


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
    """The names and default values of the cell tagged ``parameters``."""
    import nbformat
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise MmworkError(f"{path.name} has no cell tagged 'parameters'; tag one so its values can be set")
    defaults = {}
    for node in ast.parse(cells[0].source).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
            if isinstance(target, ast.Name):
                try:
                    defaults[target.id] = ast.literal_eval(node.value)
                except ValueError:
                    defaults[target.id] = None  # not a literal: accept any value
    return defaults


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
    """Make sure a Jupyter kernel named ``mmwork`` runs this interpreter; return its name."""
    from jupyter_client.kernelspec import KernelSpecManager
    manager = KernelSpecManager()
    try:
        spec = manager.get_kernel_spec(KERNEL_NAME)
        if spec.argv and Path(spec.argv[0]).resolve() == Path(sys.executable).resolve():
            return KERNEL_NAME
    except Exception:  # noqa: BLE001 - jupyter_client raises NoSuchKernel and others
        pass
    from ipykernel.kernelspec import install
    install(kernel_name=KERNEL_NAME, display_name="Python (mmwork)", prefix=sys.prefix)
    return KERNEL_NAME


def code_version() -> str:
    from mmwork import __version__
    try:
        commit = subprocess.run(["git", "-C", str(_CHECKOUT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(_CHECKOUT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", ""
    return f"{__version__}+{commit}{'.dirty' if dirty else ''}" if commit else __version__


def data_hash(parameters: dict) -> str:
    """A hash of the provenance of the data set the run read (its tables' input hashes)."""
    from mmwork.store import list_tables, table_metadata
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
@contextmanager
def _ledger_lock():
    reports_dir().mkdir(parents=True, exist_ok=True)
    with open(reports_dir() / ".ledger.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ledger() -> pd.DataFrame:
    """Every run so far, oldest first (``reports/runs.parquet``)."""
    from mmwork.store import read_table
    path = reports_dir() / "runs.parquet"
    return read_table(path) if path.exists() else pd.DataFrame(columns=LEDGER_COLUMNS)


def _append(row: dict) -> None:
    from mmwork.store import write_table
    table = pd.concat([ledger(), pd.DataFrame([row])], ignore_index=True)[LEDGER_COLUMNS]
    write_table(table.astype({"duration_s": float}), reports_dir() / "runs.parquet", producer="mmwork.reports")


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


def _metric_cells(metrics: dict, previous: dict | None) -> str:
    parts = []
    for name, value in metrics.items():
        shown = f"{value:.4g}" if isinstance(value, float) else html.escape(str(value))
        delta = ""
        if previous and isinstance(value, (int, float)) and isinstance(previous.get(name), (int, float)):
            change = value - previous[name]
            delta = f' <span class="{"up" if change > 0 else "down" if change < 0 else "same"}">({change:+.3g})</span>'
        parts.append(f"<b>{html.escape(name)}</b> {shown}{delta}")
    return "<br>".join(parts)


def write_index() -> Path:
    """``reports/index.html``: every run, newest first, with status, parameters, key metrics (and
    their change since the previous run of the same notebook) and links."""
    runs = ledger()
    rows, previous = [], {}
    for _, run in runs.iterrows():
        metrics = json.loads(run["metrics"] or "{}")
        params = json.loads(run["parameters"] or "{}")
        rows.append(f"""<tr class="{run['status']}"><td>{html.escape(run['started'])}</td>
<td>{html.escape(run['notebook'])}</td><td><a href="{html.escape(run['html'])}">{html.escape(run['run_id'])}</a>
 · <a href="{html.escape(run['folder'])}/">files</a></td><td class="status">{html.escape(run['status'])}</td>
<td>{run['duration_s']:.1f} s</td><td><code>{html.escape(json.dumps(params))}</code></td>
<td>{_metric_cells(metrics, previous.get(run['notebook']))}</td>
<td>{html.escape(run['error'] or '')}</td><td><code>{html.escape(run['code_version'])}</code>
<br><code>{html.escape(run['data_hash'] or '')}</code></td></tr>""")
        if run["status"] == "ok":
            previous[run["notebook"]] = metrics
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>mmwork reports</title><style>
body{{font-family:system-ui,sans-serif;margin:2em}} table{{border-collapse:collapse;width:100%}}
td,th{{border-bottom:1px solid #ddd;padding:6px;vertical-align:top;text-align:left;font-size:14px}}
tr.failed .status{{color:#b00;font-weight:bold}} tr.ok .status{{color:#080}} code{{font-size:12px}}
.up{{color:#080}} .down{{color:#b00}} .same{{color:#888}}</style></head><body>
<h1>mmwork reports</h1><p>{len(runs)} run(s); newest first. Metric changes are against the previous successful
run of the same notebook. Ledger: <code>runs.parquet</code>.</p>
<table><tr><th>started (UTC)</th><th>notebook</th><th>run</th><th>status</th><th>time</th><th>parameters</th>
<th>key metrics</th><th>error</th><th>code / data</th></tr>{''.join(reversed(rows))}</table></body></html>"""
    target = reports_dir() / "index.html"
    tmp = target.with_name(".index.html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(target)
    return target
