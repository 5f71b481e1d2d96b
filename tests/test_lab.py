"""A chapter opened and run through a Jupyter server, as ``make lab`` does it.

Starts a headless Jupyter server at the repository root (free local port, random token),
asks its contents API for ``book/appendix_f.md`` as a notebook (jupytext's contents manager
converts the MyST source), runs that notebook at quick scale in a kernel the server starts
for it (kernel ``python3`` of this environment, working directory ``book/``, as JupyterLab
does), checks the chapter's outputs, and stops the server. Where JupyterLab is installed
(``make lab``) the same server also serves its page.
"""
from __future__ import annotations

import datetime
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import pytest

from conftest import REPO_ROOT

pytest.importorskip("jupyter_server", reason="jupyter_server is not installed "
                    "(it comes with the dev extra: pip install -e '.[dev]')")
pytest.importorskip("jupytext", reason="jupytext is not installed (dev extra)")
websocket = pytest.importorskip("websocket", reason="websocket-client (a dependency of "
                                "jupyter_server) is not installed")

CHAPTER = "book/appendix_f.md"  # seconds at quick scale
START_TIMEOUT = 90.0
CELL_TIMEOUT = 300.0
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A Jupyter server process and a tiny client of its REST API."""

    def __init__(self, tmp_path):
        self.port, self.token = _free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, JUPYTER_PREFER_ENV_PATH="1", FGLN_PROGRESS="0",
                   JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
                   JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
                   JUPYTER_DATA_DIR=str(tmp_path / "data"))
        self.log = open(tmp_path / "server.log", "w+", encoding="utf-8")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", "--no-browser",
             "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
             "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
             f"--ServerApp.root_dir={REPO_ROOT}"]
            + (["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
            stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)

    def log_tail(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-3000:]

    def request(self, method: str, path: str, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Authorization": f"token {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            text = resp.read().decode("utf-8")
            return resp.status, (json.loads(text) if text.strip().startswith(("{", "[")) else text)

    def wait_until_up(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"the Jupyter server exited ({self.proc.returncode}):\n"
                            f"{self.log_tail()}")
            try:
                if self.request("GET", "/api/status")[0] == 200:
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.3)
        pytest.fail(f"the Jupyter server did not answer within {START_TIMEOUT:g} s:\n"
                    f"{self.log_tail()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.request("POST", "/api/shutdown")
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture
def server(tmp_path):
    srv = Server(tmp_path)
    try:
        srv.wait_until_up()
        yield srv
    finally:
        srv.stop()


def _execute(ws, session: str, code: str) -> list[dict]:
    """Run ``code`` in the kernel behind ``ws``; the iopub messages it caused."""
    msg_id = uuid.uuid4().hex
    ws.send(json.dumps({
        "header": {"msg_id": msg_id, "username": "test", "session": session,
                   "msg_type": "execute_request", "version": "5.3",
                   "date": datetime.datetime.now(datetime.timezone.utc).isoformat()},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": True,
                    "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}}))
    out, idle, reply = [], False, None
    deadline = time.monotonic() + CELL_TIMEOUT
    while not (idle and reply):
        if time.monotonic() > deadline:
            raise TimeoutError(f"cell did not finish within {CELL_TIMEOUT:g} s:\n{code[:300]}")
        raw = ws.recv()
        if isinstance(raw, bytes):  # messages with binary buffers: not needed here
            continue
        msg = json.loads(raw)
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        if msg["channel"] == "shell" and msg["msg_type"] == "execute_reply":
            reply = msg["content"]
        elif msg["channel"] == "iopub":
            if msg["msg_type"] == "status":
                idle = msg["content"]["execution_state"] == "idle"
            else:
                out.append(msg)
    errors = [m["content"] for m in out if m["msg_type"] == "error"]
    if reply["status"] != "ok" or errors:
        err = errors[0] if errors else reply
        tb = ANSI.sub("", "\n".join(err.get("traceback", [])))
        raise AssertionError(f"{err.get('ename')}: {err.get('evalue')}\n{tb}\n--- cell:\n{code}")
    return out


def test_chapter_opens_as_notebook_and_runs_in_the_servers_kernel(server, tmp_path):
    import nbformat

    # the contents API gives the MyST chapter as a notebook (jupytext's contents manager)
    status, model = server.request("GET", f"/api/contents/{CHAPTER}?type=notebook&content=1")
    assert status == 200 and model["type"] == "notebook", model.get("type")
    nb = nbformat.from_dict(model["content"])
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert nb.metadata.get("jupytext", {}).get("text_representation", {}).get(
        "format_name") == "myst", "not converted by jupytext from the MyST source"
    code = [c for c in nb.cells if c.cell_type == "code"]
    i = next(k for k, c in enumerate(code) if "parameters" in c.metadata.get("tags", []))

    # quick scale, outputs out of the repository: parameters injected after the cell
    # tagged `parameters`, as papermill does
    dirs = {k: str(tmp_path / k) for k in ("fig_dir", "cache_dir", "ledger_dir")}
    params = "\n".join(['scale = "quick"'] + [f"{k} = {v!r}" for k, v in dirs.items()])
    sources = [c.source for c in code[:i + 1]] + [params] + [c.source for c in code[i + 1:]]

    # a session for the chapter starts the kernel in book/, as JupyterLab does
    status, session = server.request("POST", "/api/sessions", {
        "path": CHAPTER, "type": "notebook", "name": CHAPTER.split("/")[-1],
        "kernel": {"name": nb.metadata["kernelspec"]["name"]}})
    assert status == 201, session
    kernel_id, session_id = session["kernel"]["id"], uuid.uuid4().hex
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{server.port}/api/kernels/{kernel_id}/channels"
        f"?session_id={session_id}&token={server.token}", timeout=CELL_TIMEOUT)
    try:
        outputs = [_execute(ws, session_id, src) for src in sources]
        cwd = _execute(ws, session_id, "import os; print(os.getcwd())")
    finally:
        ws.close()
        server.request("DELETE", f"/api/sessions/{session['id']}")

    cwd_text = "".join(m["content"]["text"] for m in cwd if m["msg_type"] == "stream")
    assert os.path.samefile(cwd_text.strip(), REPO_ROOT / "book")
    # the chapter ran at quick scale and wrote its ledger where it was told
    ledger = json.loads((tmp_path / "ledger_dir" / "appendix_f.json").read_text())
    assert ledger["scale"] == "quick" and ledger["claims"]
    # its validation cells printed, and its run line was glued
    printed = [m for out in outputs for m in out if m["msg_type"] == "stream"]
    assert printed, "the chapter printed nothing"
    glued = [m["content"]["data"] for out in outputs for m in out
             if m["msg_type"] == "display_data"
             and m["content"].get("metadata", {}).get("scrapbook", {}).get("name") == "page_run"]
    assert glued and "Run: this page took" in json.dumps(glued[0])


def test_jupyterlab_page_is_served_where_installed(server):
    pytest.importorskip("jupyterlab", reason="JupyterLab is installed by `make lab` "
                        "(extra lab), not by `make test`")
    status, page = server.request("GET", "/lab")
    assert status == 200 and "JupyterLab" in page
