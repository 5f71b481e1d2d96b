"""Singular-vector alignment in fixed-gates networks (paper, Sections 6-8) and its measurements.

The diagonal correlation of Appendix F lives in :mod:`fgln.diagonal_correlation` and the
synthetic checks of Theorem 6.1 in :mod:`fgln.synthetic_alignment`; both are re-exported here.

Contents

* :func:`svd_fixed_signs` -- SVD with a deterministic sign convention.
* :func:`alignment_overlaps` -- for a fixed-gates network ``J = A_l W_l B_l`` (Section 7
  notation), the top-left ``k x k`` blocks of ``U_J^T U_{A_l}``, ``U_J^T A_l A_l^T U_J`` and
  ``A_l A_l^T`` for every l in one pass, with their diagonal correlations (Figures 5, 6,
  10-12).
* Experiment drivers returning plain numpy dicts (for :func:`fgln.cache.cached`):
  :func:`overlap_profiles`, :func:`depth_scaling_fit`.
"""
from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
from typing import Iterator, Sequence

import numpy as np
import torch

from .diagonal_correlation import (  # noqa: F401  (re-exported for convenience)
    diagonal_correlation,
    diagonal_correlation_closed_form,
    diagonal_correlations,
)
from .synthetic_alignment import (  # noqa: F401  (re-exported for convenience)
    cluster_limit,
    cluster_sweep,
    fit_slopes,
    haar_orthogonal,
    overlap_scaled,
    synthetic_product,
    theorem61_sweep,
    unit_ldl,
)
from .products import (
    network_layers,
    network_partial_products,
    log_spectra_by_depth,
    sample_network,
)

Tensor = torch.Tensor

__all__ = [
    "diagonal_correlations",
    "diagonal_correlation",
    "diagonal_correlation_closed_form",
    "fix_signs",
    "svd_fixed_signs",
    "alignment_overlaps",
    "haar_orthogonal",
    "unit_ldl",
    "synthetic_product",
    "overlap_scaled",
    "theorem61_sweep",
    "cluster_limit",
    "cluster_sweep",
    "fit_slopes",
    "overlap_profiles",
    "depth_scaling_fit",
    "torch_threads",
]


@contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Temporarily run torch with ``n`` intra-op threads (restored afterwards).

    Batched small SVDs/QRs do not gain from intra-op threads, and on a busy 2-core machine
    the default (2 threads) was measured 50-100x slower than 1 thread (spinning workers).
    The heavy functions of this module therefore run single-threaded.
    """
    old = torch.get_num_threads()
    if old != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if old != n:
            torch.set_num_threads(old)


# --------------------------------------------------------------------------------------
# SVD with a deterministic sign convention
# --------------------------------------------------------------------------------------


def fix_signs(U: Tensor, Vh: Tensor) -> tuple[Tensor, Tensor]:
    """Apply the sign convention of :func:`svd_fixed_signs` to an SVD pair.

    ``U`` [..., m, m] (or [..., m, r]), ``Vh`` [..., r', n]: every column of U is flipped so
    that its entry of largest absolute value (the first one on exact ties) is positive, and
    the matching row of ``Vh`` (for the first ``min(r', columns of U)`` rows) with it.
    """
    piv = U.abs().argmax(-2, keepdim=True)  # [..., 1, cols]
    sign = torch.sign(torch.gather(U, -2, piv))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    r = min(U.shape[-1], Vh.shape[-2])
    Vh = Vh.clone()
    Vh[..., :r, :] = Vh[..., :r, :] * sign[..., 0, :r, None]
    return U * sign, Vh


def svd_fixed_signs(X: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """SVD ``X = U diag(S) Vh`` of [..., m, n] (full matrices) with reproducible signs.

    Convention (:func:`fix_signs`): in every left singular vector (column of U) the entry of
    largest absolute value is positive; the matching row of ``Vh`` is flipped with it, so
    ``U[..., :, :r] diag(S) Vh[..., :r, :]`` is unchanged (r = min(m, n)). Vectors of
    repeated singular values (e.g. the null space of a gated, rank-deficient product, or
    every vector of the identity) remain basis-dependent.
    """
    with torch_threads(1):
        U, S, Vh = torch.linalg.svd(X, full_matrices=X.shape[-1] != X.shape[-2])
    U, Vh = fix_signs(U, Vh)
    return U, S, Vh


# --------------------------------------------------------------------------------------
# overlaps of a fixed-gates network (Section 7 notation; Figures 5, 6, 10, 11, 12)
# --------------------------------------------------------------------------------------


def _single_threaded(fn):
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with torch_threads(1):
            return fn(*args, **kwargs)
    return wrapper


@_single_threaded
def alignment_overlaps(weights: Tensor, gates: Tensor, k: int) -> dict[str, Tensor]:
    """Alignment statistics of ``J = W_L D_{L-1} ... D_1 W_1`` for every l = 1..L.

    ``weights`` [batch, L, n, n] or [L, n, n], ``gates`` [batch, L, n] or [L, n] (as from
    :func:`fgln.products.sample_network`; ``D_L = I``). With ``A_l = W_L D_{L-1} ... W_{l+1} D_l``
    (``A_L = I``, Section 7), one pass over l (:func:`network_partial_products`) gives

    * ``overlap``  [batch, L, k, k]: top-left block of ``U_J^T U_{A_l}`` (Theorem 6.1, Fig 5, 6, 11),
    * ``gram``     [batch, L, k, k]: top-left block of ``U_J^T A_l A_l^T U_J`` (Fig 10),
    * ``aat``      [batch, L, k, k]: top-left block of ``A_l A_l^T`` (Fig 12),
    * ``rho_overlap``, ``rho_gram``, ``rho_aat`` [batch, L]: their diagonal correlations,
    * ``log_sv_J`` [batch, n], ``log_sv_A`` [batch, L, n]: log singular values.

    Singular vectors come from :func:`svd_fixed_signs`. At l = L, ``A_L = I`` has no
    preferred singular basis (U_{A_L} = I is a convention), so ``overlap[:, L-1]`` is just the
    top-left block of ``U_J^T``. The batch dimension is dropped if the input had none.
    """
    squeeze = weights.ndim == 3
    if squeeze:
        weights, gates = weights[None], gates[None]
    if weights.ndim != 4 or weights.shape[-1] != weights.shape[-2]:
        raise ValueError(f"weights must be [batch, L, n, n], got {tuple(weights.shape)}")
    b, L, n, _ = weights.shape
    if gates.shape != (b, L, n):
        raise ValueError(f"gates must be [batch, L, n] = {(b, L, n)}, got {tuple(gates.shape)}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= int(k) <= n:
        raise ValueError(f"k must be an integer in [1, {n}], got {k!r}")
    k = int(k)
    A, _ = network_partial_products(weights, gates)  # A[:, l-1] = A_l
    J = A[:, 0] @ weights[:, 0]  # J = A_1 W_1 B_1 with B_1 = I
    UJ, SJ, _ = svd_fixed_signs(J)
    UA, SA, _ = svd_fixed_signs(A)
    UJk = UJ[..., :k]  # [b, n, k]
    overlap = UJk.mT[:, None] @ UA[..., :k]  # [b, L, k, k]
    AAt = A @ A.mT
    gram = UJk.mT[:, None] @ AAt @ UJk[:, None]
    aat = AAt[..., :k, :k]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # k = 1: NaN by definition
        out = {
            "overlap": overlap, "gram": gram, "aat": aat,
            "rho_overlap": diagonal_correlations(overlap),
            "rho_gram": diagonal_correlations(gram),
            "rho_aat": diagonal_correlations(aat),
            "log_sv_J": torch.log(SJ), "log_sv_A": torch.log(SA),
        }
    if squeeze:
        out = {key: v[0] for key, v in out.items()}
    return out


# --------------------------------------------------------------------------------------
# experiment drivers (plain numpy results, for fgln.cache.cached)
# --------------------------------------------------------------------------------------


@_single_threaded
def overlap_profiles(n: int, L: int, p: float, seeds: int, ks: Sequence[int], *,
                     seed: int = 0, chunk: int = 8, keep_blocks: int = 0,
                     progress: bool = False) -> dict[str, np.ndarray]:
    """Diagonal correlations of the three Appendix G.2 matrices for ``seeds`` networks.

    Networks are drawn by :func:`fgln.products.sample_network` in chunks of ``chunk``,
    chunk c with seed ``seed * 100003 + c`` (reproducible). For every block size k in ``ks``
    returns ``rho_overlap_k{k}``, ``rho_gram_k{k}``, ``rho_aat_k{k}`` [seeds, L] (l = 1..L) and
    ``rho_overlap_sq_k{k}`` (the overlap's diagonal correlation with weights ``x^2``
    instead of ``|x|``, an alternative reading of Figure 6);
    ``keep_blocks > 0`` also stores ``overlap_k{k}`` [keep_blocks, L, k, k] of the first
    networks (for heatmaps). ``log_sv_A`` [seeds, L, max(ks)]: top log singular values of
    every ``A_l`` (``-inf`` beyond the rank).
    """
    ks = [int(k) for k in ks]
    res: dict[str, list] = {}
    chunks = range(math.ceil(seeds / chunk))
    if progress:
        from .progress import progress as _progress
        chunks = _progress(chunks, total=len(chunks), desc=f"n={n} L={L} p={p}")
    done = 0
    for ci in chunks:
        bsz = min(chunk, seeds - done)
        w, g = sample_network(n, L, p, batch=bsz, seed=seed * 100003 + ci)
        A, _ = network_partial_products(w, g)
        J = A[:, 0] @ w[:, 0]
        UJ, _, _ = svd_fixed_signs(J)
        UA, SA, _ = svd_fixed_signs(A)
        res.setdefault("log_sv_A", []).append(torch.log(SA[..., : max(ks)]))
        AAt = A @ A.mT
        for k in ks:
            UJk = UJ[..., :k]
            ov = UJk.mT[:, None] @ UA[..., :k]
            gram = UJk.mT[:, None] @ AAt @ UJk[:, None]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                res.setdefault(f"rho_overlap_k{k}", []).append(diagonal_correlations(ov))
                res.setdefault(f"rho_overlap_sq_k{k}", []).append(diagonal_correlations(ov * ov))
                res.setdefault(f"rho_gram_k{k}", []).append(diagonal_correlations(gram))
                res.setdefault(f"rho_aat_k{k}", []).append(
                    diagonal_correlations(AAt[..., :k, :k]))
            if keep_blocks > 0 and done < keep_blocks:
                res.setdefault(f"overlap_k{k}", []).append(ov[: keep_blocks - done])
        done += bsz
    return {key: torch.cat(v).numpy() for key, v in res.items()}


@_single_threaded
def depth_scaling_fit(n: int, L: int, p: float, seeds: int, k: int, *, seed: int = 0,
                      fit_from: Sequence[int] = (1,), progress: bool = False,
                      ) -> dict[str, np.ndarray]:
    """Depth scaling of the intermediate Jacobians ``B_l`` (Figure 4 left, Definition 4.6).

    ``B_l = D_{l-1} W_{l-1} ... D_1 W_1`` is the Section 5 product of ``j = l - 1`` gated
    layers; its exact top-k log singular values for j = 1..L-1 come from
    :func:`fgln.products.log_spectra_by_depth` (``B_1 = I``). For each network and each
    ``j0`` in ``fit_from``, fits ``log s_k(B_l) ~ j gamma_k + delta_k`` over ``j >= j0``.
    Returns ``logsv`` [seeds, L-1, k] (row j-1 = B_{j+1}), ``j`` [L-1], and for each j0:
    ``slope_j{j0}``, ``intercept_j{j0}`` [seeds, k], ``maxres_j{j0}`` [seeds, k] (largest
    absolute residual over the fitted j: the epsilon of Definition 4.6). If a gate of rank
    below k occurs, the affected ``log s`` are ``-inf`` and that network's fits are NaN:
    choose ``k`` well below ``n p``.
    """
    if L < 3:
        raise ValueError("need L >= 3 for a fit")
    w, g = sample_network(n, L - 1, p, batch=seeds, seed=seed)
    layers = network_layers(w, g, "section5")
    chunks = list(range(0, seeds, 4))  # same numbers as one batch; chunked for progress
    it = chunks
    if progress:
        from .progress import progress as _progress
        it = _progress(chunks, total=len(chunks), desc=f"B_l spectra n={n} L={L}")
    logsv = torch.cat([log_spectra_by_depth(layers[c: c + 4], k=k) for c in it]).numpy()
    j = np.arange(1, L, dtype=float)
    res: dict[str, np.ndarray] = {"logsv": logsv, "j": j}
    for j0 in fit_from:
        sel = j >= j0
        slopes, icpts, maxres = [], [], []
        for s in range(seeds):
            a, b = fit_slopes(j[sel], logsv[s, sel])
            slopes.append(a)
            icpts.append(b)
            maxres.append(np.abs(logsv[s, sel] - (j[sel, None] * a + b)).max(0))
        res[f"slope_j{j0}"] = np.array(slopes)
        res[f"intercept_j{j0}"] = np.array(icpts)
        res[f"maxres_j{j0}"] = np.array(maxres)
    return res
