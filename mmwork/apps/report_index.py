"""The run ledger (``reports/runs.parquet``) and the pages read from it: ``reports/index.html`` and each
run's ``metrics.html``.

The index shows each run's headline metrics (the 3-6 a notebook declares with
:func:`mmwork.apps.reports.headline`; a run without a declaration shows its first
:data:`HEADLINE_FALLBACK`) with their change since the notebook's previous successful run, links to
the run's page of every metric, and draws one small trend plot per notebook: its headline metrics
over the run times of its successful runs, filled points for runs with the newest run's parameters,
hollow grey ones for runs with others (a demo-size run next to full-size ones).

>>> write_index()                                   # doctest: +SKIP
PosixPath('reports/index.html')
>>> headline_names({"a": 1, "b": 2, "c": 3}, ["c", "z"]), headline_names({"a": 1, "b": 2}, [])
(['c'], ['a', 'b'])
"""
from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

import pandas as pd

from mmwork.core.errors import MmworkError
from mmwork.core.paths import CHECKOUT

LEDGER_COLUMNS = ["run_id", "notebook", "status", "started", "duration_s", "parameters", "metrics", "data_hash",
                  "code_version", "error", "html", "folder", "headline"]
HEADLINE_FALLBACK = 4  # metrics shown for a run whose notebook declared no headline (its first ones, in order)
METRICS_PAGE = "metrics.html"


def reports_dir() -> Path:
    return Path(os.environ.get("MMWORK_REPORTS", CHECKOUT / "reports"))


# -- the ledger ------------------------------------------------------------------------------------
def ledger_lock():
    """A file lock around the ledger: concurrent runs (threads or processes) append one at a time."""
    from filelock import FileLock
    reports_dir().mkdir(parents=True, exist_ok=True)
    return FileLock(reports_dir() / ".ledger.lock")


def ledger() -> pd.DataFrame:
    """Every run so far, oldest first (``reports/runs.parquet``); rows written before runs declared
    headline metrics read ``headline`` as ""."""
    from mmwork.store.tables import read_table
    path = reports_dir() / "runs.parquet"
    table = read_table(path) if path.exists() else pd.DataFrame(columns=LEDGER_COLUMNS)
    table["headline"] = table["headline"].fillna("") if "headline" in table else ""  # rows from before it
    return table


def append_run(row: dict) -> None:
    """Add one run to the ledger (hold :func:`ledger_lock` around it)."""
    from mmwork.store.tables import write_table
    table = pd.concat([ledger(), pd.DataFrame([row])], ignore_index=True)[LEDGER_COLUMNS]
    table["headline"] = table["headline"].fillna("")
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


# -- headline metrics ------------------------------------------------------------------------------
def headline_names(metrics: dict, declared: list[str]) -> list[str]:
    """The declared headline metrics the run recorded, in declared order; without any, its first
    :data:`HEADLINE_FALLBACK` metrics."""
    names = [name for name in declared if name in metrics]
    return names or list(metrics)[:HEADLINE_FALLBACK]


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _metric_rows(metrics: dict, previous: dict | None, names=None) -> list[dict]:
    """Each metric (of ``names``, default all) with its change since ``previous`` (None unless both are numbers)."""
    rows = []
    for name in metrics if names is None else names:
        value, before = metrics[name], (previous or {}).get(name)
        rows.append({"name": name, "value": f"{value:.4g}" if isinstance(value, float) else value,
                     "change": value - before if _number(value) and _number(before) else None})
    return rows


def trend_png(runs: list[dict], names: list[str]) -> str:
    """One small figure (base64 PNG): a strip per metric of ``names`` over the ``runs``' start times
    (each run a dict with ``started``, ``metrics`` and ``same``: whether it shares the newest run's
    parameters). Drawn without pyplot, so it never touches a notebook's figures."""
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure
    when = pd.to_datetime([run["started"] for run in runs], utc=True).tz_convert(None)
    fig = Figure(figsize=(4.6, 0.35 + 0.62 * len(names)), dpi=100)
    axes = fig.subplots(len(names), 1, sharex=True, squeeze=False)[:, 0]
    for ax, name in zip(axes, names):
        values = [run["metrics"].get(name) for run in runs]
        values = [float(v) if _number(v) else float("nan") for v in values]
        same = [run["same"] for run in runs]
        ax.plot([t for t, s in zip(when, same) if s], [v for v, s in zip(values, same) if s], "o-", color="#1f5fa8",
                markersize=3.5, linewidth=1.2)
        ax.plot([t for t, s in zip(when, same) if not s], [v for v, s in zip(values, same) if not s], "o",
                markerfacecolor="none", markeredgecolor="#999", markersize=3.5)
        ax.set_title(f"{name}   {values[-1]:.4g}", fontsize=7.5, loc="left", pad=2)
        ax.tick_params(labelsize=6.5, length=2)
        ax.margins(x=0.05, y=0.25)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    locator = AutoDateLocator(minticks=2, maxticks=5)
    axes[-1].xaxis.set_major_locator(locator)
    axes[-1].xaxis.set_major_formatter(ConciseDateFormatter(locator))
    fig.tight_layout(pad=0.4, h_pad=0.3)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _trend(notebook: str, runs: list[dict]) -> dict:
    """What the index shows for one notebook: its newest successful run's headline metrics over its
    successful runs (a figure once there are two)."""
    ok = [run for run in runs if run["status"] == "ok"]
    if not ok:
        return {"notebook": notebook, "png": None, "runs": 0, "same": 0, "names": []}
    newest = ok[-1]
    names = [n for n in headline_names(newest["metrics"], newest["headline"]) if _number(newest["metrics"][n])]
    for run in ok:
        run["same"] = run["parameters"] == newest["parameters"]
    png = trend_png(ok, names) if len(ok) >= 2 and names else None
    return {"notebook": notebook, "png": png, "runs": len(ok), "same": sum(run["same"] for run in ok), "names": names}


# -- pages -----------------------------------------------------------------------------------------
def _templates():
    from jinja2 import Environment, PackageLoader
    return Environment(loader=PackageLoader("mmwork", "templates"), autoescape=True, trim_blocks=True,
                       lstrip_blocks=True)


def _write(target: Path, page: str) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(target)


def write_index() -> Path:
    """``reports/index.html`` (from ``templates/index.html.j2``): a trend plot per notebook, then every
    run, newest first, with status, parameters, headline metrics (and their change since the previous
    successful run of the same notebook) and links to its report and to its page of every metric
    (``metrics.html`` in its folder, written here once for each run folder that lacks it)."""
    templates, runs, previous, by_notebook = _templates(), [], {}, {}
    for row in ledger().to_dict("records"):
        metrics = json.loads(row["metrics"] or "{}")
        declared = json.loads(row["headline"] or "[]")
        run = row | {"parameters": json.loads(row["parameters"] or "{}"), "metrics": metrics, "headline": declared}
        before = previous.get(row["notebook"])
        folder = reports_dir() / row["folder"] if row["folder"] else None
        if folder is not None and (folder / "run.json").exists() and not (folder / METRICS_PAGE).exists():
            _write(folder / METRICS_PAGE, templates.get_template("metrics.html.j2").render(
                run=run, rows=_metric_rows(metrics, before), headline=headline_names(metrics, declared),
                report=Path(row["html"]).name, index=os.path.relpath(reports_dir() / "index.html", folder)))
        has_page = folder is not None and (folder / METRICS_PAGE).exists()
        runs.append(run | {"shown": _metric_rows(metrics, before, headline_names(metrics, declared)),
                           "count": len(metrics),
                           "all_metrics": f"{row['folder']}/{METRICS_PAGE}" if has_page else f"{row['folder']}/"})
        by_notebook.setdefault(row["notebook"], []).append(run)
        if row["status"] == "ok":
            previous[row["notebook"]] = metrics
    trends = [_trend(notebook, notebook_runs) for notebook, notebook_runs in sorted(by_notebook.items())]
    target = reports_dir() / "index.html"
    _write(target, templates.get_template("index.html.j2").render(runs=runs[::-1], trends=trends))
    return target
