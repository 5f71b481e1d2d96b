"""Where the project keeps its local folders: the checkout's root (the folder holding this
project's ``pyproject.toml``) and the rule for a local folder (environment variable, else
inside the checkout, else under ``~/.cache``)."""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["find_repo_root", "local_dir"]


def find_repo_root(start: str | os.PathLike | None = None) -> Path | None:
    """Walk up from ``start`` (default: this file) to the directory holding the
    project's ``pyproject.toml``; return ``None`` if there is none.

    Parameters
    ----------
    start : str or os.PathLike or None
        Where to start (a file or folder); None starts from this module.

    Returns
    -------
    root : pathlib.Path or None
        The first folder upwards whose ``pyproject.toml`` names the project ``fgln``.
    """
    here = Path(start if start is not None else __file__).resolve()
    for d in [here, *here.parents]:
        candidate = d / "pyproject.toml"
        if candidate.is_file():
            try:
                text = candidate.read_text(encoding="utf-8")
            except OSError:
                continue
            if re.search(r'^\s*name\s*=\s*"fgln"\s*$', text, re.MULTILINE):
                return d
    return None


def local_dir(env_var: str, in_repo: str, in_home: str) -> Path:
    """``$env_var`` if set, else ``<repo>/<in_repo>`` in a checkout of the project, else
    ``~/.cache/<in_home>``.

    Parameters
    ----------
    env_var : str
        Name of the environment variable that overrides the folder.
    in_repo : str
        Path of the folder relative to the checkout's root.
    in_home : str
        Path of the folder relative to ``~/.cache``.

    Returns
    -------
    folder : pathlib.Path
        The folder (not created).
    """
    env = os.environ.get(env_var)
    if env:
        return Path(env).expanduser()
    root = find_repo_root()
    if root is not None:
        return root / in_repo
    return Path.home() / ".cache" / in_home
