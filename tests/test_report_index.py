"""The reports index from real runs: a notebook's declared headline metrics are stored with its run and
are all the index shows of it (with a link to the page of every metric); a run that declares none shows
its first few; a notebook with two successful runs gets a trend plot; a ledger written before the
headline column existed still renders; and no run prints the kernel's TCP warning or tqdm's."""
import base64
import json
import re
import subprocess
import sys

import nbformat
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from mmwork import MmworkError
from mmwork.apps import report_index, reports
from mmwork.apps.reports import run_report

RECORD = "from mmwork.apps.reports import record\nfor i, name in enumerate('abcdef'):\n    record(name, i * x + 0.5)"


def _notebook(path, *cells):
    params = new_code_cell("x = 1")
    params.metadata["tags"] = ["parameters"]
    nbformat.write(new_notebook(cells=[params, *map(new_code_cell, cells)]), path)
    return path


@pytest.fixture
def reports_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MMWORK_REPORTS", str(tmp_path / "reports"))
    return tmp_path / "reports"


def _index_row(page: str, run_id: str) -> str:
    return re.search(rf"<tr class=\"\w+\">(?:(?!</tr>).)*{run_id}(?:(?!</tr>).)*</tr>", page, re.S).group(0)


def test_declared_headline_is_what_the_index_shows_with_a_trend(reports_root, tmp_path):
    path = _notebook(tmp_path / "declared.ipynb",
                     "from mmwork.apps.reports import headline\nheadline('e', 'b', 'never-recorded')", RECORD)
    first = run_report(path, {"x": 1}, progress=False)
    assert json.loads(first["headline"]) == ["e", "b", "never-recorded"]
    assert json.loads((reports_root / first["folder"] / "run.json").read_text())["headline"] == first["headline"]
    page = (reports_root / "index.html").read_text()
    assert "one successful run so far" in page and "data:image/png" not in page  # no trend from one run
    second = run_report(path, {"x": 3}, progress=False)
    page = (reports_root / "index.html").read_text()
    row = _index_row(page, second["run_id"])
    assert "<b>e</b> 12.5" in row and "<b>b</b> 3.5" in row and "(+8)" in row  # e: 4.5 -> 12.5
    assert "<b>a</b>" not in row and "never-recorded" not in row
    assert row.index("<b>e</b>") < row.index("<b>b</b>"), "declared order"
    folder = reports.ledger().iloc[-1]["folder"]  # relative to the reports folder (the run's is absolute)
    assert f'href="{folder}/metrics.html">all 6 metrics' in row
    metrics_page = (reports_root / folder / "metrics.html").read_text()
    assert all(f"<td>{name}</td>" in metrics_page for name in "abcdef")
    assert metrics_page.count('class="headline"') == 2 and f'href="{second["notebook"]}.html"' in metrics_page
    trend = re.search(r'data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert trend and base64.b64decode(trend.group(1))[:8] == b"\x89PNG\r\n\x1a\n"
    assert "2 successful runs" in page


def test_a_run_without_declaration_shows_its_first_metrics(reports_root, tmp_path):
    run = run_report(_notebook(tmp_path / "plain.ipynb", RECORD), progress=False)
    assert json.loads(run["headline"]) == []
    row = _index_row((reports_root / "index.html").read_text(), run["run_id"])
    shown = re.findall(r"<b>(\w+)</b>", row)
    assert shown == list("abcdef"[:report_index.HEADLINE_FALLBACK])


def test_a_ledger_from_before_headlines_still_renders(reports_root, tmp_path):
    """Rows written without the headline column (as every run before it): the index falls back, and a
    new run appends to the same ledger."""
    from mmwork.store.tables import write_table
    old = {c: "" for c in report_index.LEDGER_COLUMNS if c != "headline"} | {
        "run_id": "old-1", "notebook": "plain", "status": "ok", "started": "2026-01-01T00:00:00+00:00",
        "duration_s": 1.0, "parameters": "{}", "metrics": json.dumps({n: 1.0 for n in "pqrstu"}), "folder": ""}
    reports_root.mkdir()
    write_table(pd.DataFrame([old]), reports_root / "runs.parquet", producer="an older mmwork")
    page = report_index.write_index().read_text()
    assert re.findall(r"<b>(\w+)</b>", _index_row(page, "old-1")) == list("pqrs")
    run_report(_notebook(tmp_path / "plain.ipynb", RECORD), progress=False)
    ledger = reports.ledger()
    assert list(ledger["headline"]) == ["", "[]"] and "data:image/png" in (reports_root / "index.html").read_text()


def test_headline_refuses_a_wall_of_numbers():
    with pytest.raises(MmworkError, match="1 to 6 metric names"):
        reports.headline(*"abcdefg")
    with pytest.raises(MmworkError, match="1 to 6 metric names"):
        reports.headline()


def test_the_terminal_and_the_report_stay_clean(reports_root, tmp_path):
    """A report run from the command line prints neither ipykernel's "running over TCP without
    encryption" warning nor, in the notebook, tqdm's "IProgress not found": the bar is a widget."""
    path = _notebook(tmp_path / "bars.ipynb", "from tqdm.auto import tqdm\nfor _ in tqdm(range(3)):\n    pass")
    result = subprocess.run([sys.executable, "-m", "mmwork", "report", "run", str(path), "--no-progress"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "without encryption" not in result.stderr + result.stdout
    assert "headline metrics {}" in result.stdout  # the terminal shows the headline, not every metric
    run = reports.ledger().iloc[-1]
    nb = nbformat.read(reports_root / run["folder"] / "bars.ipynb", as_version=4)
    outputs = [o for cell in nb.cells for o in cell.get("outputs", [])]
    assert not any("TqdmWarning" in o.get("text", "") for o in outputs)
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
