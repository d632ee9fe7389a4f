"""Papermill reports: every notebook runs with tiny parameters, records its metrics and explains each
result; parameter checks, the failing-cell path, concurrent runs and ledger writers, the index page."""
import ast
import json
import os
import subprocess
import sys
import threading

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from mmwork import MmworkError, datasets
from mmwork.apps import report_index, reports
from mmwork.models.recommenders import MODELS
from mmwork.apps.reports import check_parameters, find_notebook, run_report


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A private data root (with the data sets fetched once) and reports folder."""
    root = tmp_path_factory.mktemp("reports-env")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMWORK_DATA", str(root / "data"))
        mp.setenv("MMWORK_REPORTS", str(root / "reports"))
        for name in ("movielens-100k", "speech-prompts", "fashion-mnist"):
            datasets.get(name)
        yield root


def _tiny_notebook(folder, body="x = 1\nprint(x)", extra=None):
    nb = new_notebook()
    params = new_code_cell("x = 1\nname = 'a'\nrate = 0.5\nflag = False")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, new_code_cell("from mmwork.apps.reports import record\nrecord('x2', x * 2)"), new_code_cell(body)]
    nb.cells += [new_code_cell(extra)] if extra else []
    path = folder / "tiny.ipynb"
    nbformat.write(nb, path)
    return path


def _unexplained(run) -> list[int]:
    """Cells of the executed notebook that show a result with no note (a markdown cell of at least
    20 words) right after them."""
    nb = nbformat.read(reports.reports_dir() / run["folder"] / f"{run['notebook']}.ipynb", as_version=4)
    cells = nb.cells + [nbformat.v4.new_markdown_cell("")]
    return [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code" and cell.outputs
            and not (cells[i + 1].cell_type == "markdown" and len(cells[i + 1].source.split()) >= 20)]


def test_features_notebook_records_its_metrics(env):
    run = run_report("01-features", {"audio_limit": 24, "image_limit": 40, "text_limit": 200, "cnn": False,
                                     "minilm": False, "scheduler": "threads"}, progress=False)
    metrics = json.loads(run["metrics"])
    assert run["status"] == "ok" and metrics["rows_extracted"] == 24 + 40 + 200 and metrics["items_failed"] == 0
    assert metrics["linear_probe_accuracy_hog"] > 0.3  # 10 classes: chance is 0.1
    assert len(run["figures"]) >= 5
    html = (reports.reports_dir() / run["html"]).read_text()
    assert "MFCC energy by prompt category" in html and "data:image/png;base64" in html
    assert not _unexplained(run), "results without a note explaining them"


def test_recommenders_notebook_records_ndcg(env):
    run = run_report("02-recommenders", {"models": ["pop", "ease", "content"], "cold_start": True,
                                         "features": ["text:tfidf_lsa"]}, progress=False)
    metrics = json.loads(run["metrics"])
    assert metrics["recbole/ease/ndcg@10"] > metrics["recbole/pop/ndcg@10"] + 0.1
    assert metrics["cold-items/content/ndcg@10"] > metrics["cold-items/pop/ndcg@10"]
    assert not _unexplained(run), "results without a note explaining them"


def test_recommenders_notebook_refuses_unknown_models(env):
    with pytest.raises(MmworkError, match=r"unknown model\(s\) \['knn'\]; choose from"):
        run_report("02-recommenders", {"models": ["pop", "knn"]}, progress=False)
    failed = reports.ledger().iloc[-1]
    assert failed["notebook"] == "02-recommenders" and failed["status"] == "failed"
    assert json.loads(failed["metrics"]) == {}  # stopped before anything was trained
    assert "unknown model(s)" in (reports.reports_dir() / failed["html"]).read_text()


def test_explore_notebook_runs(env):
    run = run_report("04-explore", {"text_query": "a love story"}, progress=False)
    metrics = json.loads(run["metrics"])
    assert metrics["genres"] == 19 and metrics["items_longer_than_min_duration"] > 100
    assert not _unexplained(run), "results without a note explaining them"


def test_every_notebook_is_stored_clean_with_a_parameters_cell():
    for path in sorted(reports.notebooks_dir().glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{path.name} has outputs"
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        assigned = [t.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign) for t in node.targets]
        assert list(reports.notebook_parameters(path)) == assigned, f"Papermill skips a line of {path.name}'s parameters"
        # the first screen reads the figures against chance; the index shows the 3-6 metrics a notebook declares
        assert "chance" in nb.cells[0].source, f"{path.name}'s first cell does not say what chance is"
        declared = [c for c in nb.cells if "headline" in c.metadata.get("tags", [])]
        assert len(declared) == 1 and "headline(" in declared[0].source, f"{path.name} declares no headline"
    defaults = reports.notebook_parameters(find_notebook("02-recommenders"))
    assert defaults["k"] == 10 and defaults["features"] is None and defaults["model_params"] == {}
    assert set(defaults["models"]) <= set(MODELS), "the nightly report's default models must all exist"


def test_parameters_are_read_as_papermill_reads_them(tmp_path):
    nb = new_notebook()
    nb.cells = [new_code_cell("models = [\n    'pop',  # the floor\n    'ease',\n]\nepochs: int = 5  # training epochs\n"
                              "started = time.time()")]
    nb.cells[0].metadata["tags"] = ["parameters"]
    nbformat.write(nb, tmp_path / "multi.ipynb")
    assert reports.notebook_parameters(tmp_path / "multi.ipynb") == {
        "models": ["pop", "ease"], "epochs": 5, "started": None}  # None: not a literal, any value goes
    nb.cells[0].metadata["tags"] = []
    nbformat.write(nb, tmp_path / "untagged.ipynb")
    with pytest.raises(MmworkError, match="no cell tagged 'parameters'"):
        reports.notebook_parameters(tmp_path / "untagged.ipynb")


def test_parameters_are_checked_before_anything_runs(env, tmp_path):
    path = _tiny_notebook(tmp_path)
    with pytest.raises(MmworkError, match="no parameter.*'y'"):
        run_report(path, {"y": 2})
    with pytest.raises(MmworkError, match="should be a int"):
        run_report(path, {"x": "two"})
    with pytest.raises(MmworkError, match="should be a bool"):
        run_report(path, {"flag": 1})
    assert check_parameters(path, {"rate": 1})["rate"] == 1  # an int where a float is expected is fine
    with pytest.raises(MmworkError, match="no notebook"):
        find_notebook("99-nothing")
    assert not (reports.reports_dir() / "tiny").exists(), "a rejected run leaves no folder"
    assert reports.read_parameters([("x", "5"), ("name", "b")]) == {"x": 5, "name": "b"}


def test_a_failing_cell_is_loud_and_still_reported(env, tmp_path):
    path = _tiny_notebook(tmp_path, body="raise ValueError('broken on purpose')")
    result = subprocess.run([sys.executable, "-m", "mmwork", "report", "run", str(path), "-p", "x", "3",
                             "--no-progress"], capture_output=True, text=True, env=os.environ | {"CI": "true"})
    assert result.returncode == 2 and "broken on purpose" in result.stderr
    ledger = reports.ledger()
    failed = ledger[ledger["notebook"] == "tiny"].iloc[-1]
    assert failed["status"] == "failed" and "broken on purpose" in failed["error"]
    assert json.loads(failed["metrics"]) == {"x2": 6}  # metrics recorded before the failure are kept
    html = (reports.reports_dir() / failed["html"]).read_text()
    assert "broken on purpose" in html
    index = (reports.reports_dir() / "index.html").read_text()
    assert failed["run_id"] in index and "failed" in index


def test_two_concurrent_runs_never_share_outputs(env, tmp_path):
    path = _tiny_notebook(tmp_path, body="import time; time.sleep(1)")
    before = len(reports.ledger())
    results, errors = [], []

    def go():
        try:
            results.append(run_report(path, {"x": 7}, progress=False))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len({r["run_id"] for r in results}) == 2
    assert len({r["folder"] for r in results}) == 2
    ledger = reports.ledger()
    assert len(ledger) == before + 2 and set(ledger["run_id"].iloc[-2:]) == {r["run_id"] for r in results}
    comparison = reports.compare(results[0]["run_id"], results[1]["run_id"])
    assert comparison.set_index("metric").loc["x2", "difference"] == 0


def test_concurrent_processes_never_lose_ledger_rows(env):
    """Four processes append five rows each under the ledger lock: all twenty rows are kept."""
    before = len(reports.ledger())
    code = ("import sys\nfrom mmwork.apps import report_index\nfor i in range(5):\n    with report_index.ledger_lock():\n"
            "        report_index.append_run({c: '' for c in report_index.LEDGER_COLUMNS} | {'run_id': f'{sys.argv[1]}-{i}', "
            "'duration_s': 0.0, 'parameters': '{}', 'metrics': '{}'})")
    workers = [subprocess.Popen([sys.executable, "-c", code, f"p{n}"]) for n in range(4)]
    assert all(w.wait(timeout=120) == 0 for w in workers)
    ledger = reports.ledger()
    assert len(ledger) == before + 20
    assert {f"p{n}-{i}" for n in range(4) for i in range(5)} <= set(ledger["run_id"])


def test_the_index_escapes_what_runs_recorded(env):
    row = {c: "" for c in reports.LEDGER_COLUMNS} | {
        "run_id": "r-<b>1</b>", "notebook": "evil", "status": "failed", "duration_s": 1.0, "html": "evil/x.html",
        "folder": "evil", "parameters": json.dumps({"q": "</code><script>alert(1)</script>"}), "metrics": "{}",
        "error": "ValueError: <img src=x onerror=alert(2)>"}
    with report_index.ledger_lock():
        report_index.append_run(row)
        page = reports.write_index().read_text()
    assert "<script>alert" not in page and "<img src=x" not in page and "<b>1</b>" not in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page and "r-&lt;b&gt;1&lt;/b&gt;" in page
