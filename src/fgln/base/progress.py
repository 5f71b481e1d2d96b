"""Progress bars that can be silenced globally.

``progress`` wraps :mod:`tqdm`. It is silent when ``enable=False``, or when
``enable`` is ``None`` and the environment variable ``FGLN_PROGRESS`` is
``0`` (``make book`` and the test-suite set ``FGLN_PROGRESS=0`` so progress
bars do not end up in the rendered book).
"""

from __future__ import annotations

import importlib.util
import os
from typing import Iterable, TypeVar

T = TypeVar("T")

__all__ = ["progress", "progress_enabled"]


def progress_enabled(enable: bool | None = None) -> bool:
    """Resolve ``enable``: explicit value wins, else ``FGLN_PROGRESS != "0"``.

    Parameters
    ----------
    enable : bool or None
        Explicit choice; None reads ``FGLN_PROGRESS`` (``0``, ``false``, ``no`` or ``off``
        silence the bars).

    Returns
    -------
    enabled : bool
        Whether progress bars are shown.
    """
    if enable is not None:
        return bool(enable)
    return os.environ.get("FGLN_PROGRESS", "1").strip().lower() not in {"0", "false", "no", "off"}


def _tqdm_class():
    # tqdm.auto warns ("IProgress not found") inside Jupyter when ipywidgets
    # is missing; use the plain text bar in that case.
    if importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.auto import tqdm
    else:
        from tqdm.std import tqdm
    return tqdm


def progress(
    iterable: Iterable[T],
    total: int | None = None,
    desc: str | None = None,
    enable: bool | None = None,
) -> Iterable[T]:
    """Iterate over ``iterable`` with a tqdm progress bar (unless silenced).

    Parameters
    ----------
    iterable : iterable
        What to iterate over.
    total : int or None
        Expected number of items (default: tqdm's guess from ``len``).
    desc : str or None
        Label shown before the bar.
    enable : bool or None
        Show the bar; None follows ``FGLN_PROGRESS`` (:func:`progress_enabled`).

    Returns
    -------
    items : iterable
        ``iterable`` itself when silenced, else a tqdm bar over it.
    """
    if not progress_enabled(enable):
        return iterable
    return _tqdm_class()(iterable, total=total, desc=desc)
