"""Sphinx extension of the book: execute the chapters while Sphinx reads those that are ready.

On ``config-inited``, a :class:`fgln.book.execute.BookExecution` plans what to execute and
starts its workers' server; once the MNIST choice is known to be honoured
(:func:`fgln.mnist.data.check_mnist_choice`), it starts executing, on every core and in a
thread of this process, each page whose source, package code, scale or seed changed since its
last execution (and the pages that read the claims ledgers once those changed), into a
jupyter-cache; this extension points MyST-NB's
cache mode (``execute_notebooks: cache`` in ``_config.yml``) at that cache, so that reading a
page never executes it. Sphinx meanwhile reads the pages in the order in which they are
expected to be ready (the pages without code and the reused ones first, the readers of the
ledgers last; ``env-before-read-docs``), and waits on ``source-read`` until the page it is
about to read has executed. A page that raises stops the build with its traceback, once the
other pages have finished. Sphinx re-reads the pages it knows to be out of date (their
source changed) and, through ``env-get-outdated``, every page that this build may execute.
"""
from __future__ import annotations

from pathlib import Path

from sphinx.errors import ExtensionError
from sphinx.util import logging

logger = logging.getLogger(__name__)


def _page(docname: str) -> str | None:
    """The page name (file stem under ``book/``) of a document, None for any other."""
    folder, _, stem = docname.rpartition("/")
    return stem if folder == "book" else None


def execute_first(app, config) -> None:
    from fgln.book.execute import BookExecution, store_dir
    from fgln.mnist.data import MnistUnavailableError, check_mnist_choice

    root = Path(app.srcdir)
    if getattr(config, "nb_execution_mode", None) != "cache":  # MyST-NB absent, or no cache
        return
    # What may execute is planned, and the workers' server starts importing, first.
    execution = BookExecution(root, log=lambda line: logger.info(f"[execute] {line}"))
    execution.prepare()
    # With FGLN_MNIST=full, stop before executing anything when the full set cannot be had.
    # (Checked here, not in a process of its own: this one imports torch and fgln anyway, for
    # the API appendix.)
    try:
        logger.info(f"MNIST: {check_mnist_choice()} (FGLN_MNIST)")
    except (MnistUnavailableError, ValueError) as exc:
        raise ExtensionError(f"MNIST: {exc}") from None
    app._fgln_read = set()  # the pages Sphinx reads in this build (source-read)
    app._fgln_execution = execution.start()
    config.nb_execution_cache_path = str(store_dir() / "jupyter_cache")


def reread_executed(app, env, added, changed, removed) -> list[str]:
    """The documents whose notebook this build may execute (their outputs may change)."""
    execution = getattr(app, "_fgln_execution", None)
    if execution is None:
        return []
    pages = execution.may_execute
    return [d for d in env.found_docs if _page(d) in pages and d not in added and d not in changed]


def read_ready_first(app, env, docnames: list[str]) -> None:
    """Sphinx reads the pages in the order in which they are expected to be ready."""
    execution = getattr(app, "_fgln_execution", None)
    if execution is None:
        return
    rank = {page: i for i, page in enumerate(execution.order())}
    docnames.sort(key=lambda d: rank.get(_page(d), -1))  # pages without code first (stable)


def wait_for_execution(app, docname: str, source: list[str]) -> None:
    """``source-read``: the page's notebook is executed before MyST-NB reads it."""
    from fgln.book.execute import ExecutionFailed

    execution = getattr(app, "_fgln_execution", None)
    page = _page(docname)
    if execution is None or page is None:
        return
    app._fgln_read.add(page)
    try:
        execution.wait(page)
    except ExecutionFailed as exc:
        raise ExtensionError(str(exc)) from None


def write_executed_notebooks(app, env) -> None:
    """``env-updated``: the whole execution has finished (a failure stops the build here if
    no page read waited on it), and ``<build>/jupyter_execute/<page>.ipynb`` is the executed
    notebook. MyST-NB's cache mode writes the page's source notebook there, without its
    outputs, whenever it reads the page: the pages read in this build are written again, and
    any page whose file is missing; the others keep the file of the build that read them."""
    import nbformat

    from fgln.book.execute import ExecutionFailed, executed_notebook

    execution = getattr(app, "_fgln_execution", None)
    if execution is None:
        return
    try:
        pages = set(execution.result())
    except ExecutionFailed as exc:
        raise ExtensionError(str(exc)) from None
    out = Path(app.outdir).parent / "jupyter_execute"
    read = getattr(app, "_fgln_read", set())
    for docname in sorted(env.found_docs):
        target = out / f"{docname}.ipynb"
        if _page(docname) not in pages or (_page(docname) not in read and target.is_file()):
            continue
        nb = executed_notebook(Path(app.srcdir) / f"{docname}.md")
        if nb is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(nbformat.writes(nb), encoding="utf-8")


def setup(app):
    app.connect("config-inited", execute_first, priority=900)
    app.connect("env-get-outdated", reread_executed)
    app.connect("env-before-read-docs", read_ready_first)
    app.connect("source-read", wait_for_execution, priority=100)
    app.connect("env-updated", write_executed_notebooks)
    # a parallel read would wait in processes forked without the executing thread
    return {"parallel_read_safe": False, "parallel_write_safe": True}
