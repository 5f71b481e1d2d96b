"""The book's executor (fgln.book.execute): parallel, and only what changed.

A toy book of three notebook pages (two chapters that write ledgers, one page that reads
them) is executed twice: the first time longest first by the times recorded with the book,
the second time nothing runs; editing one chapter's prose
re-executes that chapter only, changing what it finds re-executes it and the reader; a
chapter that raises fails with its traceback while the other is still executed and cached.
Also: two processes needing the same cache entry compute it once.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

import pytest

from fgln.book import execute as ex
from fgln.book.cache import cached, code_version

HEADER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# {title}

```{{code-cell}} ipython3
{code}
```
"""

# The toy chapters write their ledgers by hand, with what a chapter's ledger records (its
# source, the package's code version, scale and seed), so that no kernel imports torch.
WRITER = """import hashlib, json, os
{extra}
sha = hashlib.sha256(open("{name}.md", "rb").read()).hexdigest()[:16]
os.makedirs(os.environ["FGLN_LEDGER_DIR"], exist_ok=True)
with open(os.path.join(os.environ["FGLN_LEDGER_DIR"], "{name}.json"), "w") as fh:
    json.dump(dict(chapter="{name}", scale="quick", seed=0, source_sha=sha,
                   code_version=os.environ["TOY_CODE"], claims={claims!r}), fh)"""

READER = """import os
print(sorted(os.listdir(os.environ["FGLN_LEDGER_DIR"])))  # a real reader calls load_ledgers("""


def _book(root: Path, extra_b: str = "", claims_b: tuple[str, ...] = ("b1",)) -> None:
    (root / "book").mkdir(exist_ok=True)
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: book/r\nparts:\n  - caption: The paper\n    chapters:\n"
        "      - file: book/a\n      - file: book/b\n      - file: book/plain\n"
        "  - caption: Reference\n    chapters:\n      - file: book/api\n")
    for name, extra, claims in (("a", "", ["a1"]), ("b", extra_b, list(claims_b))):
        (root / "book" / f"{name}.md").write_text(
            HEADER.format(title=name, code=WRITER.format(name=name, extra=extra, claims=claims)))
    (root / "book" / "r.md").write_text(HEADER.format(title="r", code=READER))
    (root / "book" / "plain.md").write_text("# A page without code\n")
    (root / "book" / "api.md").write_text(HEADER.format(title="api", code="1/0"))


@pytest.fixture
def toy(tmp_path, monkeypatch):
    from fgln.book import forked_kernels

    monkeypatch.setattr(forked_kernels, "PRELOAD", ("json",))  # the toy pages import no torch
    _book(tmp_path)
    monkeypatch.setenv("FGLN_SCALE", "quick")
    monkeypatch.setenv("FGLN_EXEC_DIR", str(tmp_path / "store"))
    monkeypatch.setenv("FGLN_LEDGER_DIR", str(tmp_path / "ledger"))
    monkeypatch.setenv("TOY_CODE", code_version())
    return tmp_path


def test_pages_of_the_book_are_split_into_writers_and_readers(toy):
    assert ex.book_pages(toy) == (["a", "b"], ["r"])


def test_only_what_changed_is_executed(toy):
    # a new store starts the longest page first by the times recorded with the book (one
    # worker: the order of the log is the order of execution)
    (toy / "book" / "_data").mkdir()
    (toy / "book" / "_data" / "execution_seconds.json").write_text(
        json.dumps({"quick": {"a": 1.0, "b": 100.0}, "paper": {"a": 100.0, "b": 1.0}}))
    lines: list[str] = []
    first = ex.execute_book(toy, jobs=1, log=lines.append)
    assert first == {"a": "executed", "b": "executed", "r": "executed"}
    assert [line.split("] ")[1].split(":")[0] for line in lines] == ["b", "a", "r"]
    assert ex.execute_book(toy, jobs=2, log=lines.append) == dict.fromkeys(first, "cached")
    _book(toy, extra_b="x = 1")  # chapter b edited, same findings: b alone runs again
    assert ex.execute_book(toy, jobs=2, log=lines.append) == {
        "a": "cached", "b": "executed", "r": "cached"}
    _book(toy, extra_b="x = 1", claims_b=("b1", "b2"))  # b finds more: b and the reader
    assert ex.execute_book(toy, jobs=2, log=lines.append) == {
        "a": "cached", "b": "executed", "r": "executed"}
    (toy / "ledger" / "a.json").unlink()  # a lost ledger is written again
    assert ex.execute_book(toy, jobs=2, log=lines.append)["a"] == "executed"
    state = json.loads((toy / "store" / "state.json").read_text())
    assert set(state["keys"]) == {"a", "b", "r"} and all(s > 0 for s in state["seconds"].values())


def test_kernels_started_as_jupyter_does_where_forking_is_off(toy, monkeypatch):
    """FGLN_FORK_KERNELS=0 (as where fork or the kernelspec does not allow it): every page
    runs in a kernel that jupyter_client launches, with the same outcome; with forking on,
    the kernels are forks of workers that imported the preloaded modules (here one that no
    new kernel imports), which the same page then finds already imported."""
    from fgln.book import forked_kernels

    monkeypatch.setattr(forked_kernels, "PRELOAD", ("colorsys",))
    _book(toy, extra_b='import sys\nassert "colorsys" not in sys.modules, "a kernel was forked"')
    monkeypatch.setenv("FGLN_FORK_KERNELS", "0")
    assert ex.execute_book(toy, jobs=2, log=lambda line: None) == {
        "a": "executed", "b": "executed", "r": "executed"}
    monkeypatch.delenv("FGLN_FORK_KERNELS")  # the same page with forking on: the book fails
    (toy / "store").rename(toy / "store-plain")
    with pytest.raises(ex.ExecutionFailed, match="a kernel was forked"):
        ex.execute_book(toy, jobs=2, log=lambda line: None)


BLOCKER = """import os
from fgln.book.execute import BookExecution

if os.environ.get("TOY_BLOCKER_PID") == str(os.getpid()):  # the build, while importing this
    BookExecution(os.environ["TOY_ROOT"], jobs=2, log=lambda line: None).start().result()
"""


def test_pages_execute_while_the_building_process_imports(toy, monkeypatch):
    """Sphinx's main thread imports modules while the execution's thread starts the workers.
    Here the build runs while a module is half imported, and a page imports that module: a
    worker forked from the building process would find it half imported, its lock held by a
    thread it does not have, and wait until the cell's timeout; the fork server's workers
    import it as a new kernel does."""
    import importlib
    import os

    (toy / "book" / "toy_blocker.py").write_text(BLOCKER)
    _book(toy, extra_b="import toy_blocker")
    monkeypatch.syspath_prepend(str(toy / "book"))
    monkeypatch.setenv("TOY_BLOCKER_PID", str(os.getpid()))
    monkeypatch.setenv("TOY_ROOT", str(toy))
    monkeypatch.setattr(ex, "TIMEOUT", 30)  # a page that waits fails within 30 s
    try:
        importlib.import_module("toy_blocker")  # raises ExecutionFailed if a page failed
    finally:
        sys.modules.pop("toy_blocker", None)
    assert json.loads((toy / "ledger" / "b.json").read_text())["chapter"] == "b"


def test_a_page_that_raises_fails_the_book_with_its_traceback(toy):
    _book(toy, extra_b="raise ValueError('no such luck')")
    lines: list[str] = []
    with pytest.raises(ex.ExecutionFailed, match="no such luck"):
        ex.execute_book(toy, jobs=2, log=lines.append)
    assert any("b: FAILED" in line for line in lines)
    state = json.loads((toy / "store" / "state.json").read_text())
    assert "a" in state["keys"] and "b" not in state["keys"]  # a is kept, b runs next time


def test_a_build_reads_each_page_once_it_is_ready(toy, monkeypatch):
    """BookExecution in a thread: the pages it may execute and the order in which they will
    be ready are known before it starts (two workers: the shorter page finishes first; one
    worker: the longer starts and finishes first); prepare() starts the workers' server;
    wait() returns once a page has executed; a second build executes nothing (and starts no
    server) and every page is ready at once."""
    from multiprocessing import forkserver

    (toy / "book" / "_data").mkdir()
    (toy / "book" / "_data" / "execution_seconds.json").write_text(
        json.dumps({"quick": {"a": 5.0, "b": 1.0}}))
    assert ex.BookExecution(toy, jobs=1, log=lambda line: None).order() == ["a", "b", "r"]
    run = ex.BookExecution(toy, jobs=2, log=lambda line: None)
    assert run.may_execute == {"a", "b", "r"} and run.order() == ["b", "a", "r"]
    started: list[bool] = []
    with pytest.MonkeyPatch.context() as mp_:
        mp_.setattr(forkserver, "ensure_running", lambda: started.append(True))
        run.prepare()  # the workers' server starts before the execution does
    assert started == [True]
    run.start()
    run.wait("a")
    assert run.outcome["a"] == "executed"
    assert run.result() == {"a": "executed", "b": "executed", "r": "executed"}
    again = ex.BookExecution(toy, jobs=2, log=lambda line: None)
    assert again.may_execute == set() and again.order() == ["a", "b", "r"]
    monkeypatch.setattr(forkserver, "ensure_running", lambda: started.append(False))
    again.prepare().start().wait("r")  # nothing to execute: no server
    assert started == [True]
    assert again.result() == dict.fromkeys("abr", "cached")


def test_a_page_that_raises_stops_the_reader_waiting_on_any_page(toy):
    _book(toy, extra_b="raise ValueError('no such luck')")
    run = ex.BookExecution(toy, jobs=2, log=lambda line: None).start()
    with pytest.raises(ex.ExecutionFailed, match="no such luck"):
        run.wait("r")  # the reader never runs: its wait reports b's failure
    assert "a" in run.outcome and "r" not in run.outcome


def _extension():
    import importlib.util

    from conftest import BOOK_DIR

    path = BOOK_DIR / "_ext" / "parallel_execution.py"
    spec = importlib.util.spec_from_file_location("parallel_execution_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sphinx_reads_ready_pages_first_and_waits_for_the_others():
    """The extension's hooks against a stand-in execution: pages without code first, then
    the execution's order; source-read waits on the page and turns a failure into the
    build's error; the pages that may execute are re-read."""
    from types import SimpleNamespace

    from sphinx.errors import ExtensionError

    ext = _extension()
    waited: list[str] = []

    class Execution:
        may_execute = {"b", "r"}

        def order(self):
            return ["a", "b", "r"]

        def wait(self, page):
            waited.append(page)
            if page == "r":
                raise ex.ExecutionFailed("pages failed to execute:\nr: boom")

    app = SimpleNamespace(_fgln_execution=Execution(), _fgln_read=set())
    docs = ["book/r", "book/api/book", "book/b", "book/plain", "book/a"]
    ext.read_ready_first(app, None, docs)
    assert docs == ["book/api/book", "book/plain", "book/a", "book/b", "book/r"]
    ext.wait_for_execution(app, "book/b", [""])
    with pytest.raises(ExtensionError, match="r: boom"):
        ext.wait_for_execution(app, "book/r", [""])
    ext.wait_for_execution(app, "book/api/book", [""])  # not a page of the execution
    assert waited == ["b", "r"] and app._fgln_read == {"b", "r"}
    env = SimpleNamespace(found_docs=set(docs))
    assert sorted(ext.reread_executed(app, env, set(), {"book/b"}, set())) == ["book/r"]


def test_the_executed_notebooks_of_the_pages_read_are_written(toy):
    """env-updated writes <build>/jupyter_execute/<page>.ipynb with its outputs for the pages
    read in this build and the pages without a file; another page keeps its file."""
    from types import SimpleNamespace

    run = ex.BookExecution(toy, jobs=2, log=lambda line: None).start()
    out = toy / "_build" / "jupyter_execute" / "book"
    out.mkdir(parents=True)
    (out / "b.ipynb").write_text("kept")
    app = SimpleNamespace(_fgln_execution=run, _fgln_read={"a"}, srcdir=str(toy),
                          outdir=str(toy / "_build" / "html"),
                          config=SimpleNamespace(nb_execution_mode="cache"))
    env = SimpleNamespace(found_docs={"book/a", "book/b", "book/r", "book/plain"})
    _extension().write_executed_notebooks(app, env)
    assert (out / "b.ipynb").read_text() == "kept"
    assert not (out / "plain.ipynb").exists()
    for page in ("a", "r"):
        nb = json.loads((out / f"{page}.ipynb").read_text())  # executed: numbered cells
        assert [c.get("execution_count") for c in nb["cells"] if c["cell_type"] == "code"] == [1]


def _count_and_cache(folder: str, marker: str) -> None:
    def compute():
        with open(marker, "a") as fh:
            fh.write("x")
        time.sleep(0.5)
        return {"v": 1.0}

    cached("shared", {"k": 1}, compute, cache_dir=folder)


def test_two_processes_compute_a_shared_entry_once(tmp_path):
    marker = tmp_path / "computed"
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_count_and_cache, args=(str(tmp_path), str(marker)))
             for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0]
    assert marker.read_text() == "x"


def test_every_page_of_the_book_has_a_recorded_time():
    """book/_data/execution_seconds.json names every notebook page at both scales."""
    from conftest import BOOK_DIR

    record = json.loads((BOOK_DIR / "_data" / "execution_seconds.json").read_text())
    writers, readers = ex.book_pages(BOOK_DIR.parent)
    for scale in ("paper", "quick"):
        assert set(writers + readers) <= set(record[scale]), scale
        assert all(v > 0 for v in record[scale].values())


FORKED = r"""
import json, os, sys
os.environ.pop("MPLBACKEND", None)
import matplotlib.pyplot  # imported before the worker prepares itself, as in the build
import nbformat
from nbclient import NotebookClient
from fgln.book.forked_kernels import ForkedKernelManager, can_fork, preload

assert can_fork("python3")
preload(1, ("numpy", "torch", "matplotlib.pyplot"))
cells = [
    "import multiprocessing, os, sys, torch, matplotlib.pyplot as plt\n"
    "from ipykernel.kernelapp import IPKernelApp\n"
    "print(multiprocessing.current_process().daemon, multiprocessing.current_process().name,"
    " torch.get_num_threads(), os.getcwd(), sys.path[0], os.getpid(), os.getsid(0),"
    " IPKernelApp.instance().parent_handle == os.getppid())",
    "print('secret' in globals()); secret = 1",
    "plt.plot([1, 2]); plt.show()",
]
out = []
for _ in range(2):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "p", "language": "python"}
    NotebookClient(nb, kernel_manager_class=ForkedKernelManager, timeout=120,
                   resources={"metadata": {"path": sys.argv[1]}}).execute()
    out.append([[o.get("text") or sorted(o.get("data", {})) for o in c.outputs] for c in nb.cells])
report = {"pid": os.getpid(), "out": out}
"""


@pytest.fixture(scope="module")
def forked(tmp_path_factory):
    """The report of FORKED then IN_FORK, run in one new interpreter (folder: ``where``)."""
    import subprocess
    import sys

    where = tmp_path_factory.mktemp("forked")
    res = subprocess.run([sys.executable, "-c", FORKED + IN_FORK, str(where)],
                         capture_output=True, text=True, timeout=300, cwd=where)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "--existing" not in res.stdout  # a kernel with a parent prints no banner
    return {**json.loads(res.stdout.strip().splitlines()[-1]), "where": str(where)}


def test_forked_kernels_run_pages_as_new_kernels_do(forked):
    """A kernel forked from a worker that imported torch and matplotlib first: a process of
    its own (its own session, not a daemonic worker, one torch thread, in the page's folder,
    watching its parent as a launched kernel does), with nothing of the previous page, that
    shows its figures inline; no kernel outlives its page."""
    import psutil

    report, tmp_path = forked["kernels"], forked["where"]
    pids = set()
    for cells in report["out"]:
        daemon, name, threads, cwd, path0, pid, sid, watched = cells[0][0].split()
        assert (daemon, name, threads, watched) == ("False", "MainProcess", "1", "True")
        assert cwd == path0 == tmp_path
        assert int(pid) != report["pid"] and sid == pid  # a new process leading its session
        pids.add(int(pid))
        assert cells[1] == ["False\n"]  # the previous page's globals are not there
        assert "image/png" in cells[2][0]
    assert len(pids) == 2 and not any(psutil.pid_exists(p) for p in pids)


def test_no_fork_where_the_kernelspec_is_another_interpreter(monkeypatch):
    from jupyter_client.kernelspec import KernelSpecManager

    from fgln.book import forked_kernels

    spec = KernelSpecManager().get_kernel_spec("python3")
    assert forked_kernels.can_fork("python3")
    monkeypatch.setenv("FGLN_FORK_KERNELS", "0")
    assert not forked_kernels.can_fork("python3")
    monkeypatch.delenv("FGLN_FORK_KERNELS")
    spec.argv = ["/usr/bin/python3-elsewhere", *spec.argv[1:]]
    monkeypatch.setattr(KernelSpecManager, "get_kernel_spec", lambda self, name: spec)
    assert not forked_kernels.can_fork("python3")


IN_FORK = r"""
import signal
from fgln.book.forked_kernels import BlockingForkedKernelManager, call_in_fork

def work(x):
    os.environ["FGLN_LEAK"] = "1"
    os.chdir("/")
    return x * 2, os.getpid()

def boom():
    raise ValueError("boom")

def unpicklable():
    return lambda: 0

def killed():
    os.kill(os.getpid(), signal.SIGKILL)

def exits():
    sys.exit(3)

value, child = call_in_fork(work, 21)
out = {"pid": os.getpid(), "value": value, "child": child, "cwd": os.getcwd(),
       "leak": "FGLN_LEAK" in os.environ}
for fn in (boom, unpicklable, killed, exits):
    try:
        call_in_fork(fn)
        out[fn.__name__] = "returned"
    except Exception as exc:
        out[fn.__name__] = f"{type(exc).__name__}: {exc}"

# nbval's blocking kernel manager, forking
km = BlockingForkedKernelManager(kernel_name="python3")
km.start_kernel(cwd=sys.argv[1])
kc = km.client()
kc.start_channels()
kc.wait_for_ready(timeout=60)
text = []
kc.execute_interactive("import os; print(os.getppid(), os.getcwd())", timeout=60,
                       output_hook=lambda m: text.append(m["content"].get("text", "")))
out["kernel"], out["kernel_says"] = km.provisioner.pid, "".join(text).split()
kc.stop_channels()
km.shutdown_kernel()
print(json.dumps({"kernels": report, "work": out}))
"""


def test_work_and_kernels_forked_from_this_process(forked):
    """``call_in_fork`` returns the child's result and raises its exception (or a clear one
    when the child dies or its result cannot be pickled), and nothing the child changed is
    seen here; ``BlockingForkedKernelManager`` (nbval's) forks its kernel from this process
    into the folder asked for, and shuts it down."""
    import psutil

    out, tmp_path = forked["work"], forked["where"]
    assert out["value"] == 42 and out["child"] != out["pid"]
    assert out["cwd"] == tmp_path and not out["leak"]
    assert out["boom"] == "ValueError: boom"
    assert out["unpicklable"].startswith("ChildProcessError: the result of unpicklable")
    assert out["killed"].startswith("ChildProcessError: the fork computing killed ended")
    assert out["exits"] == "ChildProcessError: exits ended the fork by SystemExit(3)"
    assert out["kernel_says"] == [str(out["pid"]), tmp_path]
    assert out["kernel"] != out["pid"] and not psutil.pid_exists(out["kernel"])
