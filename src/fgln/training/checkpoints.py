"""What a training checkpoint holds and how it is written and read back: the RNG states
(torch CPU/CUDA, numpy, python ``random``, a data loader's generators), a fingerprint of the
configuration, and the history, all loadable with ``torch.load(weights_only=True)``; files
are written atomically (:func:`fgln.base.atomic.atomic_write`). Used by
:func:`fgln.training.train.train`.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..base.atomic import atomic_write

__all__ = [
    "FORMAT",
    "loader_generators",
    "rng_state",
    "set_rng_state",
    "fingerprint",
    "history_to_tensors",
    "history_from_tensors",
    "save_checkpoint",
    "load_checkpoint",
]

FORMAT = 1


def loader_generators(data) -> list[torch.Generator]:
    """The torch generators a data loader draws from (its own, its sampler's, its batch
    sampler's), each once.

    Parameters
    ----------
    data : object
        The training data, typically a ``DataLoader``.

    Returns
    -------
    gens : list of torch.Generator
        The distinct generators found, in that order (empty for full-batch data).
    """
    gens, seen = [], set()
    for obj in (data, getattr(data, "sampler", None), getattr(data, "batch_sampler", None),
                getattr(getattr(data, "batch_sampler", None), "sampler", None)):
        g = getattr(obj, "generator", None) if obj is not None else None
        if isinstance(g, torch.Generator) and id(g) not in seen:
            seen.add(id(g))
            gens.append(g)
    return gens


def rng_state(gens: Sequence[torch.Generator], cuda: bool) -> dict:
    """Every random state a run depends on, as tensors and plain values.

    Parameters
    ----------
    gens : sequence of torch.Generator
        The data loader's generators.
    cuda : bool
        Whether to include the states of the CUDA devices.

    Returns
    -------
    state : dict
        ``"torch"``, ``"numpy"``, ``"python"`` and ``"generators"`` (and ``"cuda"``) states,
        loadable with ``torch.load(weights_only=True)``.
    """
    name, keys, pos, has_gauss, cached = np.random.get_state()
    st = {
        "torch": torch.get_rng_state(),
        "numpy": [name, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos),
                  int(has_gauss), float(cached)],
        "python": random.getstate(),
        "generators": [g.get_state() for g in gens],
    }
    if cuda:
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict, gens: Sequence[torch.Generator]) -> None:
    """Restore the random states saved by :func:`rng_state`.

    Parameters
    ----------
    st : dict
        A state from :func:`rng_state`.
    gens : sequence of torch.Generator
        The data loader's generators, in the order they were saved.

    Raises
    ------
    ValueError
        If the number of generators differs from the saved one.
    """
    torch.set_rng_state(st["torch"])
    name, keys, pos, has_gauss, cached = st["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = st["python"]
    random.setstate((version, tuple(internal), gauss))
    if len(st["generators"]) != len(gens):
        raise ValueError("checkpoint: the data loader has a different number of generators")
    for g, s in zip(gens, st["generators"]):
        g.set_state(s)
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def fingerprint(model, optimizer, lr, momentum, weight_decay, dtype, full_batch) -> dict:
    """What identifies a run's configuration in its checkpoint: the parameters' names,
    shapes and dtypes, the optimiser and its settings, full-batch or not.

    Parameters
    ----------
    model : torch.nn.Module
        The trained model.
    optimizer : str or callable
        The optimiser's name or the callable that builds it.
    lr : float
        Learning rate.
    momentum : float
        Momentum.
    weight_decay : float
        Weight decay.
    dtype : torch.dtype or None
        Floating dtype of the run (accepted for the signature; the parameters carry it).
    full_batch : bool
        Whether the data are one full batch.

    Returns
    -------
    fp : dict
        Plain values, compared key by key by :func:`load_checkpoint`.
    """
    opt_name = optimizer if isinstance(optimizer, str) else getattr(optimizer, "__name__",
                                                                    type(optimizer).__name__)
    return {
        "params": [[k, list(v.shape), str(v.dtype)] for k, v in model.state_dict().items()],
        "optimizer": str(opt_name), "lr": float(lr), "momentum": float(momentum),
        "weight_decay": float(weight_decay), "full_batch": bool(full_batch),
    }


def save_checkpoint(path: Path, payload: dict) -> None:
    """Write ``payload`` to ``path`` atomically with ``torch.save``, creating its folder.

    Parameters
    ----------
    path : pathlib.Path
        The checkpoint file.
    payload : dict
        Tensors and plain values only (loadable with ``weights_only=True``).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda fh: torch.save(payload, fh), "wb")


def history_to_tensors(hist):
    """A training history with its arrays turned into tensors, for a checkpoint.

    Parameters
    ----------
    hist : dict of str to list of array_like
        Recorded quantities, one list of arrays per key.

    Returns
    -------
    hist : dict of str to list of Tensor
        The same lists as tensors.
    """
    return {k: [torch.as_tensor(np.asarray(v)) for v in vals] for k, vals in hist.items()}


def history_from_tensors(hist):
    """The inverse of :func:`history_to_tensors`.

    Parameters
    ----------
    hist : dict of str to list of Tensor
        A history read from a checkpoint.

    Returns
    -------
    hist : dict of str to list of numpy.ndarray
        The same lists as arrays.
    """
    return {k: [v.numpy() for v in vals] for k, vals in hist.items()}


def load_checkpoint(path: Path, fp: dict, total: int) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`; ``ValueError`` if it has another
    format, was written by another configuration (``fp``, see :func:`fingerprint`) or is past
    step ``total``.

    Parameters
    ----------
    path : pathlib.Path
        The checkpoint file.
    fp : dict
        Fingerprint of the current run.
    total : int
        Number of updates of the current run.

    Returns
    -------
    ck : dict
        The payload written by :func:`save_checkpoint`.

    Raises
    ------
    ValueError
        If the format, the configuration or the step does not match.
    """
    ck = torch.load(path, map_location="cpu", weights_only=True)
    if ck.get("format") != FORMAT:
        raise ValueError(f"checkpoint {path}: unknown format {ck.get('format')!r}")
    for key, val in fp.items():
        if ck["fingerprint"].get(key) != val:
            raise ValueError(f"checkpoint {path} was written by another configuration: "
                             f"{key} {ck['fingerprint'].get(key)!r} != {val!r}")
    if int(ck["step"]) > total:
        raise ValueError(f"checkpoint {path} is at step {int(ck['step'])}, beyond steps={total}")
    return ck
