"""Statistics over independent replicates (seeds, networks, draws): results stacked over
replicates, means, standard errors, line fits.

Entries that are not finite (NaN: an undefined quantity; ``-inf``: ``log 0`` of an exact
zero singular value) are left out, so every statistic is conditional on the quantity being
defined, and the count of the entries used is reported alongside.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["stack_replicates", "conditional_stats", "mean_se", "fit_slopes"]


def stack_replicates(results: Sequence[Mapping], keys: Sequence[str] | None = None
                     ) -> dict[str, np.ndarray]:
    """The results of independent replicates, each field stacked along a new first axis.

    Parameters
    ----------
    results : sequence of mappings
        One result per replicate (e.g. the dicts of numpy arrays a grid point returns), at
        least one, each holding every key in ``keys`` with the same shape in every result.
    keys : sequence of str, optional
        The fields to stack; default: every key of ``results[0]``, in its order.

    Returns
    -------
    dict of str to numpy.ndarray
        ``key -> np.stack([r[key] for r in results])``, shape ``[replicates, *shape]`` (a
        scalar field gives ``[replicates]``).

    Raises
    ------
    TypeError
        ``results`` is not a sequence of mappings, or ``keys`` not a sequence of strings.
    ValueError
        ``results`` is empty, a result lacks a key, or a field changes shape between results.
    """
    if isinstance(results, (str, bytes, Mapping)) or not isinstance(results, Sequence):
        raise TypeError(f"results must be a sequence of mappings, got {type(results).__name__}")
    if not results:
        raise ValueError("results must hold at least one replicate, got none")
    for i, r in enumerate(results):
        if not isinstance(r, Mapping):
            raise TypeError(f"results[{i}] must be a mapping, got {type(r).__name__}")
    if keys is None:
        keys = list(results[0])
    elif isinstance(keys, str) or not all(isinstance(k, str) for k in keys):
        raise TypeError(f"keys must be a sequence of strings, got {keys!r}")
    out = {}
    for key in keys:
        missing = [i for i, r in enumerate(results) if key not in r]
        if missing:
            raise ValueError(f"results[{missing[0]}] has no field {key!r}")
        arrays = [np.asarray(r[key]) for r in results]
        if any(a.shape != arrays[0].shape for a in arrays):
            raise ValueError(f"field {key!r} of results changes shape between replicates: "
                             f"{sorted({a.shape for a in arrays})}")
        out[key] = np.stack(arrays)
    return out


def conditional_stats(x, axis: int = 0) -> dict[str, np.ndarray]:
    """Mean, standard error and count of the finite entries of ``x`` along ``axis``.

    Entries that are NaN or infinite are left out, so each statistic is conditional on the
    quantity being defined.

    Parameters
    ----------
    x : array_like
        Values, replicates along ``axis``.
    axis : int
        The replicate axis (default 0).

    Returns
    -------
    stats : dict of str to numpy.ndarray
        ``mean``, ``se`` (standard error of the mean; NaN with fewer than 2 entries),
        ``sd`` (sample standard deviation, ddof 1), ``count`` and ``frac`` (count / size
        along ``axis``); each has the shape of ``x`` without ``axis``.
    """
    x = np.asarray(x, dtype=float)
    fin = np.isfinite(x)
    cnt = fin.sum(axis)
    xs = np.where(fin, x, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = xs.sum(axis) / cnt
        dev = np.where(fin, x - np.expand_dims(mean, axis), 0.0)
        var = (dev**2).sum(axis) / (cnt - 1)
        se = np.sqrt(var / cnt)
    mean = np.where(cnt > 0, mean, np.nan)
    se = np.where(cnt > 1, se, np.nan)
    sd = np.where(cnt > 1, np.sqrt(np.where(cnt > 1, var, 0.0)), np.nan)
    return {"mean": mean, "se": se, "sd": sd, "count": cnt, "frac": cnt / x.shape[axis]}


def mean_se(x, axis: int = 0, *,
            nonfinite: str = "raise") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mean, standard error, standard deviation)`` along ``axis``.

    Parameters
    ----------
    x : array_like
        Values, replicates along ``axis``.
    axis : int
        The replicate axis (default 0).
    nonfinite : {"raise", "drop"}
        What a NaN or infinite entry does: ``"raise"`` (default) refuses it, ``"drop"``
        averages the finite entries only (:func:`conditional_stats` also reports how many).

    Returns
    -------
    mean, se, sd : numpy.ndarray
        As in :func:`conditional_stats`, each of the shape of ``x`` without ``axis``.

    Raises
    ------
    ValueError
        If ``nonfinite`` is ``"raise"`` and an entry is not finite (the message gives how
        many), or ``nonfinite`` is neither value.
    """
    if nonfinite not in ("raise", "drop"):
        raise ValueError(f"nonfinite must be 'raise' or 'drop', got {nonfinite!r}")
    if nonfinite == "raise":
        arr = np.asarray(x, dtype=float)
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        if bad:
            raise ValueError(f"mean_se: {bad} of {arr.size} entries are not finite; pass "
                             "nonfinite='drop' to average the finite ones")
    st = conditional_stats(x, axis)
    return st["mean"], st["se"], st["sd"]


def fit_slopes(x, Y) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares lines ``Y[:, j] ~ a_j x + b_j``; x [m], Y [m, q] -> (a [q], b [q]).

    A one-dimensional ``Y`` [m] gives scalars ``(a, b)``.

    Parameters
    ----------
    x : array_like
        Abscissae [m].
    Y : array_like
        Ordinates [m] or [m, q], one line per column.

    Returns
    -------
    a : numpy.ndarray or float
        Slopes [q] (a scalar for ``Y`` [m]).
    b : numpy.ndarray or float
        Intercepts [q] (a scalar for ``Y`` [m]).

    Raises
    ------
    ValueError
        If ``x`` is not one-dimensional or ``Y`` is not [m] or [m, q] with the length of ``x``.
    """
    x = np.asarray(x, dtype=float)
    Y = np.asarray(Y, dtype=float)
    if x.ndim != 1 or Y.shape[0] != x.shape[0] or Y.ndim > 2:
        raise ValueError(f"need x [m] and Y [m] or [m, q], got {x.shape} and {Y.shape}")
    squeeze = Y.ndim == 1
    Y = Y[:, None] if squeeze else Y
    X = np.stack([x, np.ones_like(x)], 1)
    coef, *_ = np.linalg.lstsq(X, Y, rcond=None)
    a, b = coef[0], coef[1]
    return (a[0], b[0]) if squeeze else (a, b)
