"""Lemmas C.3 and C.4: the mean log-volume spanned by the first columns of a gated layer.

For a layer ``Y = D W`` (``W`` sigma-Ginibre, ``D`` a 0/1 diagonal of rank t) the first i
columns ``Y e_1, ..., Y e_i`` are i independent Gaussian vectors of the t coordinates that
``D`` keeps, so their squared volume ``||Y e_1 ^ ... ^ Y e_i||^2 = det(X^T X)`` is the
determinant of a Wishart matrix (Appendix B, :func:`fgln.theory.exterior.wedge_inner`):

* :func:`wishart_log_volumes` -- Lemma C.3 in closed form at a fixed rank t,
  ``(i/2) ln(2 sigma^2) + (1/2) sum_{k<=i} psi((t-k+1)/2)`` for i <= t, ``-inf`` beyond
  (the columns are then dependent; the paper prints the case split with r in place of t);
* :func:`gated_log_volumes` -- Lemma C.4, ``lambda_i``: the same averaged over the rank of an
  (r, p)-gate, Binomial(n, p) conditioned on ``t >= r`` (its differences are Remark 5.4's
  exponents, :func:`fgln.theory.exponents.lyapunov_exponents`);
* :func:`fixed_rank_log_volumes` -- Monte Carlo of Lemma C.3 with the t open gates at random
  places (the proof's "up to relabelling"), a vanishing volume detected from the numbers
  (the volume against Hadamard's bound), not from t.

The Monte Carlo of Lemma C.4 over the law of a layer is
:func:`fgln.initialization.depth_scaling.wedge_log_norms`.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy.special import digamma
from scipy.stats import binom

from ..base.conventions import shared_doc
from ..base.laws import LayerLaw, check_law
from ..base.results import Result
from ..base.statistics import conditional_stats
from ..base.validation import check_int, check_positive
from ..products.sampling import make_generator

__all__ = ["wishart_log_volumes", "gated_log_volumes", "fixed_rank_log_volumes"]

#: A volume below this fraction of Hadamard's bound (the product of the column norms) counts
#: as zero: rounding leaves about 1e-16 where the columns are dependent, and independent
#: Gaussian columns come this close to dependence with probability of order 1e-8 or less.
VANISHING = 1e-8


def wishart_log_volumes(t: int, sigma: float, k: int) -> np.ndarray:
    """Lemma C.3: ``E log||Y e_1 ^ ... ^ Y e_i||``, i = 1..k, for ``Y = D W`` with a 0/1 gate
    ``D`` of rank ``t`` and ``W`` sigma-Ginibre.

    ``(i/2) ln(2 sigma^2) + (1/2) sum_{k'=1}^{i} psi((t - k' + 1)/2)`` for i <= t (half the
    mean log-determinant of an i x i Wishart matrix with t degrees of freedom), ``-inf`` for
    i > t.

    Parameters
    ----------
    t : int
        Rank of the gate (>= 1).
    sigma : float
        Standard deviation of the entries of ``W`` (> 0).
    k : int
        Largest number of columns, i = 1..k (>= 1).

    Returns
    -------
    lam : numpy.ndarray
        [k], ``-inf`` from i = t + 1 on.

    Raises
    ------
    TypeError
        If ``t`` or ``k`` is not an integer or ``sigma`` not a number.
    ValueError
        If one of them is out of range.
    """
    t = check_int("t", t, 1)
    sigma = check_positive("sigma", sigma)
    k = check_int("k", k, 1)
    i = np.arange(1, k + 1)
    terms = np.full(k, -math.inf)
    live = i <= t
    terms[live] = 0.5 * math.log(2.0 * sigma ** 2) + 0.5 * digamma((t - i[live] + 1) / 2.0)
    return np.cumsum(terms)


@shared_doc
def gated_log_volumes(law: LayerLaw, k: int) -> np.ndarray:
    """Lemma C.4: ``lambda_i = E log||Y e_1 ^ ... ^ Y e_i||``, i = 1..k, for one layer of
    ``law``: Lemma C.3 averaged over the rank t of an (r, p)-gate.

    ``P(rank = t) = C(n, t) p^t (1-p)^(n-t) / P(Binomial(n, p) >= r)`` for t = r..n; for
    i > r a rank t < i has positive probability, so ``lambda_i = -inf``. Its differences
    ``lambda_i - lambda_{i-1}`` are Remark 5.4's exponents (Lemma C.5).

    Parameters
    ----------
    %(law)s
        ``r`` must be set (Lemma C.4 is stated for (r, p)-gates), unless ``p = 1`` (every
        gate is then the identity, of rank n).
    k : int
        Largest number of columns, i = 1..k (in [1, n]).

    Returns
    -------
    lam : numpy.ndarray
        ``lambda_1..lambda_k`` [k], ``-inf`` beyond ``r``.

    Raises
    ------
    TypeError
        If ``law`` is not a LayerLaw or ``k`` not an integer.
    ValueError
        If ``k`` is out of range, or ``r`` is not set while ``p < 1``.
    """
    check_law(law)
    n = law.n
    k = check_int("k", k, 1, n)
    if law.r is None and law.p < 1.0:
        raise ValueError("Lemma C.4 is stated for (r, p)-gates: give the law a minimum rank r "
                         "(plain p-gates have rank 0 with positive probability, lambda_i = -inf)")
    r = n if law.r is None else law.r
    ranks = np.arange(r, n + 1)
    w = binom.pmf(ranks, n, law.p)
    w = w / w.sum()
    rows = np.stack([wishart_log_volumes(int(t), law.scale, k) for t in ranks])   # [ranks, k]
    out = np.full(k, -math.inf)
    for i in range(1, k + 1):
        if not np.any((w > 0) & (ranks < i)):
            out[i - 1] = float(np.sum(w * rows[:, i - 1], where=w > 0))
    return out


@shared_doc
def fixed_rank_log_volumes(n: int, sigma: float, t: int, k: int, replicates: int, *,
                           seed=0, dtype: torch.dtype = torch.float64) -> Result:
    """Monte Carlo of Lemma C.3: ``log||Y e_1 ^ ... ^ Y e_i||``, i = 1..k, for ``Y = D W``,
    ``D`` a 0/1 gate of rank ``t`` whose open entries sit at random places.

    The volumes come from one QR factorisation of the first k columns of each ``Y``
    (``prod_{j<=i} |R_jj|``). A volume is counted as zero when it lies below
    ``VANISHING`` (1e-8) times Hadamard's bound ``prod_{j<=i} ||Y e_j||`` -- read from the
    numbers, not from ``t`` -- and is then ``-inf`` in ``log_volumes``.

    Parameters
    ----------
    n : int
        Width (>= 1).
    sigma : float
        Standard deviation of the entries of ``W`` (> 0).
    t : int
        Rank of the gate (in [1, n]).
    k : int
        Largest number of columns (in [1, n]).
    replicates : int
        Independent layers (>= 2).
    %(seed)s
    %(dtype)s

    Returns
    -------
    result : Result
        ``log_volumes`` [replicates, k] (``-inf`` where zero), ``log_hadamard``
        [replicates, k] (log of the volume over Hadamard's bound, <= 0), ``vanished``
        [replicates, k] (1.0 where zero), ``frac_vanished`` [k], and ``mean``, ``se``,
        ``count`` [k] over the non-vanishing volumes.

    Raises
    ------
    TypeError
        If an integer argument is not an integer or ``sigma`` not a number.
    ValueError
        If one is out of range.
    """
    n = check_int("n", n, 1)
    sigma = check_positive("sigma", sigma)
    t = check_int("t", t, 1, n)
    k = check_int("k", k, 1, n)
    replicates = check_int("replicates", replicates, 2)
    gen = make_generator(seed)
    W = torch.randn(replicates, n, k, generator=gen, dtype=dtype) * sigma
    places = torch.rand(replicates, n, generator=gen, dtype=dtype).argsort(-1)[:, :t]
    gate = torch.zeros(replicates, n, dtype=dtype).scatter_(1, places, 1.0)
    X = gate[..., None] * W                                          # first k columns of D W
    R = torch.linalg.qr(X, mode="r").R
    with np.errstate(divide="ignore"):
        logs = torch.cumsum(torch.log(R.diagonal(dim1=-2, dim2=-1).abs()), -1).numpy()
        bound = torch.cumsum(torch.log(X.norm(dim=-2)), -1).numpy()
    rel = logs - bound
    vanished = ~(rel > math.log(VANISHING))
    log_volumes = np.where(vanished, -math.inf, logs)
    st = conditional_stats(log_volumes)
    return Result(log_volumes=log_volumes, log_hadamard=rel, vanished=vanished.astype(float),
                  frac_vanished=vanished.mean(0), mean=st["mean"], se=st["se"],
                  count=st["count"])
