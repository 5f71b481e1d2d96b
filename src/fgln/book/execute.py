"""Execute the book's chapters on every core, and only those whose inputs changed.

``jupyter-book build`` calls :func:`execute_book` before it reads the pages (the local
extension ``book/_ext/parallel_execution.py``); MyST-NB then reads every executed notebook
from the jupyter-cache that this module fills (``execute_notebooks: cache``), so the build
itself executes nothing.

* **What is executed.** A chapter is executed when its source (``book/<chapter>.md``) or the
  package's code version (:func:`~fgln.book.cache.code_version`, every module of ``fgln``:
  which chapters depend on a given module is not tracked, so an edit to any module
  re-executes every chapter) differs from its last execution in the same store, when its
  executed notebook is not in the store, or when its claims ledger is missing or was written
  for another source, code, scale or seed. Pages that read the other chapters' ledgers (the
  introduction, the reproduction status, the discussion: every page whose source calls
  ``load_ledgers``) run after all the others, and again whenever the findings of a ledger
  changed (its claims, scale, seed or code version; not which execution wrote it, so that
  editing a chapter's prose re-executes that chapter only).
* **Where.** One store per scale, seed and MNIST choice: ``<repo>/.cache/executed/<tag>``
  (``$FGLN_EXEC_DIR`` overrides), holding a jupyter-cache (``jupyter_cache/``) and
  ``state.json`` (the key each page was last executed with, and how long it took).
* **How.** Chapters run in worker processes (``jobs``, default: one per core), longest first
  (by their last execution time in the store; in a new store by the times recorded with the
  book, ``book/_data/execution_seconds.json``, so that the longest chapters start first), each kernel with ``cores // jobs`` torch threads unless
  ``OMP_NUM_THREADS`` is set. Each worker imports what the pages import once and forks
  every page's kernel from itself (:mod:`fgln.book.forked_kernels`: a new process per page,
  without the 4-5 s of imports), where the platform and the kernelspec allow it
  (``FGLN_FORK_KERNELS=0``: new kernels as Jupyter starts them). Two chapters that need the
  same cached result compute it once
  (:func:`~fgln.book.cache.cached` locks each entry). A chapter whose cell raises fails the
  build after the other chapters finished, with its traceback.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path
from typing import Callable, Sequence

from ..base.atomic import atomic_write
from .cache import code_version, default_cache_dir
from .claims import source_sha

__all__ = ["ExecutionFailed", "book_pages", "store_dir", "execute_book", "executed_notebook"]

# Seconds per cell (as `execute: timeout` in _config.yml).
TIMEOUT = 1800


class ExecutionFailed(RuntimeError):
    """A chapter raised while executing; the message holds every failing chapter's traceback."""


def book_pages(root: str | os.PathLike) -> tuple[list[str], list[str]]:
    """The notebook pages of the table of contents (every part but "Reference"): those that
    write claims ledgers, and those that read them (their source calls ``load_ledgers``).

    Parameters
    ----------
    root : str or os.PathLike
        The project's root (holding ``_toc.yml``).

    Returns
    -------
    writers, readers : list of str
        Page names (file stems under ``book/``), in the order of the table of contents.
    """
    import yaml

    root = Path(root)
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]]
    for part in toc.get("parts", []):
        if part.get("caption") == "Reference":
            continue
        for entry in part["chapters"]:
            files += [entry["file"]] + [s["file"] for s in entry.get("sections", [])]
    writers, readers = [], []
    for f in files:
        text = (root / f"{f}.md").read_text(encoding="utf-8")
        if "kernelspec:" not in text.split("---", 2)[1 if text.startswith("---") else 0]:
            continue  # a plain Markdown page, nothing to execute
        (readers if "load_ledgers(" in text else writers).append(Path(f).name)
    return writers, readers


def store_dir() -> Path:
    """The store of executed notebooks for this build's scale, seed and MNIST choice:
    ``$FGLN_EXEC_DIR``, else ``<cache>/../executed/<scale>-seed<seed>-mnist-<choice>`` from
    ``$FGLN_SCALE`` (default ``"paper"``, the chapters' default), ``$FGLN_SEED`` (default
    ``0``) and ``$FGLN_MNIST`` (default ``"auto"``).

    Returns
    -------
    folder : pathlib.Path
        The store (not created).
    """
    if os.environ.get("FGLN_EXEC_DIR"):
        return Path(os.environ["FGLN_EXEC_DIR"]).expanduser()
    scale = os.environ.get("FGLN_SCALE", "paper")
    seed = os.environ.get("FGLN_SEED", "0")
    choice = os.environ.get("FGLN_MNIST") or "auto"
    return default_cache_dir().parent / "executed" / f"{scale}-seed{seed}-mnist-{choice}"


def _read_notebook(path: Path):
    """``path`` read as MyST-NB reads it, so that jupyter-cache's hashes agree."""
    from myst_nb.core.read import read_myst_markdown_notebook
    from myst_parser.config.main import MdParserConfig

    return read_myst_markdown_notebook(path.read_text(encoding="utf-8"), MdParserConfig(),
                                       add_source_map=True, path=str(path))


def _start_worker(threads: int | None, fork: bool) -> None:
    """Worker initializer: with ``fork``, import what every page imports, once
    (:func:`fgln.book.forked_kernels.preload`)."""
    if fork:
        from .forked_kernels import preload

        preload(threads)


def _execute_one(path: str, threads: int | None, timeout: int, fork: bool = False,
                 ) -> tuple[str | None, float, str]:
    """Worker: execute one page in its folder, in a kernel forked from this worker when
    ``fork`` (:mod:`fgln.book.forked_kernels`), else in a new one; (executed notebook as
    JSON or None, seconds, traceback or '')."""
    import nbformat
    from jupyter_cache.executors.utils import single_nb_execution

    if threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    extra = {}
    if fork:
        from .forked_kernels import ForkedKernelManager

        extra["kernel_manager_class"] = ForkedKernelManager
    nb = _read_notebook(Path(path))
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


def _ledger_ok(ledger_dir: Path, page: str, scale: str, seed: str, code: str,
               book_dir: Path) -> bool:
    path = ledger_dir / f"{page}.json"
    if not path.is_file():
        return False
    try:
        led = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return False
    return (led.get("code_version") == code and led.get("scale") == scale
            and led.get("source_sha") == source_sha(page, book_dir)
            and str(led.get("seed", seed)) == seed)


# Fields of a ledger that say which execution wrote it, not what it found: a chapter
# re-executed with the same findings (an edit of its prose) leaves the readers as they are.
_PROVENANCE = ("build_id", "source_sha")


def _ledger_digest(ledger_dir: Path, pages: Sequence[str]) -> str:
    """Hash of the findings of the ledgers of ``pages`` (provenance fields left out)."""
    h = hashlib.sha256()
    for p in pages:
        f = ledger_dir / f"{p}.json"
        try:
            led = json.loads(f.read_text(encoding="utf-8"))
            body = json.dumps({k: v for k, v in led.items() if k not in _PROVENANCE},
                              sort_keys=True).encode()
        except (OSError, ValueError):
            body = b"-"
        h.update(p.encode() + b"\0" + body + b"\0")
    return h.hexdigest()[:16]


def _recorded_seconds(book_dir: Path, scale: str) -> dict[str, float]:
    """The execution times recorded with the book (``book/_data/execution_seconds.json``) at
    ``scale``, by page: the order of a store's first build (empty if there is no record)."""
    try:
        record = json.loads((book_dir / "_data" / "execution_seconds.json").read_text("utf-8"))
        return {str(k): float(v) for k, v in record.get(scale, {}).items()}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def _cached(cache, nb) -> bool:
    try:
        cache.match_cache_notebook(nb)
        return True
    except KeyError:
        return False


def execute_book(root: str | os.PathLike, *, jobs: int | None = None,
                 log: Callable[[str], None] = print) -> dict[str, str]:
    """Execute every page of the book whose inputs changed (see the module's description),
    on ``jobs`` worker processes, into the store's jupyter-cache.

    Parameters
    ----------
    root : str or os.PathLike
        The project's root.
    jobs : int or None
        Pages executed at once (default ``$FGLN_JOBS``, else the number of cores).
    log : callable
        Receives one line per page executed or reused.

    Returns
    -------
    outcome : dict of str to str
        Page -> ``"executed"`` or ``"cached"``.

    Raises
    ------
    ExecutionFailed
        If a page raised (every other page is still executed and cached).
    """
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    root = Path(root).resolve()
    book_dir = root / "book"
    scale = os.environ.get("FGLN_SCALE", "paper")
    seed = os.environ.get("FGLN_SEED", "0")
    ledger_dir = Path(os.environ.get("FGLN_LEDGER_DIR") or root / "_build" / "ledger")
    store = store_dir()
    store.mkdir(parents=True, exist_ok=True)
    cache = get_cache(str(store / "jupyter_cache"))
    state_path = store / "state.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    keys, times = state.setdefault("keys", {}), state.setdefault("seconds", {})
    code = code_version()
    cores = os.cpu_count() or 1
    jobs = max(1, int(jobs or os.environ.get("FGLN_JOBS") or cores))
    threads = None if os.environ.get("OMP_NUM_THREADS") else max(1, cores // jobs)
    writers, readers = book_pages(root)
    hints = _recorded_seconds(book_dir, scale)
    outcome: dict[str, str] = {}
    failures: list[str] = []

    def save_state() -> None:
        text = json.dumps(state, indent=1, sort_keys=True)
        atomic_write(state_path, lambda fh: fh.write(text), "w")

    def run(pages: Sequence[str], key_of: Callable[[str], str], valid: Callable[[str], bool]):
        todo = []
        for page in pages:
            path = book_dir / f"{page}.md"
            if (keys.get(page) == key_of(page) and valid(page)
                    and _cached(cache, _read_notebook(path))):
                outcome[page] = "cached"
                log(f"{page}: unchanged, executed notebook reused")
            else:
                todo.append(page)
        # longest first: by the store's own times, else the book's record of them, else first
        todo.sort(key=lambda p: -times.get(p, hints.get(p, float("inf"))))
        if not todo:
            return
        start = time.perf_counter()
        # fork: the workers start without importing torch and nbformat again (seconds each),
        # and each forks its pages' kernels from itself (forked_kernels) where it can
        from .forked_kernels import can_fork

        forking = "fork" in get_all_start_methods()
        ctx = get_context("fork" if forking else "spawn")
        fork = forking and can_fork("python3")
        with ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=ctx,
                                 initializer=_start_worker, initargs=(threads, fork)) as pool:
            futures = {pool.submit(_execute_one, str(book_dir / f"{p}.md"), threads, TIMEOUT,
                                   fork): p for p in todo}
            for done, fut in enumerate(as_completed(futures), 1):
                page = futures[fut]
                text, seconds, error = fut.result()
                where = f"[{done}/{len(todo)}, {time.perf_counter() - start:.0f} s]"
                if error:
                    failures.append(f"{page}:\n{error}")
                    keys.pop(page, None)
                    log(f"{where} {page}: FAILED after {seconds:.1f} s")
                else:
                    import nbformat

                    cache.cache_notebook_bundle(
                        CacheBundleIn(nbformat.reads(text, 4), str(book_dir / f"{page}.md"),
                                      data={"execution_seconds": seconds}),
                        check_validity=False, overwrite=True)
                    keys[page], times[page] = key_of(page), seconds
                    outcome[page] = "executed"
                    log(f"{where} {page}: executed in {seconds:.1f} s")
                save_state()

    run(writers, lambda p: f"{source_sha(p, book_dir)}-{code}",
        lambda p: _ledger_ok(ledger_dir, p, scale, seed, code, book_dir))
    if failures:  # the readers would only report the missing ledgers
        raise ExecutionFailed("pages failed to execute:\n" + "\n".join(failures))
    digest = _ledger_digest(ledger_dir, writers)
    run(readers, lambda p: f"{source_sha(p, book_dir)}-{code}-{digest}", lambda p: True)
    if failures:
        raise ExecutionFailed("pages failed to execute:\n" + "\n".join(failures))
    return outcome


def executed_notebook(path: str | os.PathLike):
    """The notebook of the page at ``path`` as the store's jupyter-cache holds it executed
    (outputs included), or None when the store has no execution of this source.

    Parameters
    ----------
    path : str or os.PathLike
        The page's source (``book/<page>.md``).

    Returns
    -------
    notebook : nbformat.NotebookNode or None
        The executed notebook.
    """
    from jupyter_cache import get_cache

    cache = get_cache(str(store_dir() / "jupyter_cache"))
    try:
        record = cache.match_cache_notebook(_read_notebook(Path(path)))
    except KeyError:
        return None
    return cache.get_cache_bundle(record.pk).nb


if __name__ == "__main__":  # python -m fgln.book.execute [root]
    try:
        execute_book(sys.argv[1] if len(sys.argv) > 1 else ".")
    except ExecutionFailed as exc:
        sys.exit(str(exc))
