"""Grid points for tests/test_sweep.py: top-level, so that worker processes can import them
(this folder is on ``sys.path`` under pytest and is passed on to spawned workers)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch


def logged_square(x: int, *, log: str, pause: float = 0.0, broken: str = "") -> dict:
    """``x**2``; appends ``x`` to the file ``log`` when it starts (one line per computation),
    sleeps ``pause`` seconds, and raises ``ValueError`` while the file ``broken`` exists."""
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"{x}\n")
    if broken and Path(broken).exists():
        raise ValueError(f"task {x} is broken")
    time.sleep(pause)
    return {"y": np.array([float(x) ** 2]), "x": int(x)}


def computed(log: str | Path) -> list[int]:
    """The task arguments ``logged_square`` was computed for, in order."""
    path = Path(log)
    return [int(v) for v in path.read_text(encoding="utf-8").split()] if path.exists() else []


def torch_thread_count(tag: int) -> dict:
    """The torch intra-op threads a task runs with."""
    return {"threads": torch.get_num_threads(), "tag": int(tag)}
