"""The Section 8 training run as a cached task: one function of its parameters (seed, data
source and sizes, configuration) that any executor of :func:`fgln.book.sweep.run_grid` can run, with
a checkpoint every epoch, and :func:`cached_run`, the same task in this process."""
from __future__ import annotations

import multiprocessing
import os
import warnings
from functools import partial
from typing import Callable

from ..book.cache import cache_folder, cached, checkpoint_path
from ..mnist.data import BundledMnistWarning, Mnist, load_mnist
from ..mnist.model import MnistConfig
from ..mnist.run import run_params, train_mnist

__all__ = ["cached_run", "train_task", "train_point"]


def cached_run(config: MnistConfig, seed: int, data: Mnist, *,
               cache_dir: str | os.PathLike | None = None, device="cpu", workers: int = 1,
               progress: bool | None = None) -> dict:
    """:func:`.train_mnist` on ``data`` through :func:`fgln.book.cache.cached` (trained once per
    configuration, seed, data source and code version), in this process: the task of
    :func:`train_task`. The device is not part of the key (a GPU result is reused on a CPU).

    Parameters
    ----------
    config : MnistConfig
        The run's configuration.
    seed : int
        The run's seed (>= 0).
    data : Mnist
        The digits it trains on.
    cache_dir : str, os.PathLike or None
        Cache folder (default ``$FGLN_CACHE_DIR``, else ``.cache/fgln`` in the checkout).
    device : str or torch.device
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    workers : int
        Loader processes for the augmentation (>= 0).
    progress : bool or None
        Show a progress bar (None: follow ``FGLN_PROGRESS``).

    Returns
    -------
    result : dict
        As :func:`fgln.mnist.run.train_mnist`.
    """
    name, params, fn = train_task(config, seed, data, cache_dir=cache_dir, device=device,
                                  workers=workers, progress=progress)
    return cached(name, params, lambda: fn(**params, data=data), cache_dir=cache_dir)


def train_task(config: MnistConfig, seed: int, data: Mnist, *,
               cache_dir: str | os.PathLike | None = None, device="cpu", workers: int = 1,
               progress: bool | None = None) -> tuple[str, dict, Callable[..., dict]]:
    """One training run as a task ``(name, params, fn)`` of :func:`fgln.book.sweep.run_grid`, keyed
    by configuration, seed, data source and sizes, computed by :func:`train_point` on whichever
    worker runs it, with a checkpoint every epoch in ``<cache>/checkpoints``.

    Parameters
    ----------
    config : MnistConfig
        The run's configuration.
    seed : int
        The run's seed (>= 0).
    data : Mnist
        The digits it trains on.
    cache_dir : str, os.PathLike or None
        Cache folder (default ``$FGLN_CACHE_DIR``, else ``.cache/fgln`` in the checkout).
    device : str or torch.device
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    workers : int
        Loader processes for the augmentation (>= 0).
    progress : bool or None
        Show a progress bar (None: follow ``FGLN_PROGRESS``).

    Returns
    -------
    name : str
        The cache name.
    params : dict
        The task's parameters (its cache key).
    fn : callable
        :func:`train_point` with its options bound.
    """
    fn = partial(train_point, cache_dir=str(cache_folder(cache_dir).absolute()),
                 device=device, workers=workers, progress=progress)
    return "mnist_train", run_params(config, seed, data), fn


def train_point(*, seed: int, source: str, n_train_total: int, n_test_total: int,
                cache_dir: str | os.PathLike | None = None, device="cpu", workers: int = 1,
                progress: bool | None = None, data: Mnist | None = None, **config) -> dict:
    """Grid point of one training run (``config``: the fields of :class:`.MnistConfig`).
    ``data`` (default: the MNIST at hand where it runs, loaded without download) must be
    ``source`` with ``n_train_total`` / ``n_test_total`` images (``ValueError`` otherwise).
    The checkpoint (:func:`fgln.book.cache.checkpoint_path` of the task in ``cache_dir``) is
    resumed from, then removed. In a daemonic process
    (a dask worker) the augmentation runs in the training process (``workers=0``; the draws
    do not depend on the loader processes).

    Parameters
    ----------
    seed : int
        The run's seed (>= 0).
    source : str
        ``"full"`` or ``"bundled"``: the data the run must use.
    n_train_total, n_test_total : int
        Sizes of the splits it must use.
    cache_dir : str, os.PathLike or None
        Cache folder holding the checkpoint (default :func:`fgln.book.cache.default_cache_dir`).
    device : str or torch.device
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    workers : int
        Loader processes for the augmentation (>= 0).
    progress : bool or None
        Show a progress bar (None: follow ``FGLN_PROGRESS``).
    data : Mnist or None
        The digits (None: loaded without download).
    **config
        The fields of :class:`fgln.mnist.model.MnistConfig`.

    Returns
    -------
    result : dict
        As :func:`fgln.mnist.run.train_mnist`.

    Raises
    ------
    ValueError
        If the data at hand are not ``source`` with the given sizes.
    """
    cfg = MnistConfig(**{**config, "k_align": tuple(config.get("k_align", (10, 64)))})
    if data is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BundledMnistWarning)
            data = load_mnist(seed=seed, download=False)
    found = (data.source, len(data.train), len(data.test))
    if found != (source, n_train_total, n_test_total):
        raise ValueError(f"this worker has MNIST {found[0]} ({found[1]} / {found[2]} images), "
                         f"the task needs {source} ({n_train_total} / {n_test_total}): put the "
                         "same MNIST files in the data folder of every worker")
    if multiprocessing.current_process().daemon:
        workers = 0
    ck = checkpoint_path("mnist_train", run_params(cfg, seed, data), cache_dir)
    out = train_mnist(cfg, seed=seed, data=data, device=device, workers=workers, checkpoint=ck,
                      progress=progress)
    ck.unlink(missing_ok=True)
    return out
