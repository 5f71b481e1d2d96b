"""Grids of independent, cached tasks on any ``concurrent.futures`` executor.

A task is ``(name, params, fn)``: ``fn(**params)`` computes one grid point (a dict of numpy
arrays and scalars, as :func:`fgln.book.cache.cached` stores) and must be a top-level function
(or a ``functools.partial`` of one) so that it pickles to worker processes; ``params`` holds
everything the result depends on, seeds included, and is its cache key with ``name``.

:func:`run_grid` loads the tasks already in the cache, sends the others to the executor
(``None``: this process, one after the other) and returns the results in task order. A
worker computes its task through :func:`fgln.book.cache.cached`, so the result is written
atomically by whoever computed it, in a cache folder that may be shared by several machines;
an interrupted or partly failed sweep loses nothing that finished.

Executors by name (:func:`make_executor`, ``$FGLN_EXECUTOR`` for :func:`executor_from_env`):
``serial`` (default), ``processes:N`` (``N`` local processes), ``dask-local:N`` (a dask
``LocalCluster`` of ``N`` one-thread worker processes) and ``dask:<scheduler address>`` (a
running dask cluster; needs the ``cluster`` extra, ``pip install -e '.[cluster]'``). Torch
threads per task: the worker's share of the cores on the local executors, dask's one per task
thread on a cluster, ``$FGLN_TORCH_THREADS`` on a worker when set.
"""
from __future__ import annotations

import json
import logging
import multiprocessing
import os
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from .cache import cache_folder, cached, code_version, lookup
from ..base.progress import progress as progress_bar
from ..base.threads import torch_threads

__all__ = [
    "SweepError",
    "run_grid",
    "parse_executor",
    "make_executor",
    "executor_from_env",
    "worker_torch_threads",
    "usable_cores",
]

Task = tuple[str, Mapping[str, Any], Callable[..., dict]]
EXECUTOR_ENV = "FGLN_EXECUTOR"
THREADS_ENV = "FGLN_TORCH_THREADS"
CLUSTER_EXTRA = "pip install -e '.[cluster]'"


class SweepError(RuntimeError):
    """Some tasks of a grid failed; ``failures`` lists ``(name, params, exception)``.

    Parameters
    ----------
    failures : list of tuple of (str, dict, BaseException)
        The failed tasks' names, parameters and exceptions, in task order.
    total : int
        Number of tasks of the grid.

    Attributes
    ----------
    failures : list of tuple of (str, dict, BaseException)
        As given.
    """

    def __init__(self, failures: list[tuple[str, dict, BaseException]], total: int):
        self.failures = failures
        lines = [f"  {name} {json.dumps(params, sort_keys=True, default=str)}: "
                 f"{type(exc).__name__}: {exc}" for name, params, exc in failures]
        super().__init__(
            f"{len(failures)} of {total} tasks failed (the others are cached, so a rerun "
            "computes only these):\n" + "\n".join(lines))


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports it).

    Returns
    -------
    cores : int
        At least 1.
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_torch_threads() -> int | None:
    """Torch threads for a task on this worker: ``$FGLN_TORCH_THREADS`` if set (the local
    executors of :func:`make_executor` set it to their share of the cores), else ``None``
    (leave torch as it is: on a dask worker, one thread per task thread).

    Returns
    -------
    threads : int or None
        Threads per task, or None.

    Raises
    ------
    ValueError
        If ``$FGLN_TORCH_THREADS`` is set to anything but a positive integer.
    """
    env = os.environ.get(THREADS_ENV, "").strip()
    if not env:
        return None
    if not env.isdigit() or int(env) < 1:
        raise ValueError(f"{THREADS_ENV} must be a positive integer, got {env!r}")
    return int(env)


def _compute(name: str, params: dict, fn: Callable[..., dict], cache_dir: str) -> tuple[dict, str]:
    """Worker side of :func:`run_grid`: the cached result of one task, and the code version
    it was computed (or found) under."""
    threads = worker_torch_threads()
    if threads is None:
        result = cached(name, params, lambda: fn(**params), cache_dir)
    else:
        with torch_threads(threads):
            result = cached(name, params, lambda: fn(**params), cache_dir)
    return result, code_version()


def _check_tasks(tasks: Sequence[Task]) -> list[tuple[str, dict, Callable[..., dict]]]:
    if isinstance(tasks, (str, bytes)) or not isinstance(tasks, Sequence):
        raise TypeError(f"tasks must be a list of (name, params, fn), got {type(tasks).__name__}")
    out = []
    for i, task in enumerate(tasks):
        if not (isinstance(task, tuple) and len(task) == 3):
            raise TypeError(f"tasks[{i}] must be a tuple (name, params, fn), got {task!r}")
        name, params, fn = task
        if not isinstance(name, str) or not name:
            raise TypeError(f"tasks[{i}]: name must be a non-empty str, got {name!r}")
        if not isinstance(params, Mapping):
            raise TypeError(f"tasks[{i}]: params must be a dict, got {type(params).__name__}")
        if not callable(fn):
            raise TypeError(f"tasks[{i}]: fn must be callable, got {type(fn).__name__}")
        out.append((name, dict(params), fn))
    return out


def run_grid(tasks: Sequence[Task], *, executor: Executor | str | None = None,
             cache_dir: str | os.PathLike | None = None, progress: bool | None = None,
             desc: str | None = None) -> list[dict]:
    """Results of ``fn(**params)`` for every task ``(name, params, fn)``, in task order.

    Cached tasks are loaded, the others computed on ``executor``: any
    ``concurrent.futures.Executor``, an executor name for :func:`make_executor` (started only
    when something is left to compute, shut down at the end), or ``None`` (this process, in
    task order). Each computed result is written to ``cache_dir`` (default
    :func:`fgln.book.cache.default_cache_dir`, the same path on every worker) by the worker that
    computed it. ``progress`` (``None``: ``$FGLN_PROGRESS``) counts tasks as they complete.

    A failing task does not stop the others; at the end :class:`SweepError` names each failed
    task with its parameters (the first failure is its ``__cause__``). A worker running other
    ``fgln`` source than this process is a failure too (its results would be cached under
    other keys).

    Parameters
    ----------
    tasks : sequence of tuple of (str, mapping, callable)
        The grid: ``(name, params, fn)`` per point, ``fn`` top-level (or a partial of one),
        ``params`` JSON-serialisable.
    executor : concurrent.futures.Executor, str or None
        Where to compute: an executor, an executor name, or None for this process.
    cache_dir : str, os.PathLike or None
        Cache folder (default :func:`fgln.book.cache.default_cache_dir`).
    progress : bool or None
        Show a progress bar (None: follow ``FGLN_PROGRESS``).
    desc : str or None
        Label of the progress bar (default: the first task's name).

    Returns
    -------
    results : list of dict
        One result per task, in task order.

    Raises
    ------
    TypeError
        If ``tasks`` is not a list of ``(name, params, fn)`` or ``executor`` has the wrong type.
    ValueError
        If an executor name is not one :func:`parse_executor` knows.
    SweepError
        If some tasks failed (after all the others finished).
    """
    checked = _check_tasks(tasks)
    if isinstance(executor, str):
        parse_executor(executor)
    elif executor is not None and not isinstance(executor, Executor):
        raise TypeError("executor must be a concurrent.futures.Executor, an executor name or "
                        f"None, got {type(executor).__name__}")
    folder = cache_folder(cache_dir)
    folder = str(folder.absolute())
    results: list[dict | None] = [lookup(name, params, folder) for name, params, _ in checked]
    todo = [i for i, r in enumerate(results) if r is None]
    failures: dict[int, BaseException] = {}
    label = desc if desc is not None else (checked[0][0] if checked else "grid")

    def collect(done: Iterator[tuple[int, dict | None, BaseException | None]]) -> None:
        for i, result, exc in progress_bar(done, total=len(todo), desc=label, enable=progress):
            if exc is None:
                results[i] = result
            else:
                failures[i] = exc

    if todo:
        if isinstance(executor, str):
            with make_executor(executor) as ex:
                collect(_completions(checked, todo, ex, folder))
        else:
            collect(_completions(checked, todo, executor, folder))
    if failures:
        order = sorted(failures)
        raise SweepError([(checked[i][0], checked[i][1], failures[i]) for i in order],
                         len(checked)) from failures[order[0]]
    return results  # type: ignore[return-value]


def _completions(tasks: list[tuple[str, dict, Callable[..., dict]]], todo: list[int],
                 executor: Executor | None, folder: str
                 ) -> Iterator[tuple[int, dict | None, BaseException | None]]:
    """(index, result, None) or (index, None, exception) for each task of ``todo`` as it
    completes."""
    if executor is None:
        for i in todo:
            name, params, fn = tasks[i]
            try:
                yield i, cached(name, params, lambda fn=fn, params=params: fn(**params),
                                folder), None
            except Exception as exc:
                yield i, None, exc
        return
    version = code_version()
    futures = {}
    try:
        for i in todo:
            try:
                futures[executor.submit(_compute, *tasks[i], folder)] = i
            except Exception as exc:  # e.g. a task that does not pickle
                yield i, None, exc
        for fut in as_completed(futures):
            i = futures[fut]
            try:
                result, worker_version = fut.result()
            except Exception as exc:
                yield i, None, exc
                continue
            if worker_version != version:
                yield i, None, RuntimeError(
                    f"the worker runs fgln source {worker_version}, this process {version}: "
                    "install the same source on every worker")
            else:
                yield i, result, None
    finally:  # interrupted: drop what has not started
        for fut in futures:
            fut.cancel()


def parse_executor(spec: str) -> tuple[str, int | str | None]:
    """``(kind, argument)`` of an executor name: ``("serial", None)``, ``("processes", N)``,
    ``("dask-local", N)`` or ``("dask", address)``; ``ValueError`` for anything else.

    Parameters
    ----------
    spec : str
        ``"serial"``, ``"processes:N"``, ``"dask-local:N"`` or ``"dask:<scheduler address>"``.

    Returns
    -------
    kind : str
        ``"serial"``, ``"processes"``, ``"dask-local"`` or ``"dask"``.
    argument : int, str or None
        The number of workers, the scheduler address, or None for ``serial``.

    Raises
    ------
    TypeError
        If ``spec`` is not a str.
    ValueError
        If it names no executor.
    """
    if not isinstance(spec, str):
        raise TypeError(f"executor name must be a str, got {type(spec).__name__}")
    text = spec.strip()
    kind, _, arg = text.partition(":")
    if text == "serial":
        return "serial", None
    if kind in ("processes", "dask-local"):
        if not arg.isdigit() or int(arg) < 1:
            raise ValueError(f"executor {spec!r}: {kind}:N needs a number of workers N >= 1")
        return kind, int(arg)
    if kind == "dask" and arg.strip():
        return "dask", arg.strip()
    raise ValueError(f"executor must be 'serial', 'processes:N', 'dask-local:N' or "
                     f"'dask:<scheduler address>', got {spec!r}")


def _import_distributed(spec: str):
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(f"executor {spec!r} needs dask.distributed, which is not installed; "
                          f"install the cluster extra: {CLUSTER_EXTRA}") from exc
    return distributed


def _set_worker_threads(threads: int) -> None:
    """Process-pool initializer: the worker's torch threads (read by each task)."""
    os.environ[THREADS_ENV] = str(threads)


@contextmanager
def make_executor(spec: str) -> Iterator[Executor | None]:
    """The executor named by ``spec`` (see :func:`parse_executor`), shut down on exit;
    ``None`` for ``serial``. Local workers get ``cores // N`` torch threads each; processes
    are spawned (never forked, so no torch thread pool is inherited).

    Parameters
    ----------
    spec : str
        An executor name (:func:`parse_executor`).

    Yields
    ------
    executor : concurrent.futures.Executor or None
        The running executor, or None for ``serial``.

    Raises
    ------
    ValueError
        If ``spec`` names no executor.
    ImportError
        If a dask executor is asked for without ``dask.distributed`` installed.
    """
    kind, arg = parse_executor(spec)
    if kind == "serial":
        yield None
        return
    if kind == "processes":
        share = max(1, usable_cores() // int(arg))
        with ProcessPoolExecutor(int(arg), mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_set_worker_threads, initargs=(share,)) as pool:
            yield pool
        return
    distributed = _import_distributed(spec)
    if kind == "dask-local":
        share = max(1, usable_cores() // int(arg))
        with distributed.LocalCluster(n_workers=int(arg), threads_per_worker=1, processes=True,
                                      dashboard_address=None, silence_logs=logging.ERROR,
                                      env={THREADS_ENV: str(share)}) as cluster, \
                distributed.Client(cluster) as client:
            yield client.get_executor(pure=False)
        return
    with distributed.Client(str(arg)) as client:
        yield client.get_executor(pure=False)


def executor_from_env(default: str = "serial") -> AbstractContextManager[Executor | None]:
    """:func:`make_executor` of ``$FGLN_EXECUTOR`` (``default`` when unset).

    Parameters
    ----------
    default : str
        Executor name used when ``$FGLN_EXECUTOR`` is unset or blank.

    Returns
    -------
    context : contextlib.AbstractContextManager
        Yields the executor (None for ``serial``) and shuts it down on exit.
    """
    return make_executor(os.environ.get(EXECUTOR_ENV, "").strip() or default)
