"""Atomic file writes: a temporary file in the target folder, then ``os.replace``."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable

__all__ = ["atomic_write"]


def _umask_mode() -> int:
    """Permissions a normally created file would get (mkstemp uses 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "wb") -> Path:
    """Call ``write(fh)`` on a temporary file next to ``path``, then move it into place.

    A reader never sees a half-written file, and an interrupted run leaves no temporary
    file behind. The file gets the permissions of a normally created one.

    Parameters
    ----------
    path : str or os.PathLike
        The target file; its folder must exist.
    write : callable
        Called once with the open temporary file handle.
    mode : str
        Mode of the handle (default ``"wb"``; ``"w"`` for text).

    Returns
    -------
    path : pathlib.Path
        The final path.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path
