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

import math
from typing import Sequence

import numpy as np
import torch

from ..base.conventions import shared_doc
from ..base.laws import LayerLaw, Product, check_law
from ..base.progress import progress as progress_bar
from ..base.results import Result
from ..base.statistics import conditional_stats, fit_slopes
from ..base.threads import single_threaded
from ..base.validation import check_int
from ..products.accumulator import SpectrumAccumulator, accumulate_factors
from ..products.sampling import (
    iter_factors,
    iter_network,
    make_generator,
    network_layers,
    sample_network,
)
from ..products.spectra import factor_log_spectra, log_spectra_by_depth

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
@shared_doc
def top_values_by_depth(product: Product, k: int, replicates: int, *, seed: int = 0,
                        dtype=torch.float64, device="cpu", progress: bool | None = None,
                        ) -> Result:
    """``(1/l) log s_{i,l}`` for l = 1..L and i = 1..k over ``replicates`` independent
    products (Figures 2, 9).

    Returns ``logs`` [replicates, L, k] (raw ``log s_{i,l}``, not divided by l), and the
    conditional statistics of ``logs / l`` along the replicate axis: ``mean``, ``se``, ``frac``
    (each [L, k]), plus ``depth`` [L].

    Parameters
    ----------
    %(product)s
    %(k)s
    %(replicates)s
    %(seed)s
    %(dtype)s
    %(device)s
    %(progress)s

    Returns
    -------
    result : dict of str to numpy.ndarray
        ``logs`` [replicates, L, k], ``depth`` [L], and ``mean``, ``se``, ``sd``, ``count``,
        ``frac`` [L, k] of :func:`fgln.base.statistics.conditional_stats`.

    Raises
    ------
    TypeError
        If ``product`` is not a Product, or ``k``, ``replicates`` not integers.
    ValueError
        If one of them is out of range.
    """
    L = product.L
    logs = factor_log_spectra(product, k, replicates, seed=seed, dtype=dtype, device=device,
                              progress=progress).cpu().numpy()
    depth = np.arange(1, L + 1)
    st = conditional_stats(logs / depth[None, :, None], axis=0)
    return Result(logs=logs, depth=depth, **st)


@single_threaded
@shared_doc
def spectrum_at_depth(product: Product, k: int, replicates: int, *, seed: int = 0,
                      dtype=torch.float64, device="cpu") -> Result:
    """``(1/L) log s_{i,L}``, i = 1..k, over replicates (Figure 3): conditional stats [k].

    Parameters
    ----------
    %(product)s
    %(k)s
    %(replicates)s
    %(seed)s
    %(dtype)s
    %(device)s

    Returns
    -------
    result : dict of str to numpy.ndarray
        ``values`` [replicates, k] (``(1/L) log s_{i,L}``), ``mean``, ``se``, ``sd``,
        ``count``, ``frac`` [k] over the replicates, and ``gate_ranks`` [replicates, L] (the
        rank of every gate of every product, :func:`gate_ranks`; all ``n`` when ``p = 1``).

    Raises
    ------
    TypeError
        If ``product`` is not a Product, or ``k``, ``replicates`` not integers.
    ValueError
        If one of them is out of range.
    """
    L = product.L
    ranks: list[torch.Tensor] = []  # the gate ranks of these very draws

    def recorded(factors):
        for R, m in factors:
            ranks.append(m.cpu())
            yield R, m

    acc = SpectrumAccumulator.start(product.n, replicates, dtype=dtype, device=device)
    factors = iter_factors(product, replicates, seed=seed, dtype=dtype, device=device)
    # every row kept (below=None): the recording generator does not pass widths on to the
    # sampler, so the product could not shed rows anyway
    logs = accumulate_factors(recorded(factors), acc, L, depths=[L],
                              k=check_int("k", k, 1, product.n), below=None, progress=False)[0]
    logs = logs.cpu().numpy()
    return Result(values=logs / L, **conditional_stats(logs / L, axis=0),
                  gate_ranks=torch.stack(ranks, 1).numpy())


@shared_doc
def gate_ranks(product: Product, replicates: int, *, seed: int = 0,
               dtype=torch.float64, device="cpu") -> np.ndarray:
    """Rank of each gate ``D_l`` of the products that the same arguments give to
    :func:`top_values_by_depth`, :func:`spectrum_at_depth`, :func:`finite_depth_offsets`
    (the same seed draws the same factors, :func:`fgln.products.sampling.iter_factors`; the
    ungated last layer of the ``"fgln"`` convention has rank ``n``).

    With Gaussian weights, ``s_{i,L} > 0`` exactly when every gate has rank ``>= i`` (almost
    surely), so ``min(k, gate_ranks.min(1))`` is the number of nonzero values among the top
    ``k`` of each product.

    Parameters
    ----------
    %(product)s
    %(replicates)s
    %(seed)s
    %(dtype)s
    %(device)s

    Returns
    -------
    ranks : numpy.ndarray
        [replicates, L] integers, column l - 1 the rank of ``D_l``.
    """
    out = [m.cpu() for _, m in iter_factors(product, replicates, seed=seed, dtype=dtype,
                                             device=device)]
    return torch.stack(out, 1).numpy()


def depth_slopes(depths, logs, *, start: int) -> dict:
    """Per-product least-squares slopes of ``log s_{i,l}`` against the depth ``l`` over the
    depths ``l >= start`` (Figure 9: the slope of a line ``l gamma_i + const``, from which a
    constant finite-depth offset cancels).

    A product whose ``s_{i,l}`` vanishes at some depth of the window (``-inf``, unconditioned
    gates) has no slope for that index: NaN there, and the statistics over products are
    conditional on ``s_{i,l} > 0`` throughout the window (which, for products of i.i.d.
    layers, makes them products of (i, p)-layers: Remark 5.4 with ``r = i``).

    Parameters
    ----------
    depths : array_like
        Depths [m] (the ``depth`` field of :func:`top_values_by_depth`).
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
    depths = np.asarray(depths, dtype=float)
    logs = np.asarray(logs, dtype=float)
    if logs.ndim != 3 or logs.shape[1] != depths.size:
        raise ValueError(f"logs must be [replicates, {depths.size}, k], got {logs.shape}")
    sel = depths >= start
    if sel.sum() < 3:
        raise ValueError(f"fewer than 3 depths >= {start}")
    x = depths[sel]
    y = logs[:, sel, :]  # [replicates, m, k]
    ok = np.isfinite(y).all(1)  # [replicates, k]
    R, m, k = y.shape
    a, _ = fit_slopes(x, np.where(np.isfinite(y), y, 0.0).transpose(1, 0, 2).reshape(m, R * k))
    slopes = np.where(ok, a.reshape(R, k), np.nan)
    st = conditional_stats(slopes, axis=0)
    return {"slopes": slopes, "mean": st["mean"], "se": st["se"], "count": st["count"],
            "window": x}


@single_threaded
@shared_doc
def wedge_log_norms(law: LayerLaw, k: int, replicates: int, *, seed: int = 0) -> Result:
    """Monte Carlo of ``lambda_i = E log||Y e_1 ^ ... ^ Y e_i||`` (Lemma C.4), i = 1..k.

    ``||Y e_1 ^ ... ^ Y e_i||^2 = det(X^T X)`` with X the first i columns of Y (Appendix B),
    computed as ``prod_{j<=i} |R_jj|^2`` from one QR factorisation of the first k columns.
    Returns ``mean``, ``se`` [k] of ``lambda_i`` and ``gamma_mean`` = first differences.

    Parameters
    ----------
    %(law)s
    %(k)s
    %(replicates)s
    %(seed)s

    Returns
    -------
    result : dict of str to numpy.ndarray
        ``mean``, ``se`` of ``lambda_1..lambda_k`` [k]; ``gamma_mean``, ``gamma_se`` [k] of
        the increments ``lambda_i - lambda_{i-1}`` (estimates of ``gamma_i``).

    Raises
    ------
    TypeError
        If ``law`` is not a LayerLaw, or ``k``, ``replicates`` not integers.
    ValueError
        If one of them is out of range.
    """
    # ||Y e_1 ^ ... ^ Y e_i|| = prod_{j<=i} |R_jj| for the QR factorisation of the first k
    # columns of Y (one factorisation gives every i). Layers are drawn from one stream in
    # chunks, to bound the memory. The wedge vanishes exactly when i exceeds the gate's rank
    # (W is invertible almost surely); rounding would leave |R_ii| ~ 1e-16 there, so those
    # entries are set to log 0 = -inf and the statistics are conditional on rank >= i.
    check_law(law)
    k = check_int("k", k, 1, law.n)
    replicates = check_int("replicates", replicates, 2)
    gen = make_generator(seed)
    vals = np.empty((replicates, k))
    for start in range(0, replicates, _WEDGE_CHUNK):
        b = min(_WEDGE_CHUNK, replicates - start)
        # one gated layer, only the k columns the wedge reads drawn
        (w, d), = iter_network(law.product(1), b, columns=k, seed=gen)
        R = torch.linalg.qr(d[:, :, None] * w, mode="r").R
        logs = torch.log(R.diagonal(dim1=-2, dim2=-1).abs())
        rank = d.sum(-1).round().long()
        logs[torch.arange(1, k + 1)[None, :] > rank[:, None]] = -math.inf
        vals[start:start + b] = torch.cumsum(logs, -1).numpy()
    st = conditional_stats(vals)
    # increments lambda_i - lambda_{i-1} estimate gamma_i, with their own standard error
    with np.errstate(invalid="ignore"):  # -inf - (-inf) past the rank: NaN, left out below
        inc = np.diff(np.concatenate([np.zeros((replicates, 1)), vals], 1), axis=1)
    sti = conditional_stats(inc)
    return Result(mean=st["mean"], se=st["se"], gamma_mean=sti["mean"], gamma_se=sti["se"])


@single_threaded
@shared_doc
def finite_depth_offsets(product: Product, k: int, replicates: int, *, seed: int = 0,
                         dtype=torch.float64, device="cpu", progress: bool | None = None,
                         ) -> Result:
    """Direct measurement of ``d_i`` (Theorem 5.3) with a control variate, i = 1..k.

    Along the QR accumulation ``J_L = Q T``, ``log||J_L e_1 ^ ... ^ J_L e_i|| = sum_{j<=i}
    log|T_jj|`` and each layer contributes an independent copy of ``log||Y f_1 ^ ... ^ Y f_i||``
    for an orthonormal frame f, whose mean is exactly ``lambda_i`` (right rotation
    invariance of Y). The factors ``T = R_L ... R_1`` are drawn in law
    (:func:`fgln.products.sampling.iter_factors`), where that copy is ``sum_{j<=i}
    log|(R_l)_jj|``. So ``sum_{j<=i} log s_j - sum_{j<=i} log|T_jj|`` has mean
    ``E log||^i J_L|| - L lambda_i``, which tends to ``d_i`` (Lemma C.7), with a small variance.
    Returns ``mean``, ``se`` [k] of that difference (conditional on ``s_k > 0``).

    Parameters
    ----------
    %(product)s
    %(k)s
    %(replicates)s
    %(seed)s
    %(dtype)s
    %(device)s
    %(progress)s

    Returns
    -------
    result : dict of str to numpy.ndarray
        ``values`` [replicates, k] (per product; ``-inf`` where ``s_k = 0``), and ``mean``,
        ``se``, ``frac`` [k]: estimates of ``d_1..d_k``, their standard errors and the
        fraction of replicates with ``s_k > 0``.

    Raises
    ------
    TypeError
        If ``product`` is not a Product, or ``k``, ``replicates`` not integers.
    ValueError
        If one of them is out of range.
    """
    L = product.L
    acc = SpectrumAccumulator.start(product.n, replicates, dtype=dtype, device=device)
    factors = iter_factors(product, replicates, seed=seed, dtype=dtype, device=device)
    accumulate_factors(factors, acc, L, k=k, progress=progress, desc=f"offsets L={L}")
    logs = acc.log_svdvals(k)
    nd = acc.N.diagonal(dim1=-2, dim2=-1)[:, :k].abs()  # rows past N's are zero
    nd = torch.cat([nd, nd.new_zeros(nd.shape[0], k - nd.shape[1])], 1)
    diag = acc.a[:, :k] + torch.log(nd)
    diff = (torch.cumsum(logs, -1) - torch.cumsum(diag, -1)).cpu().numpy()
    ok = np.isfinite(diff[:, -1])
    diff[~ok] = np.nan
    diff = np.where(np.isnan(diff), -np.inf, diff)
    st = conditional_stats(diff)
    return Result(values=diff, mean=st["mean"], se=st["se"], frac=st["frac"])


@single_threaded
@shared_doc
def depth_scaling_fit(product: Product, k: int, replicates: int, *, seed: int = 0,
                      fit_from: Sequence[int] = (1,), progress: bool | None = None,
                      ) -> Result:
    """Depth scaling of the intermediate Jacobians ``B_l`` (Figure 4 left, Definition 4.6) of
    ``replicates`` networks (``product`` in the convention ``"fgln"``).

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
    %(product)s
    %(k)s
    %(replicates)s
    %(seed)s
    %(progress)s
    fit_from : sequence of int
        The ``j0`` values at which the fits start (default ``(1,)``).

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
    n, L = product.network().n, product.L
    if L < 3:
        raise ValueError(f"L must be >= 3 for a fit, got {L}")
    w, g = sample_network(product.at_depth(L - 1), replicates, seed=seed)
    layers = network_layers(w, g, "section5")
    chunks = list(range(0, replicates, 4))  # same numbers as one batch; chunked for progress
    it = progress_bar(chunks, total=len(chunks), desc=f"B_l spectra n={n} L={L}",
                      enable=progress)
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
