"""Closed forms of results the paper cites in its Section 2, and of the law of its gates.

* :func:`fuss_catalan_moments` -- the moments of the squared singular values of a product of
  ``L`` independent Ginibre matrices of variance ``1/n``, as ``n -> infinity``: the Fuss-Catalan
  numbers ``binom((L+1) j, j) / (L j + 1)`` (free probability; the computation behind the
  Jacobian spectra of deep linear networks in Pennington et al., 2017 and 2018). ``L = 1`` gives
  the Catalan numbers of the Marchenko-Pastur law.
* :func:`balanced_mode_trajectory` -- a singular value of a balanced deep linear network whose
  singular bases are those of the target, under gradient flow on ``1/2 ||J - Y||_F^2``:
  ``ds/dt = L s^(2-2/L) (y - s)`` (Arora et al., 2019, with a gradient aligned to the mode);
  for ``L = 2`` the logistic curve of Saxe et al. (2014), for ``L = 1`` a plain exponential
  relaxation.
* :func:`gate_rank_law` -- the law of the rank of a p-gate or an (r, p)-gate (Definitions 5.1
  and 5.2) and the probability that one diagonal entry is open.

Newman's Lyapunov exponents of products of Gaussian matrices (1986) are
:func:`fgln.theory.exponents.lyapunov_exponents` at ``p = 1``.
"""
from __future__ import annotations

import numpy as np
from scipy.integrate import solve_ivp
from scipy.special import comb
from scipy.stats import binom

from ..base.laws import LayerLaw, check_law
from ..base.validation import check_int

__all__ = ["fuss_catalan_moments", "balanced_mode_trajectory", "gate_rank_law"]


def fuss_catalan_moments(L: int, moments: int) -> np.ndarray:
    """Large-width moments of the squared singular values of ``W_L ... W_1`` (Ginibre, variance
    ``1/n``): ``lim (1/n) E tr (J J^T)^j = binom((L+1) j, j) / (L j + 1)``, j = 1..moments.

    Parameters
    ----------
    L : int
        Depth, the number of Ginibre factors (>= 1); 1 gives the Catalan numbers.
    moments : int
        How many moments (>= 1).

    Returns
    -------
    m : numpy.ndarray
        The Fuss-Catalan numbers ``FC_L(1..moments)`` [moments] (float; ``FC_L(1) = 1``).

    Raises
    ------
    TypeError
        If ``L`` or ``moments`` is not an integer.
    ValueError
        If one of them is below 1.

    Examples
    --------
    >>> fuss_catalan_moments(1, 4).tolist()
    [1.0, 2.0, 5.0, 14.0]
    >>> fuss_catalan_moments(2, 3).tolist()
    [1.0, 3.0, 12.0]
    """
    L = check_int("L", L, 1)
    moments = check_int("moments", moments, 1)
    j = np.arange(1, moments + 1)
    return comb((L + 1) * j, j, exact=False) / (L * j + 1)


def _positive(name: str, x) -> np.ndarray:
    a = np.atleast_1d(np.asarray(x, dtype=float))
    if a.ndim != 1 or not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise ValueError(f"{name} must be finite and > 0 (a vector of modes), got {x!r}")
    return a


def balanced_mode_trajectory(s0, y, L: int, t) -> np.ndarray:
    """Singular values ``s_k(t)`` of a balanced, target-aligned deep linear network of depth L
    under gradient flow on ``1/2 ||J - Y||_F^2``: ``ds/dt = L s^(2-2/L) (y - s)``.

    With ``Y = U diag(y) V^T`` and ``J(0) = U diag(s0) V^T`` built from balanced layers, the
    gradient ``J - Y`` stays diagonal in the same bases, so Proposition 4.5's law (Arora et al.)
    decouples into one scalar equation per mode. ``L = 1``: ``s = y - (y - s0) e^{-t}``;
    ``L = 2``: Saxe et al.'s logistic ``s = y / (1 + (y/s0 - 1) e^{-2 y t})``; ``L >= 3``:
    integrated numerically (relative tolerance 1e-11).

    Parameters
    ----------
    s0 : float or array_like
        Initial singular values, > 0 [modes].
    y : float or array_like
        The target's singular values, > 0 [modes] (broadcast with ``s0``).
    L : int
        Depth (>= 1).
    t : array_like
        Times, >= 0 and increasing [m].

    Returns
    -------
    s : numpy.ndarray
        ``s_k(t_i)`` [m, modes].

    Raises
    ------
    TypeError
        If ``L`` is not an integer.
    ValueError
        If ``L < 1``, a singular value is not positive or the times are not increasing and
        non-negative.
    """
    L = check_int("L", L, 1)
    s0, y = np.broadcast_arrays(_positive("s0", s0), _positive("y", y))
    t = np.atleast_1d(np.asarray(t, dtype=float))
    if t.ndim != 1 or not np.all(np.isfinite(t)) or np.any(t < 0) or np.any(np.diff(t) < 0):
        raise ValueError("t must be finite, >= 0 and non-decreasing")
    if L == 1:
        return y - (y - s0) * np.exp(-np.outer(t, np.ones_like(y)))
    if L == 2:
        return y / (1.0 + (y / s0 - 1.0) * np.exp(-2.0 * np.outer(t, y)))
    a = 2.0 - 2.0 / L
    out = np.empty((t.size, s0.size))
    for i, (s_init, target) in enumerate(zip(s0, y)):
        sol = solve_ivp(lambda _, s, c=target: L * np.abs(s) ** a * (c - s), (0.0, float(t[-1])),
                        [s_init], t_eval=t, method="DOP853", rtol=1e-11, atol=1e-13)
        out[:, i] = sol.y[0]
    return out


def gate_rank_law(law: LayerLaw) -> tuple[np.ndarray, float]:
    """The law of the rank of one gate of ``law`` and the probability that an entry is open.

    A p-gate has a Binomial(n, p) rank (Definition 5.1); an (r, p)-gate has that law
    conditioned on rank >= r (Definition 5.2). By exchangeability of the entries, one entry is
    open with probability ``E[rank] / n``: ``p`` for a p-gate, but more than ``p`` for an
    (r, p)-gate whenever a p-gate can have rank below r, namely
    ``p P(Bin(n-1, p) >= r-1) / P(Bin(n, p) >= r)``.

    Parameters
    ----------
    law : LayerLaw
        The law of one layer (its ``n``, ``p`` and ``r``).

    Returns
    -------
    pmf : numpy.ndarray
        ``P(rank = t)``, t = 0..n [n + 1].
    open_probability : float
        ``P(D_ii = 1)``, the same for every entry.

    Raises
    ------
    TypeError
        If ``law`` is not a :class:`~fgln.base.laws.LayerLaw`.
    """
    n, p, r = check_law(law).n, law.p, law.r
    t = np.arange(n + 1)
    pmf = binom.pmf(t, n, p) if p < 1.0 else (t == n).astype(float)
    if r is not None:
        pmf = np.where(t >= r, pmf, 0.0)
        pmf = pmf / pmf.sum()
    return pmf, float(np.sum(t * pmf) / n)
