"""Sphinx extension of the book: execute the chapters before Sphinx reads them.

On ``config-inited``, after checking that the MNIST choice can be honoured
(:func:`fgln.mnist.data.check_mnist_choice`), :func:`fgln.book.execute.execute_book`
executes, on every core, each page whose source, package code, scale or seed changed since
its last execution (and the pages that read the claims ledgers once those changed), into a
jupyter-cache; this extension then points MyST-NB's cache mode (``execute_notebooks: cache``
in ``_config.yml``) at that cache, so that reading a page never executes it. A page that
raises stops the build with its traceback. Sphinx re-reads the pages it knows to be out of
date (their source changed) and, through ``env-get-outdated``, every page that was executed
now.
"""
from __future__ import annotations

from pathlib import Path

from sphinx.errors import ExtensionError
from sphinx.util import logging

logger = logging.getLogger(__name__)


def execute_first(app, config) -> None:
    from fgln.book.execute import ExecutionFailed, execute_book, store_dir
    from fgln.mnist.data import MnistUnavailableError, check_mnist_choice

    root = Path(app.srcdir)
    if getattr(config, "nb_execution_mode", None) != "cache":  # MyST-NB absent, or no cache
        return
    # With FGLN_MNIST=full, stop before executing anything when the full set cannot be had.
    # (Checked here, not in a process of its own: this one imports torch and fgln anyway, and
    # the executor's workers forked from it start with them.)
    try:
        logger.info(f"MNIST: {check_mnist_choice()} (FGLN_MNIST)")
    except (MnistUnavailableError, ValueError) as exc:
        raise ExtensionError(f"MNIST: {exc}") from None
    try:
        outcome = execute_book(root, log=lambda line: logger.info(f"[execute] {line}"))
    except ExecutionFailed as exc:
        raise ExtensionError(str(exc)) from None
    config.nb_execution_cache_path = str(store_dir() / "jupyter_cache")
    app._fgln_executed = {page for page, what in outcome.items() if what == "executed"}
    app._fgln_pages = set(outcome)


def reread_executed(app, env, added, changed, removed) -> list[str]:
    """The documents whose notebook was executed in this build (their outputs changed)."""
    executed = getattr(app, "_fgln_executed", set())
    return [d for d in env.found_docs if d.split("/")[-1] in executed
            and d not in added and d not in changed]


def write_executed_notebooks(app, env) -> None:
    """``env-updated``: ``<build>/jupyter_execute/<page>.ipynb`` is the executed notebook
    (MyST-NB's cache mode writes the page's source notebook there, without its outputs)."""
    import nbformat

    from fgln.book.execute import executed_notebook

    if getattr(app.config, "nb_execution_mode", None) != "cache":
        return
    out = Path(app.outdir).parent / "jupyter_execute"
    for docname in sorted(env.found_docs):
        if docname.split("/")[-1] not in getattr(app, "_fgln_pages", ()):
            continue
        nb = executed_notebook(Path(app.srcdir) / f"{docname}.md")
        if nb is not None:
            target = out / f"{docname}.ipynb"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(nbformat.writes(nb), encoding="utf-8")


def setup(app):
    app.connect("config-inited", execute_first, priority=900)
    app.connect("env-get-outdated", reread_executed)
    app.connect("env-updated", write_executed_notebooks)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
