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
exact statement for index i is Remark 5.4 with ``r = i``: this is what a law with
``r=None`` gives, index by index, and what the book's figures compare against. Remark 5.5 is
kept for reference; it drops the normalisation ``P(rank >= r)``, which is harmless only
when ``i << n p``.

Sign of the finite-depth term. Lemma C.7 gives ``E log||^i J_L|| = L(g_1+...+g_i) + d_i +
o(1)`` with ``d_i >= 0``; differencing in i gives ``E[(1/L) log s_i] = g_i + (d_i -
d_{i-1})/L + o(1/L)``. Theorem 5.3 as printed has the opposite sign ``(d_{i-1} - d_i)/L``.
The numerics (chapter 5) side with the appendix (``reading="corrected"``);
``reading="printed"`` reproduces the printed statement for comparison.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.special import digamma
from scipy.stats import binom

from ..base.conventions import shared_doc
from ..base.laws import LayerLaw, Product, check_law, check_product
from ..base.statistics import conditional_stats
from ..base.validation import check_int

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


def _check_law(law, k) -> tuple[LayerLaw, int]:
    check_law(law)
    k = check_int("k", k, 1, law.n)
    if law.r is not None and k > law.r:
        raise ValueError(f"k = {k} exceeds the minimum rank r = {law.r}: gamma_i for i > r "
                         "is not defined by Remark 5.4")
    return law, k


@shared_doc
def lyapunov_exponents(law: LayerLaw, k: int) -> np.ndarray:
    """Exact Lyapunov exponents ``gamma_1..gamma_k`` of (r, p, sigma)-layers (Remark 5.4).

    A law with ``r`` set conditions every gate on rank >= r; ``r=None`` (plain p-gates) uses
    ``r = i`` for index i, the exact value for unconditioned p-gates given ``s_i > 0``
    (module docstring).

    Parameters
    ----------
    %(law)s
    k : int
        How many exponents, ``gamma_1..gamma_k`` (in [1, n]; at most ``r``).

    Returns
    -------
    gamma : numpy.ndarray
        ``gamma_1..gamma_k`` [k].

    Raises
    ------
    TypeError
        If ``law`` is not a LayerLaw or ``k`` not an integer.
    ValueError
        If ``k`` is out of range, or ``k > r``.
    """
    law, k = _check_law(law, k)
    return np.array([_gamma(law.n, law.p, law.scale, i, law.r or i, True)
                     for i in range(1, k + 1)])


@shared_doc
def lyapunov_exponents_approx(law: LayerLaw, k: int) -> np.ndarray:
    """Remark 5.5: Remark 5.4 without the normalising denominator ``P(rank >= r)``.

    Parameters
    ----------
    %(law)s
    k : int
        How many exponents, ``gamma_1..gamma_k`` (in [1, n]; at most ``r``).

    Returns
    -------
    gamma : numpy.ndarray
        Approximate ``gamma_1..gamma_k`` [k].

    Raises
    ------
    TypeError
        If ``law`` is not a LayerLaw or ``k`` not an integer.
    ValueError
        If ``k`` is out of range, or ``k > r``.
    """
    law, k = _check_law(law, k)
    return np.array([_gamma(law.n, law.p, law.scale, i, law.r or i, False)
                     for i in range(1, k + 1)])


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


def finite_depth_constants_mc(n: int, k: int, replicates: int = 2000, *, seed: int = 0,
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
    q = haar_orthogonal(n, replicates, seed=check_int("seed", seed, 0))
    vals = np.zeros((replicates, k + 1))
    for i in range(1, k + 1):
        vals[:, i] = -torch.linalg.slogdet(q[:, :i, :i]).logabsdet.numpy()
    st = conditional_stats(vals)
    return st["mean"], st["se"]


@shared_doc
def predicted_log_singular_values(product: Product, k: int, *,
                                  reading: str = "corrected") -> np.ndarray:
    """First-order prediction of ``E[(1/L) log s_{i,L}]``, i = 1..k (Theorem 5.3).

    ``reading="corrected"`` (default): ``gamma_i + (d_i - d_{i-1})/L``, as Lemma C.7 implies
    and the numerics confirm. ``reading="printed"``: ``gamma_i + (d_{i-1} - d_i)/L`` as
    printed in Theorem 5.3. Exponents as in :func:`lyapunov_exponents` for the product's law.

    Parameters
    ----------
    %(product)s
    k : int
        How many exponents, ``gamma_1..gamma_k`` (in [1, n]; at most ``r``).
    reading : {"corrected", "printed"}
        Sign of the finite-depth term: Lemma C.7's (default) or Theorem 5.3's as printed.

    Returns
    -------
    prediction : numpy.ndarray
        ``E[(1/L) log s_{i,L}]`` to first order, i = 1..k [k].

    Raises
    ------
    TypeError
        If ``product`` is not a Product or ``k`` not an integer.
    ValueError
        If ``k`` is out of range, ``k > r`` or ``reading`` is unknown.
    """
    check_product(product)
    if reading not in ("corrected", "printed"):
        raise ValueError(f"reading must be 'corrected' or 'printed', got {reading!r}")
    gam = lyapunov_exponents(product.law, k)
    d = finite_depth_constants(product.n, k)
    corr = (d[1:] - d[:-1]) / product.L
    return gam + corr if reading == "corrected" else gam - corr
