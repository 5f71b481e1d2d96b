"""Execute the book's chapters on every core, and only those whose inputs changed.

``jupyter-book build`` starts a :class:`BookExecution` in a thread before it reads the pages
(the local extension ``book/_ext/parallel_execution.py``), reads the pages in the order in
which they are expected to be ready, and waits for each page's execution before reading it;
MyST-NB reads every executed notebook from the jupyter-cache that this module fills
(``execute_notebooks: cache``), so Sphinx itself executes nothing. :func:`execute_book` is
the same execution without Sphinx (``python -m fgln.book.execute``).

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
  book, ``book/_data/execution_seconds.json``, so that the longest chapters start first),
  each kernel with ``cores // jobs`` torch threads unless ``OMP_NUM_THREADS`` is set. The
  workers are forks of a fork server that imported what they need once, never of the calling
  process, whose other threads may hold locks (:mod:`fgln.book.page_workers`). Each forks
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
import math
import os
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Callable, Sequence

from ..base.atomic import atomic_write
from .cache import code_version, default_cache_dir
from .claims import source_sha
from .page_workers import execute_page, read_notebook, start_worker, worker_context

__all__ = ["ExecutionFailed", "BookExecution", "book_pages", "store_dir", "execute_book",
           "executed_notebook"]

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


class BookExecution:
    """One build's execution of the book (see the module's description), which Sphinx may
    read while it runs.

    The constructor decides which writers must execute (their key, ledger and cached
    notebook) and logs the others as reused; :meth:`run` executes them on ``jobs`` worker
    processes, longest first, then the readers whose key (with the digest of the writers'
    findings) changed. :meth:`start` runs it in a thread, so that the caller can read the
    pages that are ready (:meth:`order`, :meth:`wait`) while the others execute.

    Parameters
    ----------
    root : str or os.PathLike
        The project's root.
    jobs : int or None
        Pages executed at once (default ``$FGLN_JOBS``, else the number of cores).
    log : callable
        Receives one line per page executed or reused.

    Attributes
    ----------
    pages : list of str
        Every notebook page, writers then readers.
    outcome : dict of str to str
        Page -> ``"executed"`` or ``"cached"``, filled as pages settle.
    failures : list of str
        One entry (page and traceback) per page that raised.
    """

    def __init__(self, root: str | os.PathLike, *, jobs: int | None = None,
                 log: Callable[[str], None] = print) -> None:
        from jupyter_cache import get_cache

        self.root = Path(root).resolve()
        self.book_dir = self.root / "book"
        self.scale = os.environ.get("FGLN_SCALE", "paper")
        self.seed = os.environ.get("FGLN_SEED", "0")
        self.ledger_dir = Path(os.environ.get("FGLN_LEDGER_DIR")
                               or self.root / "_build" / "ledger")
        self.store = store_dir()
        self.store.mkdir(parents=True, exist_ok=True)
        self.state_path = self.store / "state.json"
        self.state = (json.loads(self.state_path.read_text())
                      if self.state_path.is_file() else {})
        self.keys = self.state.setdefault("keys", {})
        self.times = self.state.setdefault("seconds", {})
        self.code = code_version()
        cores = os.cpu_count() or 1
        self.jobs = max(1, int(jobs or os.environ.get("FGLN_JOBS") or cores))
        self.threads = (None if os.environ.get("OMP_NUM_THREADS")
                        else max(1, cores // self.jobs))
        self.log = log
        self.writers, self.readers = book_pages(self.root)
        self.pages = self.writers + self.readers
        self.hints = _recorded_seconds(self.book_dir, self.scale)
        self.outcome: dict[str, str] = {}
        self.failures: list[str] = []
        self._settled = {page: threading.Event() for page in self.pages}
        self._thread: threading.Thread | None = None
        cache = get_cache(str(self.store / "jupyter_cache"))
        self.writer_todo = self._plan(cache, self.writers, self._writer_key, self._writer_valid)
        # the readers' keys depend on the writers' findings: known now only if no writer runs
        self._reader_todo = (None if self.writer_todo else
                             self._plan(cache, self.readers, self._reader_key(), lambda p: True))

    def _writer_key(self, page: str) -> str:
        return f"{source_sha(page, self.book_dir)}-{self.code}"

    def _writer_valid(self, page: str) -> bool:
        return _ledger_ok(self.ledger_dir, page, self.scale, self.seed, self.code,
                          self.book_dir)

    def _reader_key(self) -> Callable[[str], str]:
        digest = _ledger_digest(self.ledger_dir, self.writers)
        return lambda p: f"{source_sha(p, self.book_dir)}-{self.code}-{digest}"

    def _plan(self, cache, pages: Sequence[str], key_of: Callable[[str], str],
              valid: Callable[[str], bool]) -> list[str]:
        """The pages to execute, longest first (by the store's own times, else the book's
        record of them, else first); the others are settled now and logged as reused."""
        todo = []
        for page in pages:
            if (self.keys.get(page) == key_of(page) and valid(page)
                    and _cached(cache, read_notebook(self.book_dir / f"{page}.md"))):
                self.outcome[page] = "cached"
                self._settled[page].set()
                self.log(f"{page}: unchanged, executed notebook reused")
            else:
                todo.append(page)
        todo.sort(key=lambda p: -self._seconds(p))
        return todo

    def _seconds(self, page: str) -> float:
        return self.times.get(page, self.hints.get(page, float("inf")))

    @property
    def may_execute(self) -> set[str]:
        """The pages this execution may run: the writers to execute, and every reader when
        one of them runs (else the readers whose key changed).

        Returns
        -------
        pages : set of str
            Page names.
        """
        readers = self.readers if self._reader_todo is None else self._reader_todo
        return set(self.writer_todo) | set(readers)

    def order(self) -> list[str]:
        """Every page in the order in which it is expected to be ready: those already
        settled, then the ones to execute by their finishing times predicted from the
        recorded times (each worker takes the next page as it frees), the readers last.

        Returns
        -------
        pages : list of str
            Every page name of the book's notebooks, once.
        """
        ready = [p for p in self.pages if p not in self.may_execute]
        free = [0.0] * self.jobs
        finish = {}
        for page in self.writer_todo:
            i = min(range(self.jobs), key=free.__getitem__)
            t = self._seconds(page)
            free[i] += 60.0 if math.isinf(t) else t
            finish[page] = free[i]
        readers = [p for p in self.readers if p in self.may_execute]
        return ready + sorted(self.writer_todo, key=finish.__getitem__) + readers

    def prepare(self) -> "BookExecution":
        """Start the workers' fork server now, if a page may execute: it imports what they
        need while the caller goes on (else the first pool starts it).

        Returns
        -------
        self : BookExecution
        """
        ctx, _, _ = worker_context()
        if self.may_execute and ctx.get_start_method() == "forkserver":
            from multiprocessing import forkserver

            forkserver.ensure_running()
        return self

    def start(self) -> "BookExecution":
        """Run :meth:`run` in a thread (not a daemon: when the caller stops on an error of
        its own, the pages still finish executing and are cached).

        Returns
        -------
        self : BookExecution
        """
        self._thread = threading.Thread(target=self._run_quietly, name="fgln-execute")
        self._thread.start()
        return self

    def _run_quietly(self) -> None:
        try:
            self.run()
        except ExecutionFailed:
            pass  # reported by wait() and result()
        except BaseException:  # noqa: BLE001 - the executor itself broke: report it
            import traceback

            self.failures.append(f"the executor:\n{traceback.format_exc()}")
        finally:
            for event in self._settled.values():
                event.set()

    def wait(self, page: str) -> None:
        """Block until ``page`` is executed or reused (at once for a page not in the book).

        Parameters
        ----------
        page : str
            A page name (file stem under ``book/``).

        Raises
        ------
        ExecutionFailed
            If a page failed (raised once every page has finished).
        """
        event = self._settled.get(page)
        if event is not None:
            event.wait()
        if self.failures:
            self.result()

    def result(self) -> dict[str, str]:
        """Wait for the thread of :meth:`start` to finish (at once without it).

        Returns
        -------
        outcome : dict of str to str
            What :meth:`run` returned.

        Raises
        ------
        ExecutionFailed
            What :meth:`run` raised.
        """
        if self._thread is not None:
            self._thread.join()
        return self._checked()

    def _checked(self) -> dict[str, str]:
        if self.failures:
            raise ExecutionFailed("pages failed to execute:\n" + "\n".join(self.failures))
        return dict(self.outcome)

    def run(self) -> dict[str, str]:
        """Execute the writers, then the readers whose key changed, in this thread.

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

        cache = get_cache(str(self.store / "jupyter_cache"))  # this thread's own connection
        self._execute(cache, self.writer_todo, self._writer_key)
        self._checked()  # after a failure the readers would only report the missing ledgers
        key = self._reader_key()
        todo = self._reader_todo
        if todo is None:  # planned now, with the writers' new findings
            todo = self._plan(cache, self.readers, key, lambda p: True)
        self._execute(cache, todo, key)
        return self._checked()

    def _save_state(self) -> None:
        text = json.dumps(self.state, indent=1, sort_keys=True)
        atomic_write(self.state_path, lambda fh: fh.write(text), "w")

    def _execute(self, cache, todo: Sequence[str], key_of: Callable[[str], str]) -> None:
        import nbformat
        from jupyter_cache.base import CacheBundleIn

        if not todo:
            return
        start = time.perf_counter()
        ctx, fork, modules = worker_context()
        book_dir = self.book_dir
        with ProcessPoolExecutor(max_workers=min(self.jobs, len(todo)), mp_context=ctx,
                                 initializer=start_worker,
                                 initargs=(dict(os.environ), self.threads, modules)) as pool:
            futures = {pool.submit(execute_page, str(book_dir / f"{p}.md"), TIMEOUT, fork): p
                       for p in todo}
            for done, fut in enumerate(as_completed(futures), 1):
                page = futures[fut]
                text, seconds, error = fut.result()
                where = f"[{done}/{len(todo)}, {time.perf_counter() - start:.0f} s]"
                if error:
                    self.failures.append(f"{page}:\n{error}")
                    self.keys.pop(page, None)
                    self.log(f"{where} {page}: FAILED after {seconds:.1f} s")
                else:
                    cache.cache_notebook_bundle(
                        CacheBundleIn(nbformat.reads(text, 4), str(book_dir / f"{page}.md"),
                                      data={"execution_seconds": seconds}),
                        check_validity=False, overwrite=True)
                    self.keys[page], self.times[page] = key_of(page), seconds
                    self.outcome[page] = "executed"
                    self.log(f"{where} {page}: executed in {seconds:.1f} s")
                self._save_state()
                self._settled[page].set()


def execute_book(root: str | os.PathLike, *, jobs: int | None = None,
                 log: Callable[[str], None] = print) -> dict[str, str]:
    """Execute every page of the book whose inputs changed (see the module's description),
    on ``jobs`` worker processes, into the store's jupyter-cache; :class:`BookExecution`
    run in the calling thread.

    Parameters
    ----------
    root : str or os.PathLike
        As for :class:`BookExecution`.
    jobs : int or None
        As for :class:`BookExecution`.
    log : callable
        As for :class:`BookExecution`.

    Returns
    -------
    outcome : dict of str to str
        As :meth:`BookExecution.run` returns it.

    Raises
    ------
    ExecutionFailed
        As :meth:`BookExecution.run` raises it.
    """
    return BookExecution(root, jobs=jobs, log=log).run()


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
        record = cache.match_cache_notebook(read_notebook(Path(path)))
    except KeyError:
        return None
    return cache.get_cache_bundle(record.pk).nb


if __name__ == "__main__":  # python -m fgln.book.execute [root]
    try:
        execute_book(sys.argv[1] if len(sys.argv) > 1 else ".")
    except ExecutionFailed as exc:
        sys.exit(str(exc))
