"""Disk cache for heavy numerical results.

Usage::

    from fgln.book.cache import cached

    res = cached("depth_scaling", {"depth": 64, "width": 128, "seed": 0},
                 lambda: {"sv": compute_singular_values(...), "runtime": 1.2})

The cache key is the SHA-256 of the canonical JSON of ``name``, ``params``
(keys sorted, recursively) and :func:`code_version`, a hash of the package's
source files, so editing any module of ``fgln`` invalidates every entry. Each entry is stored as
``<name>-<key>.npz`` (arrays and scalars) with a human-readable
``<name>-<key>.json`` sidecar. Both files are written atomically (temporary
file in the same directory, then :func:`os.replace`), so concurrent or
interrupted runs never leave a half-written entry behind.

Cache directory (``cache_dir=None``): ``$FGLN_CACHE_DIR`` if set, else
``<repo root>/.cache/fgln`` when the package lives inside the project
checkout (a parent directory holding this project's ``pyproject.toml``), else
``~/.cache/fgln``.

:func:`cache_counts` tells how many results this process has read from the cache and how
many it has computed (the run report at the end of each chapter says which happened).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from ..base.atomic import atomic_write
from ..base.paths import local_dir

__all__ = [
    "cached",
    "cached_resumable",
    "checkpoint_path",
    "cache_counts",
    "cache_key",
    "code_version",
    "lookup",
    "default_cache_dir",
    "cache_folder",
]

_META_KEY = "__fgln_meta__"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")
# Calls of cached() in this process: results read from disk, results computed.
_COUNTS = {"read": 0, "computed": 0}


def cache_counts() -> dict[str, int]:
    """How many :func:`cached` results this process has ``"read"`` from the cache and how
    many it has ``"computed"`` (a copy; compare two calls to count a stretch of work).

    Returns
    -------
    counts : dict of str to int
        ``{"read": ..., "computed": ...}``.
    """
    return dict(_COUNTS)


def default_cache_dir() -> Path:
    """The cache directory used when ``cache_dir`` is ``None``: ``$FGLN_CACHE_DIR``, else
    ``<repo>/.cache/fgln`` in a checkout, else ``~/.cache/fgln``.

    Returns
    -------
    directory : pathlib.Path
        The default cache folder (not created).
    """
    return local_dir("FGLN_CACHE_DIR", ".cache/fgln", "fgln")


def code_version(package_dir: str | os.PathLike | None = None) -> str:
    """Short SHA-256 (16 hex digits) of the package's source: every ``*.py`` file under
    ``package_dir`` (default: the whole ``fgln`` package, every wing), by relative path and
    content, in sorted order.

    Part of every cache key, so editing any module recomputes what depends on it.

    Parameters
    ----------
    package_dir : str, os.PathLike or None
        Folder of the sources (default: the ``fgln`` package).

    Returns
    -------
    version : str
        16 hex digits.
    """
    root = Path(package_dir) if package_dir is not None else Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode("utf-8") + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _canonical_json(name: str, params: Mapping[str, Any]) -> str:
    payload = {"name": name, "params": params, "code": code_version()}
    try:
        return json.dumps(
            payload, sort_keys=True, separators=(",", ":"), allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"cache params for {name!r} must be JSON-serialisable "
            "(dict/list/str/int/float/bool/None, finite floats; convert numpy "
            f"scalars with int()/float() and arrays with .tolist()): {exc}"
        ) from exc


def cache_key(name: str, params: Mapping[str, Any]) -> str:
    """SHA-256 hex digest identifying (name, params, code_version()).

    Parameters
    ----------
    name : str
        Name of the computation (non-empty).
    params : mapping
        Its parameters, JSON-serialisable (finite floats).

    Returns
    -------
    key : str
        64 hex digits.

    Raises
    ------
    TypeError
        If ``name`` is not a non-empty str, or ``params`` not a mapping of JSON-serialisable
        values.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"cache name must be a non-empty str, got {name!r}")
    if not isinstance(params, Mapping):
        raise TypeError(f"cache params must be a dict, got {type(params).__name__}")
    return hashlib.sha256(_canonical_json(name, params).encode("utf-8")).hexdigest()


def _normalise(name: str, result: Any) -> tuple[dict[str, np.ndarray], list[str]]:
    """Validate a compute() result; return (arrays to store, scalar keys)."""
    if not isinstance(result, Mapping):
        raise TypeError(
            f"compute() for {name!r} must return a dict, got {type(result).__name__}"
        )
    arrays: dict[str, np.ndarray] = {}
    scalars: list[str] = []
    for key, value in result.items():
        if not isinstance(key, str) or not key.isidentifier() or key == _META_KEY:
            raise TypeError(f"result keys must be identifiers, got {key!r}")
        if isinstance(value, (bool, np.bool_, int, float, np.integer, np.floating)):
            scalars.append(key)
            arr = np.asarray(value)
        elif isinstance(value, np.ndarray):
            arr = value
        else:
            raise TypeError(
                f"result[{key!r}] for {name!r} must be a numpy array, int or "
                f"float, got {type(value).__name__}"
            )
        if arr.dtype == object:
            raise TypeError(f"result[{key!r}] for {name!r} has object dtype")
        arrays[key] = arr
    return arrays, scalars


def _to_result(arrays: Mapping[str, np.ndarray], scalars: list[str]) -> dict:
    out: dict[str, Any] = {}
    for key, arr in arrays.items():
        out[key] = arr.item() if key in scalars else np.array(arr)
    return out


def _load(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data[_META_KEY]))
        arrays = {k: data[k] for k in data.files if k != _META_KEY}
    return _to_result(arrays, meta["scalars"])


def _entry(name: str, params: Mapping[str, Any],
           cache_dir: str | os.PathLike | None) -> tuple[str, Path, Path]:
    """(key, .npz path, .json path) of the entry of (name, params) in ``cache_dir``."""
    key = cache_key(name, params)
    directory = cache_folder(cache_dir)
    stem = f"{_SAFE_NAME.sub('_', name)}-{key}"
    return key, directory / f"{stem}.npz", directory / f"{stem}.json"


def lookup(name: str, params: Mapping[str, Any],
           cache_dir: str | os.PathLike | None = None) -> dict | None:
    """The cached result of (name, params) as :func:`cached` returns it, or ``None`` when
    there is none yet (or it cannot be read; :func:`cached` then recomputes it).

    Parameters
    ----------
    name : str
        Name of the computation.
    params : mapping
        Its parameters, JSON-serialisable.
    cache_dir : str, os.PathLike or None
        Cache folder (default :func:`default_cache_dir`).

    Returns
    -------
    result : dict or None
        The cached result, or None.
    """
    _, npz_path, _ = _entry(name, params, cache_dir)
    if not npz_path.is_file():
        return None
    try:
        return _load(npz_path)
    except Exception:
        return None


def cached(
    name: str,
    params: dict,
    compute: Callable[[], dict[str, np.ndarray | float | int]],
    cache_dir: str | os.PathLike | None = None,
) -> dict:
    """Return ``compute()``'s result, computing it only if not cached yet.

    ``params`` must be JSON-serialisable (``TypeError`` otherwise) and should
    contain everything the result depends on. ``compute`` must return a dict
    mapping identifier-like keys to numpy arrays or int/float scalars. The
    returned dict is the same whether freshly computed or loaded: arrays as
    ``np.ndarray``, scalars as Python ``int``/``float``/``bool``.

    Parameters
    ----------
    name : str
        Name of the result (part of the key and of the file name).
    params : dict
        Everything the result depends on, JSON-serialisable.
    compute : callable
        ``compute() -> dict`` of identifier-like keys to arrays or scalars.
    cache_dir : str, os.PathLike or None
        Cache folder (default ``$FGLN_CACHE_DIR``, else ``.cache/fgln`` in the checkout).

    Returns
    -------
    result : dict
        The cached or freshly computed result.

    Raises
    ------
    TypeError
        If ``params`` is not JSON-serialisable.
    """
    key, npz_path, json_path = _entry(name, params, cache_dir)
    result = _read_entry(npz_path)
    if result is not None:
        return result
    # Two processes needing the same entry (chapters executing at once) compute it once: the
    # second waits for the first's lock, then reads what it wrote.
    with _entry_lock(npz_path):
        result = _read_entry(npz_path)
        if result is not None:
            return result
        return _compute_and_store(name, params, compute, key, npz_path, json_path)


def _read_entry(npz_path: Path) -> dict | None:
    """The entry at ``npz_path`` (counted as read), or None when absent or unreadable."""
    if npz_path.is_file():
        try:
            result = _load(npz_path)
            _COUNTS["read"] += 1
            return result
        except Exception as exc:  # corrupt/foreign file: recompute and overwrite
            warnings.warn(f"fgln.book.cache: ignoring unreadable {npz_path} ({exc})", stacklevel=3)
    return None


@contextmanager
def _entry_lock(npz_path: Path) -> Iterator[None]:
    """An exclusive lock on ``<cache>/locks/<entry>.lock`` (POSIX ``flock``; elsewhere none:
    concurrent runs may then compute an entry twice, their writes still atomic)."""
    lock_path = npz_path.parent / "locks" / npz_path.with_suffix(".lock").name
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with open(lock_path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _compute_and_store(name: str, params: Mapping[str, Any], compute: Callable[[], dict],
                       key: str, npz_path: Path, json_path: Path) -> dict:
    directory = npz_path.parent
    arrays, scalars = _normalise(name, compute())
    _COUNTS["computed"] += 1
    directory.mkdir(parents=True, exist_ok=True)
    meta = {"name": name, "key": key, "code_version": code_version(), "scalars": scalars}
    to_save = dict(arrays)
    to_save[_META_KEY] = np.array(json.dumps(meta))
    atomic_write(npz_path, lambda fh: np.savez(fh, **to_save), "wb")

    sidecar = {
        "name": name,
        "params": params,
        "code_version": code_version(),
        "key": key,
        "arrays": {k: {"shape": list(v.shape), "dtype": str(v.dtype)}
                   for k, v in arrays.items() if k not in scalars},
        "scalars": {k: arrays[k].item() for k in scalars},
    }
    text = json.dumps(sidecar, indent=2, sort_keys=True, default=str) + "\n"
    atomic_write(json_path, lambda fh: fh.write(text), "w")
    return _to_result(arrays, scalars)


def cache_folder(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``cache_dir`` (``~`` expanded), or :func:`default_cache_dir` if None.

    Parameters
    ----------
    cache_dir : str, os.PathLike or None
        A folder, or None for the default.

    Returns
    -------
    folder : pathlib.Path
        The folder (not created).
    """
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()


def checkpoint_path(name: str, params: Mapping[str, Any],
                    cache_dir: str | os.PathLike | None = None) -> Path:
    """The checkpoint file of an interrupted :func:`cached_resumable` computation:
    ``<cache>/checkpoints/<name>-<key>.pt``, unique to the name, the parameters and the code.

    Parameters
    ----------
    name : str
        Name of the computation.
    params : mapping
        Its parameters, JSON-serialisable.
    cache_dir : str, os.PathLike or None
        Cache folder (default :func:`default_cache_dir`).

    Returns
    -------
    path : pathlib.Path
        The checkpoint file (neither it nor its folder is created).
    """
    directory = cache_folder(cache_dir)
    return directory / "checkpoints" / f"{_SAFE_NAME.sub('_', name)}-{cache_key(name, params)[:16]}.pt"


def cached_resumable(
    name: str,
    params: dict,
    compute: Callable[[Path], dict[str, np.ndarray | float | int]],
    cache_dir: str | os.PathLike | None = None,
) -> dict:
    """:func:`cached` for a long computation that checkpoints itself: ``compute(path)`` gets
    the :func:`checkpoint_path` of the entry (to write and resume from), and the checkpoint is
    removed once the result is cached.

    Parameters
    ----------
    name : str
        Name of the result.
    params : dict
        Everything the result depends on, JSON-serialisable.
    compute : callable
        ``compute(path) -> dict``, ``path`` the checkpoint file to write and resume from.
    cache_dir : str, os.PathLike or None
        Cache folder (default ``$FGLN_CACHE_DIR``, else ``.cache/fgln`` in the checkout).

    Returns
    -------
    result : dict
        As :func:`cached`.
    """
    ck = checkpoint_path(name, params, cache_dir)

    def run() -> dict:
        out = compute(ck)
        ck.unlink(missing_ok=True)
        return out

    return cached(name, params, run, cache_dir)
