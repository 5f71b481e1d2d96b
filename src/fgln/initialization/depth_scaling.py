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
from ..products.sampling import (
    iter_layers,
    iter_network,
    make_generator,
    network_layers,
    sample_network,
)
from ..products.spectra import log_spectra_by_depth, stream_log_spectra

_WEDGE_CHUNK = 2500  # layers per draw in wedge_log_norms (memory ~ chunk * n^2 doubles)

# The grid points below run on one intra-op thread: the reductions inside matrix products
# then add in one order, so a result is the same whichever executor (and however many
# threads per worker) computes it.
__all__ = [
    "top_values_by_depth",
    "spectrum_at_depth",
    "wedge_log_norms",
    "finite_depth_offsets",
    "depth_scaling_fit",
    "gate_ranks",
    "depth_slopes",
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
        ``values`` [replicates, k] (``(1/L) log s_{i,L}``), ``mean``, ``se``, ``sd``,
        ``count``, ``frac`` [k] over the replicates, and ``gate_ranks`` [replicates, L] (the
        rank of every gate of every product, :func:`gate_ranks`; all ``n`` when ``p = 1``).

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
    if p < 1:
        ranks = gate_ranks(n, L, p, replicates, seed=seed, min_rank=min_rank, sigma=sigma,
                           dtype=dtype, device=device)
    else:
        ranks = np.full((replicates, L), n, dtype=np.int64)
    return {"values": logs / L, **conditional_stats(logs / L, axis=0), "gate_ranks": ranks}


def gate_ranks(n: int, L: int, p: float, replicates: int, *, seed: int = 0,
               min_rank: int | None = None, sigma: float | None = None,
               dtype=torch.float64, device="cpu") -> np.ndarray:
    """Rank of each gate ``D_l`` of the products that the same arguments give to
    :func:`top_values_by_depth`, :func:`spectrum_at_depth` (the same seed draws the same
    layers, :func:`fgln.products.sampling.iter_network`).

    With Gaussian weights, ``s_{i,L} > 0`` exactly when every gate has rank ``>= i`` (almost
    surely), so ``min(k, gate_ranks.min(1))`` is the number of nonzero values among the top
    ``k`` of each product.

    Parameters
    ----------
    n : int
        Width (>= 1).
    L : int
        Depth (>= 1).
    p : float
        Gate probability in (0, 1].
    replicates : int
        Independent products (>= 1).
    seed : int
        Start value of the random stream (>= 0).
    min_rank : int or None
        ``r`` of (r, p)-gates; None for plain p-gates.
    sigma : float or None
        Standard deviation of the Ginibre entries (> 0); None means ``1/sqrt(n)``.
    dtype : torch.dtype
        Floating type of the weights drawn (default float64; it fixes the stream).
    device : str or torch.device
        Where the tensors live (default ``"cpu"``).

    Returns
    -------
    ranks : numpy.ndarray
        [replicates, L] integers, column l - 1 the rank of ``D_l``.
    """
    out = [d.sum(-1).round().long().cpu()
           for _, d in iter_network(n, L, p, sigma, batch=replicates, min_rank=min_rank,
                                    seed=seed, dtype=dtype, device=device)]
    return torch.stack(out, 1).numpy()


def depth_slopes(depth, logs, *, start: int) -> dict:
    """Per-product least-squares slopes of ``log s_{i,l}`` against the depth ``l`` over the
    depths ``l >= start`` (Figure 9: the slope of a line ``l gamma_i + const``, from which a
    constant finite-depth offset cancels).

    A product whose ``s_{i,l}`` vanishes at some depth of the window (``-inf``, unconditioned
    gates) has no slope for that index: NaN there, and the statistics over products are
    conditional on ``s_{i,l} > 0`` throughout the window (which, for products of i.i.d.
    layers, makes them products of (i, p)-layers: Remark 5.4 with ``r = i``).

    Parameters
    ----------
    depth : array_like
        Depths [m] (the ``depth`` of :func:`top_values_by_depth`).
    logs : array_like
        ``log s_{i,l}`` [replicates, m, k] (its ``logs``).
    start : int
        First depth of the fit window (at least 3 depths must remain).

    Returns
    -------
    result : dict of str to numpy.ndarray
        ``slopes`` [replicates, k] (NaN where undefined), ``mean``, ``se``, ``count`` [k]
        over the products with a slope, and ``window`` (the depths fitted).

    Raises
    ------
    ValueError
        If fewer than 3 depths lie in the window or the shapes disagree.
    """
    depth = np.asarray(depth, dtype=float)
    logs = np.asarray(logs, dtype=float)
    if logs.ndim != 3 or logs.shape[1] != depth.size:
        raise ValueError(f"logs must be [replicates, {depth.size}, k], got {logs.shape}")
    sel = depth >= start
    if sel.sum() < 3:
        raise ValueError(f"fewer than 3 depths >= {start}")
    x = depth[sel]
    y = logs[:, sel, :]  # [replicates, m, k]
    ok = np.isfinite(y).all(1)  # [replicates, k]
    xc = x - x.mean()
    with np.errstate(invalid="ignore"):
        yc = np.where(np.isfinite(y), y, 0.0)
        slopes = np.einsum("rmk,m->rk", yc - yc.mean(1, keepdims=True), xc) / float(xc @ xc)
    slopes = np.where(ok, slopes, np.nan)
    st = conditional_stats(slopes, axis=0)
    return {"slopes": slopes, "mean": st["mean"], "se": st["se"], "count": st["count"],
            "window": x}


@single_threaded
def wedge_log_norms(n: int, p: float, k: int, replicates: int, *, seed: int = 0,
                    min_rank: int | None = None, sigma: float | None = None) -> dict:
    """Monte Carlo of ``lambda_i = E log||Y e_1 ^ ... ^ Y e_i||`` (Lemma C.4), i = 1..k.

    ``||Y e_1 ^ ... ^ Y e_i||^2 = det(X^T X)`` with X the first i columns of Y (Appendix B),
    computed as ``prod_{j<=i} |R_jj|^2`` from one QR factorisation of the first k columns.
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
    # ||Y e_1 ^ ... ^ Y e_i|| = prod_{j<=i} |R_jj| for the QR factorisation of the first k
    # columns of Y (one factorisation gives every i). Layers are drawn from one stream in
    # chunks, to bound the memory.
    gen = make_generator(seed)
    vals = np.empty((replicates, k))
    for start in range(0, replicates, _WEDGE_CHUNK):
        b = min(_WEDGE_CHUNK, replicates - start)
        w, d = sample_network(n, 1, p, sigma, batch=b, min_rank=min_rank, seed=gen)
        R = torch.linalg.qr(d[:, 0, :, None] * w[:, 0, :, :k], mode="r").R
        vals[start:start + b] = torch.cumsum(
            torch.log(R.diagonal(dim1=-2, dim2=-1).abs()), -1).numpy()
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
        ``values`` [replicates, k] (per product; ``-inf`` where ``s_k = 0``), and ``mean``,
        ``se``, ``frac`` [k]: estimates of ``d_1..d_k``, their standard errors and the
        fraction of replicates with ``s_k > 0``.

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
    return {"values": diff, "mean": st["mean"], "se": st["se"], "frac": st["frac"]}


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
