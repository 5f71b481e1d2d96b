"""Closed forms of Section 5: Lyapunov exponents and finite-depth constants.

* :func:`lyapunov_exponents` -- Remark 5.4 (exact, for (r, p, sigma)-layers).
* :func:`lyapunov_exponents_approx` -- Remark 5.5 (the normalising denominator dropped).
* :func:`finite_depth_constants` -- ``d_i = -E log|det Omega^{i,i}|`` of Theorem 5.3, in
  closed form (derived in the book, chapter 5):

      d_i = 1/2 * sum_{j=1}^{i} [ psi((n - j + 1)/2) - psi((i - j + 1)/2) ],

  because ``det(Omega^{i,i})^2`` is a product of independent Beta((i-j+1)/2, (n-i)/2)
  variables (the leading i x i block of a Haar orthogonal matrix is a matrix-variate
  Beta), and ``E log Beta(a, b) = psi(a) - psi(a + b)``.
* :func:`predicted_log_singular_values` -- first-order prediction of ``E[(1/L) log s_i]``.

Which formula for *unconditioned* p-gates (the paper's experiments)? A product of i.i.d.
p-gated layers has ``s_i > 0`` exactly when every gate has rank >= i (almost surely), and
conditioning i.i.d. layers on that event makes them i.i.d. (i, p, sigma)-layers. So the
exact statement for index i is Remark 5.4 with ``r = i``: this is what ``min_rank=None``
computes, index by index, and what the book's figures compare against. Remark 5.5 is
kept for reference; it drops the normalisation ``P(rank >= r)``, which is harmless only
when ``i << n p``.

Sign of the finite-depth term. Lemma C.7 gives ``E log||^i J_L|| = L(g_1+...+g_i) + d_i +
o(1)`` with ``d_i >= 0``; differencing in i gives ``E[(1/L) log s_i] = g_i + (d_i -
d_{i-1})/L + o(1/L)``. Theorem 5.3 as printed has the opposite sign ``(d_{i-1} - d_i)/L``.
The numerics (chapter 5) side with the appendix; ``sign="printed"`` reproduces the
printed statement for comparison.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.special import digamma
from scipy.stats import binom

from ..base.statistics import conditional_stats
from ..base.validation import check_exponents, check_int

__all__ = [
    "lyapunov_exponents",
    "lyapunov_exponents_approx",
    "finite_depth_constants",
    "finite_depth_constants_mc",
    "predicted_log_singular_values",
]


def _gamma(n: int, p: float, sigma: float, i: int, r: int, normalise: bool) -> float:
    """Remark 5.4 (normalise=True) / 5.5 (False) for one index i <= r."""
    base = math.log(math.sqrt(2.0) * sigma)
    if p == 1.0:
        return base + 0.5 * float(digamma((n - i + 1) / 2.0))
    t = np.arange(r, n + 1)
    w = binom.pmf(t, n, p)
    num = float(np.sum(w * digamma((t - i + 1) / 2.0)))
    den = float(np.sum(w)) if normalise else 1.0
    return base + num / (2.0 * den)


def lyapunov_exponents(n: int, p: float, sigma: float | None, k: int,
                       min_rank: int | None = None) -> np.ndarray:
    """Exact Lyapunov exponents ``gamma_1..gamma_k`` of (r, p, sigma)-layers (Remark 5.4).

    ``min_rank=r`` fixes the conditioning of every gate; ``None`` uses ``r = i`` for index
    i, the exact value for unconditioned p-gates given ``s_i > 0`` (module docstring).
    ``sigma=None`` means ``1/sqrt(n)``. Returns ndarray[k].

    Parameters
    ----------
    n : int
        Width (>= 1).
    p : float
        Gate probability in (0, 1].
    sigma : float or None
        Standard deviation of the Ginibre entries (> 0); None means ``1/sqrt(n)``.
    k : int
        How many exponents, ``gamma_1..gamma_k`` (in [1, n]; at most ``min_rank``).
    min_rank : int or None
        ``r`` of (r, p)-gates (in [1, n]); None conditions index i on ``r = i``.

    Returns
    -------
    gamma : numpy.ndarray
        ``gamma_1..gamma_k`` [k].

    Raises
    ------
    TypeError
        If ``n``, ``k`` or ``min_rank`` is not an integer, or ``p``, ``sigma`` not a number.
    ValueError
        If one of them is out of range, or ``k > min_rank``.
    """
    n, p, sigma, k, min_rank = check_exponents(n, p, sigma, k, min_rank)
    return np.array([_gamma(n, p, sigma, i, min_rank or i, True) for i in range(1, k + 1)])


def lyapunov_exponents_approx(n: int, p: float, sigma: float | None, k: int,
                              min_rank: int | None = None) -> np.ndarray:
    """Remark 5.5: Remark 5.4 without the normalising denominator ``P(rank >= r)``.

    Parameters
    ----------
    n : int
        Width (>= 1).
    p : float
        Gate probability in (0, 1].
    sigma : float or None
        Standard deviation of the Ginibre entries (> 0); None means ``1/sqrt(n)``.
    k : int
        How many exponents, ``gamma_1..gamma_k`` (in [1, n]; at most ``min_rank``).
    min_rank : int or None
        ``r`` of (r, p)-gates (in [1, n]); None conditions index i on ``r = i``.

    Returns
    -------
    gamma : numpy.ndarray
        Approximate ``gamma_1..gamma_k`` [k].

    Raises
    ------
    TypeError
        If ``n``, ``k`` or ``min_rank`` is not an integer, or ``p``, ``sigma`` not a number.
    ValueError
        If one of them is out of range, or ``k > min_rank``.
    """
    n, p, sigma, k, min_rank = check_exponents(n, p, sigma, k, min_rank)
    return np.array([_gamma(n, p, sigma, i, min_rank or i, False) for i in range(1, k + 1)])


def finite_depth_constants(n: int, k: int) -> np.ndarray:
    """``d_0 = 0, d_1, ..., d_k`` of Theorem 5.3 in closed form; ndarray[k+1].

    ``d_i = -E log|det Omega^{i,i}| = 1/2 sum_{j=1}^i [psi((n-j+1)/2) - psi((i-j+1)/2)]``.

    Parameters
    ----------
    n : int
        Width (>= 1).
    k : int
        Largest index (in [0, n]).

    Returns
    -------
    d : numpy.ndarray
        ``d_0..d_k`` [k+1], ``d_0 = 0``.

    Raises
    ------
    TypeError
        If ``n`` or ``k`` is not an integer.
    ValueError
        If ``n < 1`` or ``k`` lies outside [0, n].
    """
    n = check_int("n", n, 1)
    k = check_int("k", k, 0, n)
    d = np.zeros(k + 1)
    for i in range(1, k + 1):
        j = np.arange(1, i + 1)
        d[i] = 0.5 * float(np.sum(digamma((n - j + 1) / 2.0) - digamma((i - j + 1) / 2.0)))
    return d


def finite_depth_constants_mc(n: int, k: int, replicates: int = 2000, seed: int = 0,
                              ) -> tuple[np.ndarray, np.ndarray]:
    """Monte Carlo estimate of ``d_0..d_k`` and its standard error, [k+1] each.

    ``d_i = -E log|det Omega^{i,i}|`` over ``replicates`` Haar orthogonal ``Omega``
    (:func:`fgln.products.sampling.haar_orthogonal`).

    Parameters
    ----------
    n : int
        Width (>= 1).
    k : int
        Largest index (in [0, n]).
    replicates : int
        Haar matrices drawn (>= 2; default 2000).
    seed : int
        Start value of the random stream (>= 0).

    Returns
    -------
    d : numpy.ndarray
        Monte Carlo mean of ``d_0..d_k`` [k+1].
    se : numpy.ndarray
        Its standard error [k+1] (NaN at index 0).

    Raises
    ------
    TypeError
        If an argument is not an integer.
    ValueError
        If one is out of range.
    """
    import torch

    from ..products.sampling import haar_orthogonal

    n = check_int("n", n, 1)
    k = check_int("k", k, 0, n)
    replicates = check_int("replicates", replicates, 2)
    q = haar_orthogonal(n, check_int("seed", seed, 0), batch=replicates)
    vals = np.zeros((replicates, k + 1))
    for i in range(1, k + 1):
        vals[:, i] = -torch.linalg.slogdet(q[:, :i, :i]).logabsdet.numpy()
    st = conditional_stats(vals)
    return st["mean"], st["se"]


def predicted_log_singular_values(n: int, L: int, p: float, sigma: float | None, k: int,
                                  min_rank: int | None = None, *,
                                  sign: str = "appendix") -> np.ndarray:
    """First-order prediction of ``E[(1/L) log s_{i,L}]``, i = 1..k (Theorem 5.3).

    ``sign="appendix"`` (default): ``gamma_i + (d_i - d_{i-1})/L``, as Lemma C.7 implies and
    the numerics confirm. ``sign="printed"``: ``gamma_i + (d_{i-1} - d_i)/L`` as printed in
    Theorem 5.3. Exponents as in :func:`lyapunov_exponents`.

    Parameters
    ----------
    n : int
        Width (>= 1).
    L : int
        Depth (>= 1).
    p : float
        Gate probability in (0, 1].
    sigma : float or None
        Standard deviation of the Ginibre entries (> 0); None means ``1/sqrt(n)``.
    k : int
        How many exponents, ``gamma_1..gamma_k`` (in [1, n]; at most ``min_rank``).
    min_rank : int or None
        ``r`` of (r, p)-gates (in [1, n]); None conditions index i on ``r = i``.
    sign : {"appendix", "printed"}
        Sign of the finite-depth term (default ``"appendix"``).

    Returns
    -------
    prediction : numpy.ndarray
        ``E[(1/L) log s_{i,L}]`` to first order, i = 1..k [k].

    Raises
    ------
    TypeError
        If ``n``, ``L``, ``k`` or ``min_rank`` is not an integer, or ``p``, ``sigma`` not a
        number.
    ValueError
        If one of them is out of range, ``k > min_rank`` or ``sign`` is unknown.
    """
    L = check_int("L", L, 1)
    if sign not in ("appendix", "printed"):
        raise ValueError(f"sign must be 'appendix' or 'printed', got {sign!r}")
    gam = lyapunov_exponents(n, p, sigma, k, min_rank)
    d = finite_depth_constants(n, k)
    corr = (d[1:] - d[:-1]) / L
    return gam + corr if sign == "appendix" else gam - corr
