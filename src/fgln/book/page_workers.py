"""The executor's worker processes (:mod:`fgln.book.execute`): where they come from, what
they import, and how each executes a page.

The workers are forks of a fork server (``multiprocessing``'s ``forkserver``): a new
interpreter with a single thread, which imports once what the workers need
(:data:`WORKER_MODULES`) and, where the pages' kernels are forked from the workers, what
every page imports (:data:`fgln.book.forked_kernels.PRELOAD`). They are never forks of the
building process: Sphinx's main thread imports modules and writes while the executing thread
starts the workers, and a fork would inherit the locks it holds at that moment (a kernel
forked from such a worker would wait forever on a module it found half imported). Each
worker takes the build's environment (:func:`start_worker`), then executes pages one at a
time (:func:`execute_page`), each in a kernel forked from itself
(:mod:`fgln.book.forked_kernels`) or, where that is not possible, started as Jupyter does.
"""
from __future__ import annotations

import os
import time
from multiprocessing import get_all_start_methods, get_context
from multiprocessing.context import BaseContext
from pathlib import Path

__all__ = ["WORKER_MODULES", "read_notebook", "worker_context", "start_worker",
           "execute_page"]

#: What a worker imports to execute a page (the fork server imports it once).
WORKER_MODULES: tuple[str, ...] = (
    "fgln.book.execute", "fgln.book.page_workers", "fgln.book.forked_kernels", "nbformat",
    "nbclient", "jupyter_client", "jupyter_cache", "jupyter_cache.executors.utils",
    "myst_nb.core.read", "myst_parser.config.main",
)


def read_notebook(path: Path):
    """A page read as MyST-NB reads it, so that jupyter-cache's hashes agree.

    Parameters
    ----------
    path : pathlib.Path
        The page's source (``book/<page>.md``).

    Returns
    -------
    notebook : nbformat.NotebookNode
        Its notebook, unexecuted.
    """
    from myst_nb.core.read import read_myst_markdown_notebook
    from myst_parser.config.main import MdParserConfig

    return read_myst_markdown_notebook(path.read_text(encoding="utf-8"), MdParserConfig(),
                                       add_source_map=True, path=str(path))


def worker_context() -> tuple[BaseContext, bool, tuple[str, ...] | None]:
    """The workers' ``multiprocessing`` context, and what they preload.

    Returns
    -------
    context : multiprocessing.context.BaseContext
        ``forkserver`` where the platform has it (its preload list set, used when the server
        starts: the first time in this process), else ``spawn``.
    fork : bool
        Whether the workers fork the pages' kernels
        (:func:`fgln.book.forked_kernels.can_fork`).
    modules : tuple of str or None
        What the workers import before forking kernels (None when they do not).
    """
    from .forked_kernels import PRELOAD, can_fork

    server = "forkserver" in get_all_start_methods()
    ctx = get_context("forkserver" if server else "spawn")
    fork = server and can_fork("python3")
    modules = tuple(PRELOAD) if fork else None
    if server:
        ctx.set_forkserver_preload([*WORKER_MODULES, *(modules or ())])
    return ctx, fork, modules


def start_worker(env: dict[str, str], threads: int | None,
                 modules: tuple[str, ...] | None) -> None:
    """A worker's initializer: the build's environment, and the modules its kernels start with.

    Parameters
    ----------
    env : dict of str to str
        The building process's environment when the workers started (a fork server's
        children have the server's, from when it started).
    threads : int or None
        ``OMP_NUM_THREADS`` of the kernels (None: as ``env`` says).
    modules : tuple of str or None
        Imported before the first kernel is forked (:func:`fgln.book.forked_kernels.preload`);
        None when the kernels are not forked.
    """
    os.environ.clear()
    os.environ.update(env)
    if threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    if modules is not None:
        from .forked_kernels import preload

        preload(None, modules)


def execute_page(path: str, timeout: int, fork: bool = False) -> tuple[str | None, float, str]:
    """Execute one page in its folder (in a worker), in a kernel forked from this process
    when ``fork`` (:mod:`fgln.book.forked_kernels`), else in a new one.

    Parameters
    ----------
    path : str
        The page's source (``book/<page>.md``).
    timeout : int
        Seconds per cell.
    fork : bool
        Fork the kernel from this process.

    Returns
    -------
    notebook : str or None
        The executed notebook as JSON, None if the page failed.
    seconds : float
        How long it took.
    error : str
        The traceback of the cell that raised, or why the kernel did not run ('' if none).
    """
    import nbformat
    from jupyter_cache.executors.utils import single_nb_execution

    extra = {}
    if fork:
        from .forked_kernels import ForkedKernelManager

        extra["kernel_manager_class"] = ForkedKernelManager
    nb = read_notebook(Path(path))
    start = time.perf_counter()
    try:
        result = single_nb_execution(nb, cwd=str(Path(path).parent), timeout=timeout,
                                     allow_errors=False, meta_override=True, **extra)
    except Exception:  # the kernel did not start or died: the page fails, not the executor
        import traceback

        return None, time.perf_counter() - start, traceback.format_exc()
    if result.err is not None:
        return None, result.time, result.exc_string or repr(result.err)
    return nbformat.writes(nb), result.time, ""
