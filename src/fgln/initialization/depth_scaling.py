"""Section 5 experiments: depth scaling of gated products at initialization.

Each function runs one measurement over independent replicates (products drawn from one
seeded stream) and returns a dict of numpy arrays (ready for
:func:`fgln.book.cache.cached`). Statistics are over replicates
(:func:`fgln.base.statistics.conditional_stats`): ``mean`` and ``se`` (standard error of the
mean); with unconditioned gates, ``log s_i = -inf`` happens (exact zeros), and the statistics
are then conditional on ``s_i > 0``, with the fraction of replicates where it holds reported
as ``frac``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..base.progress import progress as progress_bar
from ..base.statistics import conditional_stats, fit_slopes
from ..base.threads import single_threaded
from ..products.accumulator import SpectrumAccumulator, accumulate
from ..products.sampling import iter_layers, network_layers, sample_network
from ..products.spectra import log_spectra_by_depth, stream_log_spectra

# The grid points below run on one intra-op thread: the reductions inside matrix products
# then add in one order, so a result is the same whichever executor (and however many
# threads per worker) computes it.
__all__ = [
    "top_values_by_depth",
    "spectrum_at_depth",
    "wedge_log_norms",
    "finite_depth_offsets",
    "depth_scaling_fit",
]


@single_threaded
def top_values_by_depth(n: int, L: int, p: float, k: int, replicates: int, *, seed: int = 0,
                        min_rank: int | None = None, sigma: float | None = None,
                        dtype=torch.float64, device="cpu", progress: bool = False) -> dict:
    """``(1/l) log s_{i,l}`` for l = 1..L and i = 1..k over ``replicates`` independent
    products (Figures 2, 9).

    Returns ``logs`` [replicates, L, k] (raw ``log s_{i,l}``, not divided by l), and the
    conditional statistics of ``logs / l`` along the replicate axis: ``mean``, ``se``, ``frac``
    (each [L, k]), plus ``depth`` [L].

    Parameters
    ----------
    n : int
        Width (>= 1).
    L : int
        Depth (>= 1).
    p : float
        Gate probability in (0, 1].
    k : int
        How many singular values, largest first (in [1, n]).
    replicates : int
        Independent products (>= 1).
    seed : int
        Start value of the random stream (>= 0).
    min_rank : int or None
        ``r`` of (r, p)-gates (Definition 5.2): gates resampled until their rank is at least
        ``r`` (in [1, n]); None for plain p-gates.
    sigma : float or None
        Standard deviation of the Ginibre entries (> 0); None means ``1/sqrt(n)``.
    dtype : torch.dtype
        Floating type of the tensors (default float64).
    device : str or torch.device
        Where the tensors live (default ``"cpu"``).
    progress : bool
        Show a progress bar (silenced by ``FGLN_PROGRESS=0``).

    Returns
    -------
    result : dict of str to numpy.ndarray
        ``logs`` [replicates, L, k], ``depth`` [L], and ``mean``, ``se``, ``sd``, ``count``,
        ``frac`` [L, k] of :func:`fgln.base.statistics.conditional_stats`.

    Raises
    ------
    TypeError
        If ``n``, ``L``, ``k``, ``replicates`` or ``min_rank`` is not an integer, or ``p``,
        ``sigma`` not a number.
    ValueError
        If one of them is out of range.
    """
    logs = stream_log_spectra(n, L, p, sigma, batch=replicates, min_rank=min_rank, seed=seed,
                              depths=range(1, L + 1), k=k, dtype=dtype, device=device,
                              progress=progress).cpu().numpy()
    depth = np.arange(1, L + 1)
    st = conditional_stats(logs / depth[None, :, None], axis=0)
    return {"logs": logs, "depth": depth, **st}


@single_threaded
def spectrum_at_depth(n: int, L: int, p: float, k: int, replicates: int, *, seed: int = 0,
                      min_rank: int | None = None, sigma: float | None = None,
                      dtype=torch.float64, device="cpu") -> dict:
    """``(1/L) log s_{i,L}``, i = 1..k, over replicates (Figure 3): conditional stats [k].

    Parameters
    ----------
    n : int
        Width (>= 1).
    L : int
        Depth (>= 1).
    p : float
        Gate probability in (0, 1].
    k : int
        How many singular values, largest first (in [1, n]).
    replicates : int
        Independent products (>= 1).
    seed : int
        Start value of the random stream (>= 0).
    min_rank : int or None
        ``r`` of (r, p)-gates (Definition 5.2): gates resampled until their rank is at least
        ``r`` (in [1, n]); None for plain p-gates.
    sigma : float or None
        Standard deviation of the Ginibre entries (> 0); None means ``1/sqrt(n)``.
    dtype : torch.dtype
        Floating type of the tensors (default float64).
    device : str or torch.device
        Where the tensors live (default ``"cpu"``).

    Returns
    -------
    result : dict of str to numpy.ndarray
        ``values`` [replicates, k] (``(1/L) log s_{i,L}``) and ``mean``, ``se``, ``sd``,
        ``count``, ``frac`` [k] over the replicates.

    Raises
    ------
    TypeError
        If ``n``, ``L``, ``k``, ``replicates`` or ``min_rank`` is not an integer, or ``p``,
        ``sigma`` not a number.
    ValueError
        If one of them is out of range.
    """
    logs = stream_log_spectra(n, L, p, sigma, batch=replicates, min_rank=min_rank, seed=seed,
                              k=k, dtype=dtype, device=device)[:, 0].cpu().numpy()
    return {"values": logs / L, **conditional_stats(logs / L, axis=0)}


@single_threaded
def wedge_log_norms(n: int, p: float, k: int, replicates: int, *, seed: int = 0,
                    min_rank: int | None = None, sigma: float | None = None) -> dict:
    """Monte Carlo of ``lambda_i = E log||Y e_1 ^ ... ^ Y e_i||`` (Lemma C.4), i = 1..k.

    ``||Y e_1 ^ ... ^ Y e_i||^2 = det(X^T X)`` with X the first i columns of Y (Appendix B).
    Returns ``mean``, ``se`` [k] of ``lambda_i`` and ``gamma_mean`` = first differences.

    Parameters
    ----------
    n : int
        Width (>= 1).
    p : float
        Gate probability in (0, 1].
    k : int
        Largest wedge order (in [1, n]).
    replicates : int
        Independent layers Y (>= 1).
    seed : int
        Start value of the random stream (>= 0).
    min_rank : int or None
        ``r`` of (r, p)-gates (Definition 5.2): gates resampled until their rank is at least
        ``r`` (in [1, n]); None for plain p-gates.
    sigma : float or None
        Standard deviation of the Ginibre entries (> 0); None means ``1/sqrt(n)``.

    Returns
    -------
    result : dict of str to numpy.ndarray
        ``mean``, ``se`` of ``lambda_1..lambda_k`` [k]; ``gamma_mean``, ``gamma_se`` [k] of
        the increments ``lambda_i - lambda_{i-1}`` (estimates of ``gamma_i``).

    Raises
    ------
    TypeError
        If ``n``, ``replicates`` or ``min_rank`` is not an integer, or ``p``, ``sigma`` not a
        number.
    ValueError
        If one of them is out of range.
    """
    w, d = sample_network(n, 1, p, sigma, batch=replicates, min_rank=min_rank, seed=seed)
    Y = d[:, 0, :, None] * w[:, 0]
    vals = np.empty((replicates, k))
    for i in range(1, k + 1):
        X = Y[:, :, :i]
        vals[:, i - 1] = 0.5 * torch.linalg.slogdet(X.mT @ X).logabsdet.numpy()
    st = conditional_stats(vals)
    # increments lambda_i - lambda_{i-1} estimate gamma_i, with their own standard error
    inc = np.diff(np.concatenate([np.zeros((replicates, 1)), vals], 1), axis=1)
    sti = conditional_stats(inc)
    return {"mean": st["mean"], "se": st["se"], "gamma_mean": sti["mean"],
            "gamma_se": sti["se"]}


@single_threaded
def finite_depth_offsets(n: int, L: int, p: float, k: int, replicates: int, *, seed: int = 0,
                         min_rank: int | None = None, sigma: float | None = None,
                         dtype=torch.float64, device="cpu", progress: bool = False) -> dict:
    """Direct measurement of ``d_i`` (Theorem 5.3) with a control variate, i = 1..k.

    Along the QR accumulation ``J_L = Q T``, ``log||J_L e_1 ^ ... ^ J_L e_i|| = sum_{j<=i}
    log|T_jj|`` and each layer contributes an independent copy of ``log||Y f_1 ^ ... ^ Y f_i||``
    for an orthonormal frame f, whose mean is exactly ``lambda_i`` (right rotation
    invariance of Y). So ``sum_{j<=i} log s_j - sum_{j<=i} log|T_jj|`` has mean
    ``E log||^i J_L|| - L lambda_i``, which tends to ``d_i`` (Lemma C.7), with a small variance.
    Returns ``mean``, ``se`` [k] of that difference (conditional on ``s_k > 0``).

    Parameters
    ----------
    n : int
        Width (>= 1).
    L : int
        Depth (>= 1).
    p : float
        Gate probability in (0, 1].
    k : int
        How many singular values, largest first (in [1, n]).
    replicates : int
        Independent products (>= 1).
    seed : int
        Start value of the random stream (>= 0).
    min_rank : int or None
        ``r`` of (r, p)-gates (Definition 5.2): gates resampled until their rank is at least
        ``r`` (in [1, n]); None for plain p-gates.
    sigma : float or None
        Standard deviation of the Ginibre entries (> 0); None means ``1/sqrt(n)``.
    dtype : torch.dtype
        Floating type of the tensors (default float64).
    device : str or torch.device
        Where the tensors live (default ``"cpu"``).
    progress : bool
        Show a progress bar (silenced by ``FGLN_PROGRESS=0``).

    Returns
    -------
    result : dict of str to numpy.ndarray
        ``mean``, ``se``, ``frac`` [k]: estimates of ``d_1..d_k``, their standard errors and
        the fraction of replicates with ``s_k > 0``.

    Raises
    ------
    TypeError
        If ``n``, ``L``, ``k``, ``replicates`` or ``min_rank`` is not an integer, or ``p``,
        ``sigma`` not a number.
    ValueError
        If one of them is out of range.
    """
    acc = SpectrumAccumulator.start(replicates, n, dtype=dtype, device=device)
    layers = iter_layers(n, L, p, sigma, batch=replicates, min_rank=min_rank, seed=seed,
                         dtype=dtype, device=device)
    accumulate(layers, acc, L, reorth_every=1, progress=progress, desc=f"offsets L={L}")
    logs = acc.log_svdvals(k)
    diag = acc.a[:, :k] + torch.log(acc.N.diagonal(dim1=-2, dim2=-1)[:, :k].abs())
    diff = (torch.cumsum(logs, -1) - torch.cumsum(diag, -1)).cpu().numpy()
    ok = np.isfinite(diff[:, -1])
    diff[~ok] = np.nan
    diff = np.where(np.isnan(diff), -np.inf, diff)
    st = conditional_stats(diff)
    return {"mean": st["mean"], "se": st["se"], "frac": st["frac"]}


@single_threaded
def depth_scaling_fit(n: int, L: int, p: float, k: int, replicates: int, *, seed: int = 0,
                      fit_from: Sequence[int] = (1,), progress: bool = False,
                      ) -> dict[str, np.ndarray]:
    """Depth scaling of the intermediate Jacobians ``B_l`` (Figure 4 left, Definition 4.6).

    ``B_l = D_{l-1} W_{l-1} ... D_1 W_1`` is the Section 5 product of ``j = l - 1`` gated
    layers; its exact top-k log singular values for j = 1..L-1 come from
    :func:`fgln.products.spectra.log_spectra_by_depth` (``B_1 = I``). For each network and each
    ``j0`` in ``fit_from``, fits ``log s_k(B_l) ~ j gamma_k + delta_k`` over ``j >= j0``.
    Returns ``logsv`` [replicates, L-1, k] (row j-1 = B_{j+1}), ``j`` [L-1], and for each j0:
    ``slope_j{j0}``, ``intercept_j{j0}`` [replicates, k], ``maxres_j{j0}`` [replicates, k] (largest
    absolute residual over the fitted j: the epsilon of Definition 4.6). If a gate of rank
    below k occurs, the affected ``log s`` are ``-inf`` and that network's fits are NaN:
    choose ``k`` well below ``n p``.

    Parameters
    ----------
    n : int
        Width (>= 1).
    L : int
        Depth of the network (>= 3): ``B_2..B_L`` are measured.
    p : float
        Gate probability in (0, 1].
    k : int
        How many singular values, largest first (in [1, n]).
    replicates : int
        Independent products (>= 1).
    seed : int
        Start value of the random stream (>= 0).
    fit_from : sequence of int
        The ``j0`` values at which the fits start (default ``(1,)``).
    progress : bool
        Show a progress bar (silenced by ``FGLN_PROGRESS=0``).

    Returns
    -------
    result : dict of str to numpy.ndarray
        ``logsv`` [replicates, L-1, k], ``j`` [L-1], and per ``j0``: ``slope_j{j0}``,
        ``intercept_j{j0}``, ``maxres_j{j0}`` [replicates, k].

    Raises
    ------
    ValueError
        If ``L < 3`` or another argument is out of range.
    """
    if L < 3:
        raise ValueError(f"L must be >= 3 for a fit, got {L}")
    w, g = sample_network(n, L - 1, p, batch=replicates, seed=seed)
    layers = network_layers(w, g, "section5")
    chunks = list(range(0, replicates, 4))  # same numbers as one batch; chunked for progress
    it = progress_bar(chunks, total=len(chunks), desc=f"B_l spectra n={n} L={L}",
                      enable=None if progress else False)
    logsv = torch.cat([log_spectra_by_depth(layers[c: c + 4], k=k) for c in it]).numpy()
    j = np.arange(1, L, dtype=float)
    res: dict[str, np.ndarray] = {"logsv": logsv, "j": j}
    for j0 in fit_from:
        sel = j >= j0
        slopes, icpts, maxres = [], [], []
        for s in range(replicates):
            a, b = fit_slopes(j[sel], logsv[s, sel])
            slopes.append(a)
            icpts.append(b)
            maxres.append(np.abs(logsv[s, sel] - (j[sel, None] * a + b)).max(0))
        res[f"slope_j{j0}"] = np.array(slopes)
        res[f"intercept_j{j0}"] = np.array(icpts)
        res[f"maxres_j{j0}"] = np.array(maxres)
    return res
