"""Proposition 7.1's assumptions measured on a network: (i) depth scaling of the partial
products and (ii) alignment of their singular vectors with those of ``J`` (paper, Section 7,
Definition 4.6, Appendix E.2).

Depth-scaling convention. A product of ``m`` consecutive layers is modelled as
``log s_k = m gamma_k + delta_k`` (Definition 4.6 with ``M_{1:m}``): the prefixes
``M_{1:m} = D_m W_m ... D_1 W_1`` (m = 1..L, ``D_L = I``, so ``M_{1:L} = J``) and the suffixes
``A_l`` (m = L - l layers, l = 1..L-1). With this count ``s_k(A_l) s_k(B_l) =
e^{(1 + 1/L) delta_k} s_k^{1 - 1/L}`` whenever ``s_k = e^{L gamma_k + delta_k}``, the identity
Appendix E.2 uses. (The exponents ``(L - l + 1)`` and ``l`` printed in Proposition 7.1 (i) count
one layer more on each side than ``A_l`` and ``B_l`` hold; with them the identity is off by
``e^{2 gamma_k}``.) Empty products (``A_L = B_1 = I``) are left out of the fit.

All spectral quantities are computed in float64 whatever the network's dtype.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..base.statistics import fit_slopes
from ..base.validation import as64, check_int
from ..products.svd import top_svd
from ._net64 import check_net, partials64
from .networks import FixedGatesNetwork

Tensor = torch.Tensor

__all__ = [
    "NetworkDepthScaling",
    "network_depth_scaling",
    "alignment_errors",
    "subspace_alignment",
    "log_top",
    "fit_depth_lines",
    "column_alignment_error",
    "row_sum_alignment_error",
    "largest_angle_sine",
    "prefix_suffix_log_spectra",
    "prefix_excess_layers",
]


@dataclass(frozen=True)
class NetworkDepthScaling:
    """Least-squares fit ``log s_k(product of m layers) = m gamma_k + delta_k`` (Definition 4.6).

    ``log_prefix`` [L, k]: ``log s_k(M_{1:m})``, m = 1..L (row m-1). ``log_suffix`` [L-1, k]:
    ``log s_k(A_l)``, l = 1..L-1 (row l-1, m = L - l layers). ``resid_*``: measured minus
    fitted. ``epsilon`` [k]: the largest ``|residual|`` per k, the epsilon of Definition 4.6 /
    Proposition 7.1 (i).

    Parameters
    ----------
    gamma, delta, log_prefix, log_suffix, resid_prefix, resid_suffix
        The attributes below, in this order.

    Attributes
    ----------
    gamma : Tensor
        Fitted slopes ``gamma_k`` [k] (per layer).
    delta : Tensor
        Fitted intercepts ``delta_k`` [k].
    log_prefix : Tensor
        ``log s_k(M_{1:m})`` [L, k].
    log_suffix : Tensor
        ``log s_k(A_l)`` [L-1, k].
    resid_prefix : Tensor
        Measured minus fitted, prefixes [L, k].
    resid_suffix : Tensor
        Measured minus fitted, suffixes [L-1, k].
    epsilon : Tensor
        Largest absolute residual of both families [k].
    """

    gamma: Tensor
    delta: Tensor
    log_prefix: Tensor
    log_suffix: Tensor
    resid_prefix: Tensor
    resid_suffix: Tensor

    @property
    def epsilon(self) -> Tensor:
        """The epsilon of Definition 4.6: the largest absolute residual of either fit, per k.

        Returns
        -------
        epsilon : Tensor
            [k].
        """
        both = torch.cat([self.resid_prefix.abs(), self.resid_suffix.abs()], 0)
        return both.amax(0)


def log_top(M: Tensor, k: int) -> Tensor:
    """The ``k`` largest log-singular values of ``M`` [k] (``-inf`` beyond its rank).

    Parameters
    ----------
    M : Tensor
        A matrix [m, n].
    k : int
        How many (<= min(m, n)).

    Returns
    -------
    log_s : Tensor
        [k], decreasing.
    """
    return torch.log(top_svd(M, k, vectors=False))


def network_depth_scaling(net: FixedGatesNetwork, k: int | None = None,
                          families: Sequence[str] = ("prefix", "suffix"),
                          ) -> NetworkDepthScaling:
    """Fit Proposition 7.1 (i) / Definition 4.6 on the partial products of ``net``.

    ``families``: which products enter the fit: ``"prefix"`` (``M_{1:m}``, Definition 4.6) and/or
    ``"suffix"`` (``A_l``); both by default, since Proposition 7.1 (i) asks both to share
    ``(gamma_k, delta_k)``. Residuals are reported for both families either way. Requires
    ``k <= min(widths)`` and L >= 2.

    Parameters
    ----------
    net : FixedGatesNetwork
        The network (spectra in float64 whatever its dtype).
    k : int or None
        How many singular values (in [1, min(widths)]; None: all of them).
    families : sequence of str
        Non-empty subset of ``("prefix", "suffix")`` entering the fit.

    Returns
    -------
    fit : NetworkDepthScaling
        Slopes, intercepts, measured values and residuals.

    Raises
    ------
    TypeError
        If ``net`` is not a FixedGatesNetwork or ``k`` not an integer.
    ValueError
        If L < 2, ``k`` is out of range or ``families`` is not a non-empty subset.
    """
    net = check_net(net)
    L = net.depth
    if L < 2:
        raise ValueError("network_depth_scaling needs L >= 2 (a line through >= 2 depths)")
    kmax = min(net.widths)
    k = kmax if k is None else check_int("k", k, 1, kmax)
    fams = tuple(families)
    if not fams or any(f not in ("prefix", "suffix") for f in fams):
        raise ValueError(f"families must be a non-empty subset of ('prefix', 'suffix'), "
                         f"got {families!r}")
    A, B = partials64(net)
    J = as64(net.jacobian())
    prefixes = B[1:] + [J]             # M_{1:m} = B_{m+1}, m = 1..L-1, and J
    log_pre = torch.stack([log_top(p, k) for p in prefixes])        # [L, k]
    log_suf = torch.stack([log_top(a, k) for a in A[:-1]])          # [L-1, k], A_l, l=1..L-1
    return fit_depth_lines(log_pre, log_suf, fams)


def fit_depth_lines(log_pre: Tensor, log_suf: Tensor,
                    families: Sequence[str] = ("prefix", "suffix")) -> NetworkDepthScaling:
    """The least-squares lines of Definition 4.6 through measured log-singular values:
    ``log_pre`` [L, k] of the prefixes ``M_{1:m}`` (m = 1..L) and ``log_suf`` [L-1, k] of the
    suffixes ``A_l`` (m = L - l layers), the ``families`` named entering the fit. All columns
    in one solve when every entry is finite; otherwise each column on its finite entries
    (NaN with fewer than two).

    Parameters
    ----------
    log_pre : Tensor
        ``log s_k(M_{1:m})`` [L, k], float64.
    log_suf : Tensor
        ``log s_k(A_l)`` [L-1, k], float64.
    families : sequence of str
        Which of ``"prefix"``, ``"suffix"`` enter the fit.

    Returns
    -------
    fit : NetworkDepthScaling
        Slopes, intercepts, measured values and residuals.
    """
    L = log_pre.shape[0]
    k = log_pre.shape[1]
    m_pre = torch.arange(1, L + 1, dtype=torch.float64)
    m_suf = torch.arange(L - 1, 0, -1, dtype=torch.float64)
    xs, ys = [], []
    if "prefix" in families:
        xs.append(m_pre)
        ys.append(log_pre)
    if "suffix" in families:
        xs.append(m_suf)
        ys.append(log_suf)
    x = torch.cat(xs)
    y = torch.cat(ys, 0)
    ok = torch.isfinite(y)
    gamma = torch.full((k,), float("nan"), dtype=torch.float64)
    delta = torch.full((k,), float("nan"), dtype=torch.float64)
    for j in range(k):  # Definition 4.6's line per index, over the depths where it is defined
        xj, yj = x[ok[:, j]], y[ok[:, j], j]
        if xj.numel() >= 2:
            a, b = fit_slopes(xj.numpy(), yj.numpy())
            gamma[j], delta[j] = float(a), float(b)
    fit_pre = m_pre[:, None] * gamma + delta
    fit_suf = m_suf[:, None] * gamma + delta
    return NetworkDepthScaling(gamma, delta, log_pre, log_suf, log_pre - fit_pre,
                               log_suf - fit_suf)


def _signed_deviation(R: Tensor) -> Tensor:
    """``R S - I`` [..., k, k], the signs ``S = diag(s_j)`` of the columns making the diagonal
    of ``R S`` >= 0 (Proposition 7.1 (ii), both readings)."""
    sign = torch.where(R.diagonal(dim1=-2, dim2=-1) < 0, -1.0, 1.0).to(R.dtype)
    return R * sign[..., None, :] - torch.eye(R.shape[-1], dtype=R.dtype, device=R.device)


def column_alignment_error(R: Tensor) -> Tensor:
    """Proposition 7.1 (ii) on a top block: for ``R = U_k^T W_k`` [..., k, k] (two sets of
    singular vectors), ``max_i |R_ij s_j - delta_ij|`` per column j [..., k], with the signs
    ``s_j`` of the columns of ``W`` chosen to make the diagonal >= 0.

    Parameters
    ----------
    R : Tensor
        Overlaps ``U_k^T W_k`` [..., k, k].

    Returns
    -------
    err : Tensor
        Largest deviation from the identity per column [..., k].
    """
    return _signed_deviation(R).abs().amax(-2)


def row_sum_alignment_error(R: Tensor) -> Tensor:
    """Proposition 7.1 (ii) read with the operator infinity norm: for ``R = U_r^T W_r``
    [..., r, r] (two sets of singular vectors), ``max_i sum_j |R_ij s_j - delta_ij|`` [...], the
    largest absolute row sum of ``R S - I``, with the signs ``s_j`` of the columns of ``W``
    chosen, as in :func:`column_alignment_error`, to make the diagonal >= 0.

    It lies between the entrywise reading (the largest entry,
    ``column_alignment_error(R).amax(-1)``) and ``r`` times it.

    Parameters
    ----------
    R : Tensor
        Overlaps ``U_r^T W_r`` [..., r, r].

    Returns
    -------
    norm : Tensor
        ``|| R S - I ||_inf`` (largest absolute row sum) [...].

    Raises
    ------
    ValueError
        If ``R`` is not square in its last two axes.
    """
    if R.ndim < 2 or R.shape[-1] != R.shape[-2]:
        raise ValueError(f"R must be [..., r, r], got {tuple(R.shape)}")
    return _signed_deviation(R).abs().sum(-1).amax(-1)


def largest_angle_sine(M: Tensor) -> Tensor:
    """Sine of the largest principal angle between two r-dimensional subspaces from
    ``M = X^T Y`` [..., r, r] (X, Y orthonormal bases): ``sqrt(1 - s_min(M)^2)`` [...].

    Parameters
    ----------
    M : Tensor
        ``X^T Y`` [..., r, r].

    Returns
    -------
    sine : Tensor
        [...], in [0, 1].
    """
    c = torch.linalg.svdvals(M).clamp(max=1.0)
    return torch.sqrt(1.0 - c.amin(-1) ** 2)


def alignment_errors(net: FixedGatesNetwork, k: int | None = None) -> tuple[Tensor, Tensor]:
    """Proposition 7.1 (ii), measured on the top-``k`` block: ``(err_A, err_B)``, each [L-1, k].

    ``err_A[l-1, j] = max_i |(U^T U_{A_l} - I)_{ij}|`` for l = 1..L-1 and
    ``err_B[l-2, j] = max_i |(V^T V_{B_l} - I)_{ij}|`` for l = 2..L, over i, j <= k, with
    the signs of the columns of ``U_{A_l}`` (``V_{B_l}``) chosen to make the diagonal positive.
    The infinity norm of (ii) restricted to the block is ``err.amax(-1)``. The empty products
    ``A_L = B_1 = I`` are left out (their singular vectors are arbitrary).

    Parameters
    ----------
    net : FixedGatesNetwork
        The network (spectra in float64 whatever its dtype).
    k : int or None
        Block size (in [1, min(widths)]; None: all).

    Returns
    -------
    err_A : Tensor
        [L-1, k], l = 1..L-1.
    err_B : Tensor
        [L-1, k], l = 2..L.

    Raises
    ------
    TypeError
        If ``net`` is not a FixedGatesNetwork or ``k`` not an integer.
    ValueError
        If ``k`` is out of range.
    """
    net = check_net(net)
    kmax = min(net.widths)
    k = kmax if k is None else check_int("k", k, 1, kmax)
    A, B = partials64(net)
    J = as64(net.jacobian())
    U, _, V = top_svd(J)
    err_a, err_b = [], []
    for a in A[:-1]:
        Ua = top_svd(a)[0]
        err_a.append(column_alignment_error(U[:, :k].T @ Ua[:, :k]))
    for b in B[1:]:
        Vb = top_svd(b)[2]
        err_b.append(column_alignment_error(V[:, :k].T @ Vb[:, :k]))
    return torch.stack(err_a), torch.stack(err_b)


def subspace_alignment(net: FixedGatesNetwork, r: int) -> tuple[Tensor, Tensor]:
    """Sine of the largest principal angle between top-``r`` singular subspaces:
    ``(sin_A, sin_B)``, each [L-1]: left subspaces of ``J`` and ``A_l`` (l = 1..L-1), right
    subspaces of ``J`` and ``B_l`` (l = 2..L). Unlike :func:`alignment_errors` this does not
    care how the vectors are arranged inside the subspace, so it stays small when a cluster of
    close singular values (Remark 6.2) mixes them.

    Parameters
    ----------
    net : FixedGatesNetwork
        The network (spectra in float64 whatever its dtype).
    r : int
        Subspace dimension (in [1, min(widths)]).

    Returns
    -------
    sin_A : Tensor
        [L-1], l = 1..L-1.
    sin_B : Tensor
        [L-1], l = 2..L.

    Raises
    ------
    TypeError
        If ``net`` is not a FixedGatesNetwork or ``r`` not an integer.
    ValueError
        If ``r`` is out of range.
    """
    net = check_net(net)
    r = check_int("r", r, 1, min(net.widths))
    A, B = partials64(net)
    J = as64(net.jacobian())
    Ur, _, Vr = top_svd(J, r)
    sa = [largest_angle_sine(Ur.T @ top_svd(a, r)[0]) for a in A[:-1]]
    sb = [largest_angle_sine(Vr.T @ top_svd(b, r)[2]) for b in B[1:]]
    return torch.stack(sa), torch.stack(sb)


def prefix_suffix_log_spectra(net: FixedGatesNetwork, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top log-singular values of the prefixes ``B_2..B_L`` and of the suffixes
    ``A_{L-1}..A_1``: products of m = 1..L-1 layers each, paired by their layer count
    (Remark 7.2 (i) against Proposition 7.1 (i)).

    Parameters
    ----------
    net : FixedGatesNetwork
        The network (L >= 2; measured in float64).
    k : int
        How many of the largest singular values (>= 1; exact zeros give ``-inf``).

    Returns
    -------
    log_prefix : numpy.ndarray
        ``log s_i(B_{m+1})`` [L-1, k], row m-1.
    log_suffix : numpy.ndarray
        ``log s_i(A_{L-m})`` [L-1, k], row m-1.
    """
    net = check_net(net)
    k = check_int("k", k, 1)
    if net.depth < 2:
        raise ValueError(f"the network needs L >= 2 for prefixes and suffixes, got {net.depth}")
    with torch.no_grad():
        A, B = net.partial_products()
    lb = [torch.log(torch.linalg.svdvals(b.double())[:k]).numpy() for b in B[1:]]
    la = [torch.log(torch.linalg.svdvals(a.double())[:k]).numpy() for a in A[-2::-1]]
    return np.array(lb), np.array(la)


def prefix_excess_layers(log_prefix, log_suffix) -> tuple[np.ndarray, np.ndarray]:
    """How many layers beyond the ones they hold the prefixes need on the suffixes' line.

    Model ``log s_i(B_{m+1}) = (m + c) gamma_i + delta_i`` with ``gamma_i`` the suffixes'
    least-squares slope over m: ``c = 1`` is Remark 7.2 (i)'s exponent ``l gamma_i`` for
    ``B_l`` (l = m + 1), ``c = 0`` the m layers ``B_l`` holds. Prefix and suffix of the same
    layer count are compared directly, so the curvature of short products cancels.

    Parameters
    ----------
    log_prefix, log_suffix : array_like
        :func:`prefix_suffix_log_spectra` of several networks [nets, L-1, k] (L >= 3).

    Returns
    -------
    c : numpy.ndarray
        The excess layer count per network [nets] (mean over m and i of
        ``(log s_i(B_{m+1}) - log s_i(A_{L-m})) / gamma_i``; undefined entries, from exact
        zeros, give NaN).
    gamma : numpy.ndarray
        The suffixes' slopes [nets, k].
    """
    logB = np.asarray(log_prefix, dtype=float)
    logA = np.asarray(log_suffix, dtype=float)
    if logB.shape != logA.shape or logB.ndim != 3 or logB.shape[1] < 2:
        raise ValueError(f"log_prefix and log_suffix must be [nets, L-1, k] alike with L >= 3, "
                         f"got {logB.shape} and {logA.shape}")
    m = np.arange(1, logB.shape[1] + 1, dtype=float)
    with np.errstate(invalid="ignore"):
        slope = ((m - m.mean())[None, :, None] * (logA - logA.mean(1, keepdims=True))).sum(1)
        gamma = slope / ((m - m.mean()) ** 2).sum()
        c = ((logB - logA) / gamma[:, None]).mean(axis=(1, 2))
    return c, gamma
