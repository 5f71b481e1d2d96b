"""What a chapter's run cost and where it ran: the run line at the end of every chapter.

A chapter calls :func:`start_page` in a cell right after its parameters and
:func:`glue_page_report` in its last cell; the glued sentence gives the wall time since the
start, the machine (CPU model and cores, the GPUs torch sees), the versions of Python, torch,
numpy, scipy, matplotlib, jupyter-book and myst-nb, and
whether the chapter's heavy results (those of :func:`fgln.book.cache.cached`) were computed in
this run or read from the cache. The book's execution report page lists every chapter's
run time as measured by the build itself.
"""
from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .cache import cache_counts

__all__ = [
    "PageRun",
    "cache_text",
    "cpu_cores",
    "cpu_model",
    "format_seconds",
    "glue_page_report",
    "gpu_names",
    "machine_text",
    "page_report",
    "software_text",
    "start_page",
]


@dataclass(frozen=True)
class PageRun:
    """The start of a chapter's run: ``time.perf_counter()`` and the cache counts then.

    Parameters
    ----------
    started, read, computed
        The attributes below, in this order.

    Attributes
    ----------
    started : float
        ``time.perf_counter()`` at the start.
    read : int
        Cached results read by the process before the start.
    computed : int
        Cached results computed by the process before the start.
    """

    started: float
    read: int
    computed: int

    def elapsed(self, now: float | None = None) -> float:
        """Seconds since the start (``now``: a ``time.perf_counter()`` value).

        Parameters
        ----------
        now : float or None
            The end time; None: now.

        Returns
        -------
        seconds : float
            Elapsed wall time.
        """
        return (time.perf_counter() if now is None else now) - self.started

    def cache_since(self) -> tuple[int, int]:
        """``(read, computed)``: cached results read and computed since the start.

        Returns
        -------
        read : int
            Cached results read since the start.
        computed : int
            Cached results computed since the start.
        """
        counts = cache_counts()
        return counts["read"] - self.read, counts["computed"] - self.computed


def start_page() -> PageRun:
    """Start the clock and the cache counts of a chapter (first cell after the parameters).

    Returns
    -------
    run : PageRun
        The start time and cache counts.
    """
    counts = cache_counts()
    return PageRun(started=time.perf_counter(), read=counts["read"],
                   computed=counts["computed"])


def cpu_model(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> str:
    """The processor's name (``model name`` of ``/proc/cpuinfo`` on Linux), else what
    :mod:`platform` knows, else ``"unknown CPU"``.

    Parameters
    ----------
    cpuinfo : str or os.PathLike
        The file to read (default ``/proc/cpuinfo``).

    Returns
    -------
    name : str
        The processor's name.
    """
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "Hardware") and value.strip():
            return " ".join(value.split())
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_cores() -> int:
    """Logical CPUs this process may run on (its affinity where the OS tells it).

    Returns
    -------
    cores : int
        At least 1.
    """
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def gpu_names() -> list[str]:
    """Names of the CUDA devices torch sees (empty without CUDA).

    Returns
    -------
    names : list of str
        One name per device.
    """
    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def machine_text(cpu: str | None = None, cores: int | None = None,
                 gpus: list[str] | None = None) -> str:
    """E.g. ``"AMD EPYC 7763 64-Core Processor (2 cores)"``, with ``" and 1 GPU (NVIDIA
    H200)"`` where torch sees a GPU. Arguments default to this machine.

    Parameters
    ----------
    cpu : str or None
        Processor name (default :func:`cpu_model`).
    cores : int or None
        Logical CPUs (default :func:`cpu_cores`).
    gpus : list of str or None
        GPU names (default :func:`gpu_names`).

    Returns
    -------
    text : str
        The machine in words.
    """
    cpu = cpu_model() if cpu is None else cpu
    cores = cpu_cores() if cores is None else cores
    gpus = gpu_names() if gpus is None else gpus
    text = f"{cpu} ({cores} core{'s' if cores != 1 else ''})"
    if gpus:
        names = ", ".join(sorted(set(gpus)))
        text += f" and {len(gpus)} GPU{'s' if len(gpus) > 1 else ''} ({names})"
    return text


def format_seconds(seconds: float) -> str:
    """``"4.2 s"`` below a minute, ``"11 min 27 s"`` above, ``"1 h 02 min"`` above an hour.

    Parameters
    ----------
    seconds : float
        A duration (>= 0).

    Returns
    -------
    text : str
        The duration in words.

    Raises
    ------
    ValueError
        If ``seconds`` is negative or NaN.
    """
    if not seconds >= 0:
        raise ValueError(f"seconds must be a non-negative number, got {seconds!r}")
    if seconds < 60:
        return f"{seconds:.1f} s"
    s = round(seconds)
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


def cache_text(read: int, computed: int) -> str:
    """Whether the heavy results were computed in this run or read from the cache.

    Parameters
    ----------
    read : int
        Cached results read in the run (>= 0).
    computed : int
        Cached results computed in the run (>= 0).

    Returns
    -------
    text : str
        A clause of the run line.

    Raises
    ------
    ValueError
        If a count is negative.
    """
    if read < 0 or computed < 0:
        raise ValueError(f"read and computed must be >= 0, got {read}, {computed}")

    def results(n):
        return f"{n} heavy result{'s' if n != 1 else ''}"

    if read == 0 and computed == 0:
        return "it caches no results: everything on it was computed in this run"
    if read == 0:
        return f"its {results(computed)} {'were' if computed > 1 else 'was'} computed in this run"
    if computed == 0:
        return (f"its {results(read)} {'were' if read > 1 else 'was'} read from the cache "
                "(computed by an earlier run with the same code and parameters)")
    return (f"of its heavy results, {computed} {'were' if computed > 1 else 'was'} computed "
            f"in this run and {read} read from the cache")


#: The packages whose versions a run line names, in this order (Python first).
SOFTWARE = ("torch", "numpy", "scipy", "matplotlib", "jupyter-book", "myst-nb")


def software_text() -> str:
    """The versions that built a page: Python and the packages of ``SOFTWARE``, e.g.
    ``"Python 3.11.7, torch 2.14.1, numpy 2.4.6, ..."`` (a package not installed reads
    ``"absent"``).

    Returns
    -------
    text : str
        One comma-separated phrase.
    """
    import importlib.metadata as md

    def version(name: str) -> str:
        if name == "torch":  # with its build (``+cu130``: a CUDA build), as torch reports it
            return torch.__version__
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return "absent"

    return ", ".join([f"Python {platform.python_version()}"]
                     + [f"{name} {version(name)}" for name in SOFTWARE])


def page_report(run: PageRun, *, now: float | None = None, machine: str | None = None) -> str:
    """The run line of a chapter (Markdown): wall time, machine, software versions, cache use.

    Parameters
    ----------
    run : PageRun
        From :func:`start_page`.
    now : float or None
        End time (a ``time.perf_counter()`` value); None: now.
    machine : str or None
        The machine in words (default :func:`machine_text`).

    Returns
    -------
    line : str
        Markdown, one sentence in italics.

    Raises
    ------
    TypeError
        If ``run`` is not a PageRun.
    """
    if not isinstance(run, PageRun):
        raise TypeError(f"run must be a PageRun (from start_page()), got {type(run).__name__}")
    read, computed = run.cache_since()
    machine = machine_text() if machine is None else machine
    return (f"*Run: this page took {format_seconds(run.elapsed(now))} (wall time) on "
            f"{machine}, with {software_text()}; {cache_text(read, computed)}.*")


def glue_page_report(run: PageRun, key: str = "page_run") -> None:
    """Glue :func:`page_report` as Markdown under ``key``, for the ``{glue:md}`` role in the
    chapter's last paragraph (nothing is displayed where the cell runs).

    Parameters
    ----------
    run : PageRun
        From :func:`start_page`.
    key : str
        The glue key (default ``"page_run"``).
    """
    from IPython.display import Markdown
    from myst_nb import glue

    glue(key, Markdown(page_report(run)), display=False)
