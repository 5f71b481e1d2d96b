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
    gens, seen = [], set()
    for obj in (data, getattr(data, "sampler", None), getattr(data, "batch_sampler", None),
                getattr(getattr(data, "batch_sampler", None), "sampler", None)):
        g = getattr(obj, "generator", None) if obj is not None else None
        if isinstance(g, torch.Generator) and id(g) not in seen:
            seen.add(id(g))
            gens.append(g)
    return gens


def rng_state(gens: Sequence[torch.Generator], cuda: bool) -> dict:
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
    opt_name = optimizer if isinstance(optimizer, str) else getattr(optimizer, "__name__",
                                                                    type(optimizer).__name__)
    return {
        "params": [[k, list(v.shape), str(v.dtype)] for k, v in model.state_dict().items()],
        "optimizer": str(opt_name), "lr": float(lr), "momentum": float(momentum),
        "weight_decay": float(weight_decay), "full_batch": bool(full_batch),
    }


def save_checkpoint(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda fh: torch.save(payload, fh), "wb")


def history_to_tensors(hist):
    return {k: [torch.as_tensor(np.asarray(v)) for v in vals] for k, vals in hist.items()}


def history_from_tensors(hist):
    return {k: [v.numpy() for v in vals] for k, vals in hist.items()}


def load_checkpoint(path: Path, fp: dict, total: int) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`; ``ValueError`` if it has another
    format, was written by another configuration (``fp``, see :func:`fingerprint`) or is past
    step ``total``."""
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
