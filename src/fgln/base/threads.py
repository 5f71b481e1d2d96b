"""Intra-op thread control for torch (batched small factorisations run best on one thread)."""
from __future__ import annotations

import functools
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

import torch

__all__ = ["torch_threads", "single_threaded"]

F = TypeVar("F", bound=Callable)


@contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Temporarily run torch with ``n`` intra-op threads (restored afterwards).

    Batched SVDs and QRs of small matrices do not gain from intra-op threads; on a loaded
    2-core machine (AMD EPYC VM, torch 2.13 CPU build) the default of 2 threads was measured
    50-100x slower than 1 thread, the idle worker spinning against the other processes.

    Parameters
    ----------
    n : int
        Intra-op threads inside the block (default 1).

    Yields
    ------
    None
        Control to the ``with`` block, with ``n`` threads set.
    """
    old = torch.get_num_threads()
    if old != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if old != n:
            torch.set_num_threads(old)


def single_threaded(fn: F) -> F:
    """Decorator: run ``fn`` inside :func:`torch_threads` (1).

    Parameters
    ----------
    fn : callable
        The function to wrap.

    Returns
    -------
    wrapper : callable
        ``fn`` with the same signature, run with one intra-op thread.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with torch_threads(1):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
