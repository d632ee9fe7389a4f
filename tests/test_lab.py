"""A real Jupyter seat, as `make lab` opens it: a JupyterLab server on a free loopback port with a
token; a notebook stored through its contents API and run cell by cell on the ``mmwork`` kernel
over the kernel websocket, as the browser does."""
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, output_from_msg

from mmwork.apps.reports import METRIC_MIME, ensure_kernel

pytest.importorskip("jupyterlab", reason="JupyterLab is not installed: pip install -e '.[lab]' (make test does)")
websocket = pytest.importorskip("websocket", reason="websocket-client (a jupyter_server dependency) is missing")


class Server:
    """A running JupyterLab server, spoken to over its REST API with a token."""

    def __init__(self, root, env):
        self.token = uuid.uuid4().hex
        self.runtime = root / "runtime"
        self.log = open(root / "server.log", "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", "--ServerApp.port=0",
             "--allow-root",  # CI containers run as root; the server is on loopback with a token
             f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}"],
            env=env | {"JUPYTER_RUNTIME_DIR": str(self.runtime)}, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            self.url = self._wait_for_url()
        except BaseException:
            self.process.kill()
            raise

    def _wait_for_url(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"jupyter lab exited: {self.log.name}"
            for info in self.runtime.glob("jpserver-*.json"):  # written once the port is bound
                try:
                    url = f"http://127.0.0.1:{json.loads(info.read_text())['port']}"
                    urllib.request.urlopen(url + "/api", timeout=10).close()  # on a loaded machine the file
                    return url                                                # can come before the listener
                except (ValueError, OSError):  # caught half-written, or not accepting connections yet
                    pass
            time.sleep(0.2)
        raise TimeoutError(f"jupyter lab did not start in {timeout} s; see {self.log.name}")

    def request(self, method, path, body=None, token=True):
        request = urllib.request.Request(self.url + path, method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Authorization": f"token {self.token}"} if token else {})
        with urllib.request.urlopen(request, timeout=30) as response:
            data = response.read()
            return json.loads(data) if response.headers.get_content_type() == "application/json" else data.decode()

    def stop(self):
        try:
            self.request("POST", "/api/shutdown")
            self.process.wait(timeout=15)
        except Exception:  # noqa: BLE001 - whatever happened, do not leave it running
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture
def server(tmp_path, monkeypatch):
    # Private Jupyter config/data dirs: only the venv's kernels (sys.prefix) are seen, never a user's.
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))
    ensure_kernel()
    running = Server(tmp_path, dict(os.environ))
    yield running
    running.stop()


def execute(channel, session, code):
    """Run ``code`` on the kernel behind ``channel``; the reply and the outputs as nbformat outputs."""
    msg_id = uuid.uuid4().hex
    channel.send(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "session": session, "username": "test",
                   "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True}}))
    reply, idle, outputs = None, False, []
    while reply is None or not idle:
        msg = json.loads(channel.recv())
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "execute_reply":
            reply = msg["content"]
        elif msg["msg_type"] == "status":
            idle = msg["content"]["execution_state"] == "idle"
        elif msg["msg_type"] in ("stream", "display_data", "execute_result", "error"):
            outputs.append(output_from_msg(msg))
    return reply, outputs


def test_a_notebook_runs_on_the_mmwork_kernel_through_jupyterlab(server):
    with pytest.raises(urllib.error.HTTPError, match="403"):
        server.request("GET", "/api/contents", token=False)  # the token is required
    assert "JupyterLab" in server.request("GET", "/lab")  # the frontend is installed, not just the server
    assert "mmwork" in server.request("GET", "/api/kernelspecs")["kernelspecs"]

    nb = new_notebook(cells=[
        new_code_cell("import sys, mmwork\nprint(sys.executable)"),
        new_code_cell("from mmwork.apps.reports import record\nrecord('answer', 6 * 7)"),
        new_code_cell("import pandas as pd\npd.DataFrame({'film': ['Heat', 'Alien'], 'ndcg': [0.3, 0.2]})"),
        new_code_cell("1 / 0"),
    ])
    server.request("PUT", "/api/contents/seat.ipynb", {"type": "notebook", "format": "json", "content": nb})
    session = server.request("POST", "/api/sessions", {"path": "seat.ipynb", "type": "notebook",
                                                       "kernel": {"name": "mmwork"}})
    stored = nbformat.from_dict(server.request("GET", "/api/contents/seat.ipynb")["content"])
    url = server.url.replace("http", "ws") + f"/api/kernels/{session['kernel']['id']}/channels?session_id={session['id']}"
    channel = websocket.create_connection(url, header=[f"Authorization: token {server.token}"], timeout=60)
    try:
        for cell in stored.cells:
            cell.execution_count, cell.outputs = None, []
            reply, cell.outputs = execute(channel, session["id"], cell.source)
            cell.execution_count = reply["execution_count"]
    finally:
        channel.close()
    server.request("PUT", "/api/contents/seat.ipynb", {"type": "notebook", "format": "json", "content": stored})
    server.request("DELETE", f"/api/sessions/{session['id']}")

    executed = nbformat.from_dict(server.request("GET", "/api/contents/seat.ipynb")["content"])
    nbformat.validate(executed)
    python, metric, table, error = (cell.outputs for cell in executed.cells)
    assert python[0]["text"].strip() == sys.executable  # the kernel is this checkout's venv
    assert metric[0]["data"][METRIC_MIME] == {"name": "answer", "value": 42}
    assert "<table" in table[0]["data"]["text/html"] and "Alien" in table[0]["data"]["text/html"]
    assert error[0]["output_type"] == "error" and error[0]["ename"] == "ZeroDivisionError"
    assert [c.execution_count for c in executed.cells] == [1, 2, 3, 4]
