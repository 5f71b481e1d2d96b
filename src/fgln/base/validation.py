"""Argument checks shared by the modules, each naming the argument: ``TypeError`` for a
wrong type, ``ValueError`` for a bad value."""
from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "check_int",
    "check_k",
    "check_positive",
    "check_p",
    "check_sigma",
    "check_network",
    "check_layers",
    "check_widths",
    "check_matrix",
    "check_square_stack",
    "check_series",
    "as64",
    "resolve_device",
]


def check_int(name: str, value, low: int, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]`` (``high=None``: no upper bound).

    ``TypeError`` when ``value`` is not an integer (bools and floats included, even 3.0),
    ``ValueError`` when it lies outside the range.

    Parameters
    ----------
    name : str
        The argument's name, quoted in the error messages.
    value : int
        The value to check (a Python or NumPy integer; bools are refused).
    low : int
        Smallest allowed value.
    high : int or None
        Largest allowed value; None: no upper bound.

    Returns
    -------
    value : int
        ``value`` as a Python int.

    Raises
    ------
    TypeError
        If ``value`` is not an integer.
    ValueError
        If ``value`` lies outside ``[low, high]``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        shown = "NaN" if isinstance(value, float) and math.isnan(value) else repr(value)
        raise TypeError(f"{name} must be an integer >= {low}, got {shown} "
                        f"({type(value).__name__})")
    value = int(value)
    if value < low or (high is not None and value > high):
        rng = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be an integer in {rng}, got {value}")
    return value


def check_p(p) -> float:
    """A gate probability in (0, 1]: ``TypeError`` for a non-number, ``ValueError`` outside
    the range (NaN included).

    Parameters
    ----------
    p : float
        Probability that a gate is open (Definition 5.1).

    Returns
    -------
    p : float
        ``p`` as a float in (0, 1].

    Raises
    ------
    TypeError
        If ``p`` is not a number.
    ValueError
        If ``p`` lies outside (0, 1] or is NaN.
    """
    if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)):
        raise TypeError(f"p must be a number in (0, 1], got {p!r} ({type(p).__name__})")
    p = float(p)
    if not (0.0 < p <= 1.0):  # also rejects NaN
        raise ValueError(f"p must be in (0, 1], got {p}")
    return p


def check_positive(name: str, value) -> float:
    """``value`` as a positive finite float: ``TypeError`` for a non-number, ``ValueError``
    for zero, a negative number, NaN or inf.

    Parameters
    ----------
    name : str
        The argument's name, quoted in the error messages.
    value : float
        The value to check.

    Returns
    -------
    value : float
        ``value`` as a float, positive and finite.

    Raises
    ------
    TypeError
        If ``value`` is not a number.
    ValueError
        If ``value`` is zero, negative, NaN or infinite.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a positive finite number, got {value!r} "
                        f"({type(value).__name__})")
    value = float(value)
    if not (value > 0.0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive finite number (> 0), got {value}")
    return value


def check_sigma(n: int, sigma) -> float:
    """A positive finite weight scale; ``None`` means ``1/sqrt(n)``.

    Parameters
    ----------
    n : int
        Width of the layers, for the default.
    sigma : float or None
        Standard deviation of the weights' entries; None: ``1/sqrt(n)``.

    Returns
    -------
    sigma : float
        The weight scale, positive and finite.

    Raises
    ------
    TypeError
        If ``sigma`` is neither None nor a number.
    ValueError
        If ``sigma`` is not positive and finite.
    """
    if sigma is None:
        return 1.0 / math.sqrt(n)
    return check_positive("sigma", sigma)


def check_network(n, L, p, sigma, r) -> tuple[int, int, float, float, int | None]:
    """Validated ``(n, L, p, sigma, r)`` of a gated network (Definitions 5.1, 5.2).

    ``sigma=None`` becomes ``1/sqrt(n)``; ``r`` (or None) must lie in [1, n] and be
    reachable: a rank-``r`` p-gate must have probability at least 1e-9, so that the
    rejection sampler of (r, p)-gates terminates.

    Parameters
    ----------
    n : int
        Width of every layer (>= 1).
    L : int
        Depth, the number of layers (>= 1).
    p : float
        Probability that a gate is open, in (0, 1].
    sigma : float or None
        Standard deviation of the weights' entries; None: ``1/sqrt(n)``.
    r : int or None
        Smallest rank allowed for a gate (the (r, p)-gates of Definition 5.2), in [1, n];
        None: no condition.

    Returns
    -------
    n, L, p, sigma, r : tuple of (int, int, float, float, int or None)
        The validated values, ``sigma`` resolved.

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If an argument lies outside its range, or ``r`` has probability below 1e-9.
    """
    n = check_int("n", n, 1)
    L = check_int("L", L, 1)
    p = check_p(p)
    sigma = check_sigma(n, sigma)
    if r is not None:
        r = check_int("r", r, 1, n)
        from scipy.stats import binom

        prob = float(binom.sf(r - 1, n, p))
        if prob < 1e-9:
            raise ValueError(
                f"r={r} is practically unreachable for n={n}, p={p} "
                f"(P(rank >= r) = {prob:.2e} < 1e-9)")
    return n, L, p, sigma, r


def check_layers(layers, name: str = "layers") -> tuple[int, int, int]:
    """``(replicates, L, n)`` of a stack of square matrices [replicates, L, n, n] (layers, or
    the weights of networks).

    Parameters
    ----------
    layers : Tensor
        A stack of square matrices [replicates, L, n, n].
    name : str
        The argument's name, for the messages.

    Returns
    -------
    replicates, L, n : tuple of int
        The stack's sizes.

    Raises
    ------
    TypeError
        If ``layers`` is not a tensor.
    ValueError
        If ``layers`` is not 4-d with square trailing dimensions.
    """
    if not isinstance(layers, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(layers).__name__}")
    if layers.ndim != 4 or layers.shape[-1] != layers.shape[-2]:
        raise ValueError(f"{name} must have shape [replicates, L, n, n], "
                         f"got {tuple(layers.shape)}")
    b, L, n, _ = layers.shape
    return b, L, n


def check_k(k, J: torch.Tensor) -> int:
    """How many singular values of ``J`` to take: ``k`` in [1, min(J.shape)], ``None``: all.

    Parameters
    ----------
    k : int or None
        How many singular values to take; None: all, ``min(J.shape)``.
    J : Tensor
        The matrix [m, n] whose singular values are taken.

    Returns
    -------
    k : int
        ``k`` in [1, min(m, n)].

    Raises
    ------
    TypeError
        If ``k`` is neither None nor an integer.
    ValueError
        If ``k`` lies outside [1, min(m, n)].
    """
    kmax = min(J.shape)
    return kmax if k is None else check_int("k", k, 1, kmax)


def check_widths(widths) -> list[int]:
    """``widths`` ``[n_0, ..., n_L]`` as positive ints (at least two).

    Parameters
    ----------
    widths : sequence of int
        Layer widths ``n_0, ..., n_L``.

    Returns
    -------
    widths : list of int
        The widths as Python ints.

    Raises
    ------
    TypeError
        If ``widths`` is not a sequence or an entry is not an integer.
    ValueError
        If there are fewer than two widths or one is below 1.
    """
    try:
        widths = list(widths)
    except TypeError:
        raise TypeError(f"widths must be a sequence of >= 2 positive integers, "
                        f"got {widths!r}") from None
    if len(widths) < 2:
        raise ValueError(f"widths must list n_0, ..., n_L (at least 2 entries), got {widths!r}")
    return [check_int(f"widths[{i}]", w, 1) for i, w in enumerate(widths)]


def check_matrix(name: str, x) -> torch.Tensor:
    """``x`` as a finite 2-d float64 tensor (detached).

    Parameters
    ----------
    name : str
        The argument's name, quoted in the error messages.
    x : Tensor
        The matrix to check [m, n].

    Returns
    -------
    x : Tensor
        ``x`` detached, in float64 [m, n].

    Raises
    ------
    TypeError
        If ``x`` is not a tensor.
    ValueError
        If ``x`` is not 2-d or has non-finite entries.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a 2-d tensor, got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-d tensor, got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} has non-finite entries")
    return as64(x)


def check_square_stack(A: torch.Tensor) -> None:
    """``A`` [..., n, n]: non-empty, square, finite (for the diagonal correlation).

    Parameters
    ----------
    A : Tensor
        Square matrices [..., n, n].

    Raises
    ------
    ValueError
        If ``A`` has fewer than 2 dimensions, is not square, is empty or has non-finite entries.
    """
    if A.ndim < 2:
        raise ValueError(f"diagonal correlation needs a square matrix, got shape {tuple(A.shape)}")
    if A.shape[-1] != A.shape[-2]:
        raise ValueError(
            f"diagonal correlation needs square matrices, got shape {tuple(A.shape)} "
            f"({A.shape[-2]} x {A.shape[-1]})")
    if A.numel() == 0:
        raise ValueError(f"diagonal correlation of an empty array (shape {tuple(A.shape)})")
    if not bool(torch.isfinite(A).all()):
        raise ValueError("diagonal correlation needs finite entries (got NaN or inf)")


def check_series(name: str, x, n: int | None = None) -> np.ndarray:
    """``x`` as a finite 1-d float array of length ``n`` (``None``: at least 2).

    Parameters
    ----------
    name : str
        The argument's name, quoted in the error messages.
    x : array_like
        The series to check.
    n : int or None
        Required length; None: any length >= 2.

    Returns
    -------
    x : numpy.ndarray
        ``x`` as a 1-d float array.

    Raises
    ------
    ValueError
        If ``x`` is not 1-d, has the wrong length or has non-finite entries.
    """
    x = np.asarray(x, dtype=float)
    if x.ndim != 1 or (n is not None and x.shape[0] != n) or x.shape[0] < 2:
        want = f"length {n}" if n is not None else "length >= 2"
        raise ValueError(f"{name} must be 1-d of {want}, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} has non-finite entries")
    return x


def as64(x: torch.Tensor) -> torch.Tensor:
    """``x`` detached, in float64 (the dtype of every spectral quantity here).

    Parameters
    ----------
    x : Tensor
        Any tensor.

    Returns
    -------
    x64 : Tensor
        ``x`` detached and converted to float64, same shape.
    """
    return x.detach().to(torch.float64)


def resolve_device(device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else -> ``torch.device(device)``.

    Parameters
    ----------
    device : str or torch.device
        ``"auto"``, a device name such as ``"cpu"`` or ``"cuda:0"``, or a device.

    Returns
    -------
    device : torch.device
        The device to compute on.

    Raises
    ------
    ValueError
        If ``device`` names no device.
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or a torch.device, "
                         f"got {device!r}") from None
