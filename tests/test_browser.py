"""The reports as a reader sees them: a generated report and the index page opened in headless
Chromium (Debian's package; no browser download), driven over the DevTools protocol. Every figure
decodes, no script fails, the tables are there, and the index's links lead to the reports."""
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from mmwork import MmworkError
from mmwork.apps import reports

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here: apt-get install chromium "
                                                         "(.ci/run does when it runs as root)")
websocket = pytest.importorskip("websocket", reason="websocket-client (from the lab extra) talks to Chromium")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
         "--disable-component-update", "--disable-sync", "--remote-debugging-port=0"]
# What the page shows once loaded: every <img> (decoded size), the tables, the links, the text.
FACTS = """JSON.stringify({
  images: Array.from(document.images).map(i => ({complete: i.complete, width: i.naturalWidth})),
  tables: document.querySelectorAll("table").length,
  links: Array.from(document.links).map(a => a.href),
  text: document.body.innerText})"""


class Chromium:
    """One headless Chromium page, driven over the DevTools protocol."""

    def __init__(self, profile: Path):
        self.process = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self.socket = websocket.create_connection(self._page_url(profile), timeout=60, suppress_origin=True)
        except BaseException:
            self.process.kill()
            raise
        self.calls, self.events = 0, []
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")

    def _page_url(self, profile: Path) -> str:
        port_file, deadline = profile / "DevToolsActivePort", time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            assert self.process.poll() is None and time.monotonic() < deadline, "chromium did not start"
            time.sleep(0.05)
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port_file.read_text().split()[0]}/json/list"))
        return next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"]

    def call(self, method, **params):
        self.calls += 1
        self.socket.send(json.dumps({"id": self.calls, "method": method, "params": params}))
        return self._until(lambda m: m.get("id") == self.calls)["result"]

    def _until(self, found):
        while True:
            message = json.loads(self.socket.recv())
            if found(message):
                return message
            self.events.append(message)

    def open(self, url: str) -> dict:
        """Load ``url``; what it shows (:data:`FACTS`) and the errors it raised while loading."""
        self.events.clear()
        self.call("Page.navigate", url=url)
        self._until(lambda m: m.get("method") == "Page.loadEventFired")
        facts = json.loads(self.call("Runtime.evaluate", expression=FACTS, returnByValue=True)["result"]["value"])
        facts["errors"] = [e["params"] for e in self.events if e.get("method") == "Runtime.exceptionThrown"
                           or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] == "error")
                           or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error"
                               and e["params"]["entry"].get("url", "").startswith("file:"))]  # offline: CDNs fail
        return facts

    def close(self):
        self.socket.close()
        self.process.terminate()
        self.process.wait(timeout=30)


NOTEBOOK = [("parameters", "rows = 40\nbroken = False"),
            ("", "import numpy as np, pandas as pd\nfrom mmwork.apps import plots\nfrom mmwork.apps.reports import record\n"
                 "frame = pd.DataFrame({'category': np.repeat(['digits', 'letters'], rows // 2),\n"
                 "                      'energy': np.random.default_rng(0).normal(size=rows)})\n"
                 "record('rows', len(frame))\nplots.feature_box(frame, 'energy', 'category');"),
            ("", "frame.groupby('category').energy.describe()"),
            ("", "assert not broken, 'broken on purpose'")]


@pytest.fixture(scope="module")
def report_runs(tmp_path_factory):
    """One successful and one failed run of a small report with a figure and a table."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook
    folder = tmp_path_factory.mktemp("browser")
    path = folder / "figures.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell(src, metadata={"tags": [tag]} if tag else {})
                                       for tag, src in NOTEBOOK]), path)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMWORK_REPORTS", str(folder / "reports"))
        ok = reports.run_report(path, {"rows": 60}, progress=False)
        with pytest.raises(MmworkError, match="broken on purpose"):
            reports.run_report(path, {"broken": True}, progress=False)
        yield folder / "reports", ok


@pytest.fixture(scope="module")
def browser():
    with tempfile.TemporaryDirectory() as profile:
        chromium = Chromium(Path(profile))
        yield chromium
        chromium.close()


def test_index_lists_both_runs_and_its_links_resolve(report_runs, browser):
    folder, ok = report_runs
    index = browser.open((folder / "index.html").as_uri())
    assert not index["errors"], index["errors"]
    assert index["tables"] == 1 and ok["run_id"] in index["text"] and "broken on purpose" in index["text"]
    assert "rows 60" in index["text"] and "rows 40 (-20)" in index["text"]  # the change since the last ok run
    assert len(index["links"]) == 4  # a report and a folder per run
    for link in index["links"]:
        assert Path(unquote(urlparse(link).path)).exists(), f"index links to a missing {link}"


def test_the_report_shows_its_figure_and_table_without_errors(report_runs, browser):
    folder, ok = report_runs
    index = browser.open((folder / "index.html").as_uri())
    report = browser.open(next(link for link in index["links"] if link.endswith(ok["html"])))  # follow the link
    assert not report["errors"], report["errors"]
    assert len(report["images"]) == 1 and all(i["complete"] and i["width"] > 100 for i in report["images"])
    assert report["tables"] >= 1 and "letters" in report["text"]  # the describe() table
    assert "rows = 60" in report["text"]  # the injected parameters are shown


def test_a_failed_report_shows_the_error(report_runs, browser):
    folder, _ = report_runs
    failed = reports.ledger().iloc[-1]
    report = browser.open((folder / failed["html"]).as_uri())
    assert failed["status"] == "failed" and "AssertionError" in report["text"] and "broken on purpose" in report["text"]
    assert len(report["images"]) == 1 and report["images"][0]["width"] > 100  # the cells before it still show
