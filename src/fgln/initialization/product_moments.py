"""Moments and norms of products at initialization, for the results the paper cites
(Section 2; the book's chapter 2).

* :func:`gram_moments` -- the normalised traces ``(1/n) tr (J J^T)^j`` of independent
  products, whose large-width limits are the Fuss-Catalan numbers of free probability
  (:func:`fgln.theory.cited_laws.fuss_catalan_moments`) for Ginibre factors of variance 1/n;
* :func:`log_norm_growth` -- ``log ||J_l u||`` along each chain, l = 1..L, for a fixed unit
  vector u: a sum of independent terms, so that its mean and variance grow linearly in depth
  (the log-normal law at finite depth; :func:`fgln.relu.regimes.lognorm_law` has the exact
  mean and variance of its square);
* :func:`large_width_limit` -- the intercept of a weighted least-squares line in ``1/n``: the
  large-width limit of a measurement at a few widths, with its standard error.
"""
from __future__ import annotations

import numpy as np
import torch

from ..base.conventions import shared_doc
from ..base.laws import Product, check_product
from ..base.validation import check_int
from ..products.sampling import iter_layers

__all__ = ["gram_moments", "log_norm_growth", "large_width_limit"]


@shared_doc
def gram_moments(product: Product, moments: int, replicates: int, *, seed: int = 0
                 ) -> np.ndarray:
    """``(1/n) tr (J J^T)^j`` for j = 1..moments, one row per independent product.

    The product is multiplied layer by layer (:func:`fgln.products.sampling.iter_layers`, so
    the same seed gives the same matrices as the other samplers) and the moments are read from
    the eigenvalues of ``J J^T``. Use moderate depths: entries are raw products.

    Parameters
    ----------
    %(product)s
    moments : int
        How many moments (>= 1).
    %(replicates)s
    %(seed)s

    Returns
    -------
    m : numpy.ndarray
        [replicates, moments].

    Raises
    ------
    TypeError
        If ``product`` is not a Product or a count is not an integer.
    ValueError
        If a count is below 1.
    """
    check_product(product)
    moments = check_int("moments", moments, 1)
    replicates = check_int("replicates", replicates, 1)
    J = None
    for M in iter_layers(product, replicates, seed=seed):
        J = M if J is None else M @ J
    lam = torch.linalg.eigvalsh(J @ J.mT).clamp_min(0.0)  # [replicates, n]
    powers = torch.stack([(lam ** j).mean(-1) for j in range(1, moments + 1)], -1)
    return powers.numpy()


@shared_doc
def log_norm_growth(product: Product, replicates: int, *, seed: int = 0) -> np.ndarray:
    """``log ||J_l u||`` for l = 1..L along each of ``replicates`` independent chains, with
    ``J_l = M_l ... M_1`` and the fixed unit vector ``u = e_1``.

    For Ginibre layers (gated or not) ``||M_l v||^2 / ||v||^2`` is independent of the past and
    of ``v``, so the curve is a random walk: its mean and variance grow linearly in l.

    Parameters
    ----------
    %(product)s
    %(replicates)s
    %(seed)s

    Returns
    -------
    log_norm : numpy.ndarray
        [replicates, L]; ``-inf`` once a gated chain hits zero.

    Raises
    ------
    TypeError
        If ``product`` is not a Product or ``replicates`` not an integer.
    ValueError
        If ``replicates < 1``.
    """
    check_product(product)
    replicates = check_int("replicates", replicates, 1)
    v = torch.zeros(replicates, product.n, 1, dtype=torch.float64)
    v[:, 0] = 1.0
    log_scale = torch.zeros(replicates, dtype=torch.float64)
    out = []
    for M in iter_layers(product, replicates, seed=seed):
        v = M @ v
        norm = torch.linalg.vector_norm(v, dim=(-2, -1))
        log_scale = log_scale + torch.log(norm)
        v = v / torch.where(norm > 0, norm, torch.ones_like(norm))[:, None, None]
        out.append(log_scale.clone())
    return torch.stack(out, -1).numpy()


def large_width_limit(widths, mean, se) -> tuple[np.ndarray, np.ndarray]:
    """Extrapolate measurements at several widths to ``n -> infinity``: the intercept ``a`` of
    the weighted least-squares line ``mean ~ a + b / n`` (weights ``1/se^2``), per column.

    Parameters
    ----------
    widths : sequence of int
        The widths n, at least two distinct [w].
    mean : array_like
        Measured means [w] or [w, q] (one column per quantity).
    se : array_like
        Their standard errors, > 0 (independent across widths) [w] or [w, q].

    Returns
    -------
    limit : numpy.ndarray
        The intercepts [q] (a scalar array for 1-d input).
    limit_se : numpy.ndarray
        Their standard errors, propagated from ``se`` [q].

    Raises
    ------
    ValueError
        If fewer than two distinct widths, shapes disagree, or a standard error is not > 0.
    """
    x = 1.0 / np.asarray(widths, dtype=float)
    m, s = np.asarray(mean, dtype=float), np.asarray(se, dtype=float)
    if x.ndim != 1 or np.unique(x).size < 2 or m.shape != s.shape or m.shape[0] != x.size:
        raise ValueError("need at least two distinct widths and mean, se of shape [w] or [w, q]")
    if not np.all(np.isfinite(s)) or np.any(s <= 0) or not np.all(np.isfinite(m)):
        raise ValueError("standard errors must be finite and > 0, means finite")
    one = m.ndim == 1
    m, s = (m[:, None], s[:, None]) if one else (m, s)
    X = np.stack([np.ones_like(x), x], 1)
    limit, limit_se = np.empty(m.shape[1]), np.empty(m.shape[1])
    for j in range(m.shape[1]):
        w = 1.0 / s[:, j] ** 2
        cov = np.linalg.inv(X.T @ (w[:, None] * X))
        limit[j] = (cov @ X.T @ (w * m[:, j]))[0]
        limit_se[j] = np.sqrt(cov[0, 0])
    return (limit[0], limit_se[0]) if one else (limit, limit_se)
