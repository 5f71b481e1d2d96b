"""Thread control for torch: batched factorisations of small matrices (LAPACK loops over the
batch) run best with one thread per matrix, the batch split over the cores."""
from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

import torch

__all__ = ["torch_threads", "single_threaded", "batch_parallel"]

F = TypeVar("F", bound=Callable)


@contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Temporarily run torch with ``n`` intra-op threads (restored afterwards).

    Batched SVDs and QRs of small matrices do not gain from intra-op threads; on a loaded
    2-core machine (AMD EPYC VM, torch 2.13 CPU build) the default of 2 threads was measured
    50-100x slower than 1 thread, the idle worker spinning against the other processes.
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
    """Decorator: run ``fn`` inside :func:`torch_threads` (1)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with torch_threads(1):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def batch_parallel(fn: Callable, *tensors: torch.Tensor, min_numel: int = 2**16):
    """``fn(*tensors)`` with the batch (dim 0 of every argument) split into one part per
    intra-op thread, the parts run concurrently, each single-threaded; outputs (a tensor or
    a tuple of tensors, batch first) concatenated. For batched LAPACK calls on the CPU
    (``geqrf``, ``ormqr``, ``householder_product``, ``svdvals``), which loop over the batch:
    on a 2-core AMD EPYC VM (torch 2.14) a ``geqrf`` of 32 matrices 128 x 50 took 7.9 ms with
    2 intra-op threads and 2.3 ms split in two. Elsewhere (CUDA, one thread, batch 1, or
    fewer than ``min_numel`` elements in the first argument, where starting threads costs
    more than it saves) it is ``fn(*tensors)``.
    """
    parts = torch.get_num_threads()
    x = tensors[0]
    if x.device.type != "cpu" or parts < 2 or x.shape[0] < 2 or x.numel() < min_numel:
        return fn(*tensors)
    chunks = list(zip(*(t.chunk(parts) for t in tensors)))
    with torch_threads(1), ThreadPoolExecutor(len(chunks)) as pool:
        outs = list(pool.map(lambda args: fn(*args), chunks))
    if isinstance(outs[0], tuple):
        return tuple(torch.cat(parts) for parts in zip(*outs))
    return torch.cat(outs)
