"""Measurements on the hidden square block of the Section 8 model (paper, Section 8, Figures 4
and 5): the top log-singular values of ``B_l`` and the diagonal correlation of
``U_J^T U_{A_l}`` (:func:`block_statistics`), the two clusters of Figure 4 (right)
(:func:`split_clusters`, :func:`cluster_measurements`) and how far along the depth the
alignment reaches (:func:`alignment_reach`). The block comes from
:meth:`fgln.mnist.model.MnistFixedGates.hidden_block`.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

from ..base.statistics import fit_slopes
from ..base.threads import single_threaded
from ..base.validation import check_int
from ..initialization.alignment import alignment_overlaps
from ..products.partial_products import network_partial_products

Tensor = torch.Tensor

__all__ = ["block_statistics", "split_clusters", "cluster_measurements", "alignment_reach"]


@single_threaded
def block_statistics(weights: Tensor, gates: Tensor, *, k_spectrum: int = 30,
                     k_align: tuple[int, ...] = (10,)) -> dict[str, np.ndarray]:
    """Figure 4 and Figure 5 quantities of one square block ``J = W_L D_{L-1} ... D_1 W_1``.

    ``weights`` [L, n, n], ``gates`` [L, n] (float64, as from
    :meth:`.MnistFixedGates.hidden_block`). Returns numpy arrays:

    * ``logsv_B`` [L, k_spectrum]: ``log s_k(B_l)`` for l = 1..L, with Section 7's
      ``B_l = D_{l-1} W_{l-1} ... D_1 W_1`` (``B_1 = I``); ``-inf`` beyond the rank;
    * ``logsv_J`` [k_spectrum]: ``log s_k(J)``;
    * ``rho_k{k}`` [L] for each k in ``k_align``: diagonal correlation (Appendix F) of the
      top-left k x k block of ``U_J^T U_{A_l}``, ``A_l = W_L D_{L-1} ... W_{l+1} D_l``
      (:func:`fgln.initialization.alignment.alignment_overlaps`; the entry l = L, ``A_L = I``,
      carries no
      information).

    Parameters
    ----------
    weights : Tensor
        ``W_1..W_L`` [L, n, n].
    gates : Tensor
        Gate diagonals [L, n].
    k_spectrum : int
        Top singular values kept (in [1, n]).
    k_align : tuple of int
        Block sizes of the alignment statistics.

    Returns
    -------
    result : dict of str to numpy.ndarray
        The entries listed above.

    Raises
    ------
    ValueError
        If the shapes are wrong or ``k_spectrum`` is out of range.
    """
    if weights.ndim != 3 or gates.ndim != 2:
        raise ValueError(f"weights must be [L, n, n] and gates [L, n], got "
                         f"{tuple(weights.shape)} and {tuple(gates.shape)}")
    L, n, _ = weights.shape
    k_spectrum = check_int("k_spectrum", k_spectrum, 1, n)
    _, B = network_partial_products(weights[None], gates[None])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # log(0) -> -inf beyond the rank
        sv_B = torch.linalg.svdvals(B[0])[:, :k_spectrum]
        out = {"logsv_B": torch.log(sv_B).numpy()}
    for k in k_align:
        res = alignment_overlaps(weights, gates, int(k))
        out[f"rho_k{int(k)}"] = res["rho_overlap"].numpy()
        out["logsv_J"] = res["log_sv_J"][:k_spectrum].numpy()
    return out


def split_clusters(logsv: np.ndarray, *, max_cluster: int | None = None) -> int:
    """Size r of the top cluster: the split at the largest gap of a log-spectrum.

    ``logsv`` [k] (decreasing, finite): returns the r in 1..k-1 maximising
    ``logsv[r-1] - logsv[r]`` (the largest gap between consecutive log singular values),
    among r <= ``max_cluster`` when given.

    Parameters
    ----------
    logsv : numpy.ndarray
        A decreasing, finite log-spectrum [k], k >= 2.
    max_cluster : int or None
        Largest allowed r (in [1, k-1]).

    Returns
    -------
    r : int
        Size of the top cluster.

    Raises
    ------
    ValueError
        If ``logsv`` is not finite and one-dimensional of length >= 2, or ``max_cluster`` is out of
        range.
    """
    x = np.asarray(logsv, dtype=float)
    if x.ndim != 1 or x.size < 2 or not np.all(np.isfinite(x)):
        raise ValueError(f"logsv must be a finite 1-d array of length >= 2, got {x.shape}")
    gaps = x[:-1] - x[1:]
    if max_cluster is not None:
        gaps = gaps[: check_int("max_cluster", max_cluster, 1, x.size - 1)]
    return int(np.argmax(gaps)) + 1


def cluster_measurements(logsv_B: np.ndarray, r: int, *, l_from: int = 2) -> dict[str, float]:
    """Sizes, slopes and gap of the two clusters of ``log s_k(B_l)`` (Figure 4 right).

    ``logsv_B`` [L, k] (row l-1 is ``B_l``), ``r``: size of the top cluster (k = 1..r), the
    bottom cluster is k = r+1..k. Over l = ``l_from``..L (``B_1 = I`` carries nothing):

    * ``slope_top``, ``slope_bottom``: least-squares slope in l of the cluster's mean
      ``log s_k(B_l)`` (the depth-scaling rate gamma of Definition 4.6, averaged in the cluster);
    * ``gap``: ``log s_r(B_L) - log s_{r+1}(B_L)``, the log-ratio between the clusters at the
      deepest product;
    * ``spread_top``, ``spread_bottom``: ``log s_1 - log s_r`` and ``log s_{r+1} - log s_k``
      at l = L (the clusters' own widths);
    * ``maxres``: largest absolute residual of the per-k affine fits in l (the epsilon of
      Definition 4.6).

    Parameters
    ----------
    logsv_B : numpy.ndarray
        ``log s_k(B_l)`` [L, k].
    r : int
        Size of the top cluster (in [1, k-1]).
    l_from : int
        First depth of the fits (default 2).

    Returns
    -------
    result : dict of str to float
        ``r``, ``size_bottom`` and the entries listed above.

    Raises
    ------
    ValueError
        If ``r`` is out of range or the fitted range holds non-finite entries.
    """
    x = np.asarray(logsv_B, dtype=float)
    L, k = x.shape
    r = check_int("r", r, 1, k - 1)
    ls = np.arange(l_from, L + 1, dtype=float)
    y = x[l_from - 1:]
    if not np.all(np.isfinite(y)):
        raise ValueError("logsv_B has non-finite entries in the fitted range (rank below k?)")
    a, b = fit_slopes(ls, y)  # [k]
    res = np.abs(y - (ls[:, None] * a + b)).max()
    slope_top = float(fit_slopes(ls, y[:, :r].mean(1))[0])
    slope_bottom = float(fit_slopes(ls, y[:, r:].mean(1))[0])
    last = x[-1]
    return {"r": r, "size_bottom": k - r, "slope_top": slope_top, "slope_bottom": slope_bottom,
            "gap": float(last[r - 1] - last[r]), "spread_top": float(last[0] - last[r - 1]),
            "spread_bottom": float(last[r] - last[-1]), "maxres": float(res)}


def alignment_reach(rho: np.ndarray, level: float = 0.5) -> float:
    """How far along the depth the alignment reaches: the l at which ``rho`` falls below
    ``level``.

    ``rho`` [m]: values at l = 1..m. Returns the first crossing, linearly interpolated between
    the two l around it; 1.0 when ``rho[0] < level`` already, ``m`` when it never falls below.

    Parameters
    ----------
    rho : numpy.ndarray
        Finite values [m] at l = 1..m.
    level : float
        The threshold (default 0.5).

    Returns
    -------
    reach : float
        In [1, m].

    Raises
    ------
    ValueError
        If ``rho`` is not a finite one-dimensional array.
    """
    x = np.asarray(rho, dtype=float)
    if x.ndim != 1 or x.size < 1 or not np.all(np.isfinite(x)):
        raise ValueError(f"rho must be a finite 1-d array, got shape {x.shape}")
    below = np.nonzero(x < level)[0]
    if below.size == 0:
        return float(x.size)
    i = int(below[0])
    if i == 0:
        return 1.0
    return float(i + (x[i - 1] - level) / (x[i - 1] - x[i]))
