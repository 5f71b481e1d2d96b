"""Singular-vector alignment in fixed-gates networks (paper, Sections 6-8) and its measurements.

* :func:`svd_fixed_signs` -- SVD with a deterministic sign convention.
* :func:`alignment_overlaps` -- for a fixed-gates network ``J = A_l W_l B_l`` (Section 7
  notation), the top-left ``k x k`` blocks of ``U_J^T U_{A_l}``, ``U_J^T A_l A_l^T U_J`` and
  ``A_l A_l^T`` for every l in one pass, with their diagonal correlations (Figures 5, 6,
  10-12).
* :func:`overlap_profiles` -- the same statistics over many networks, as plain numpy arrays
  (for :func:`fgln.book.cache.cached`).

The diagonal correlation (Appendix F) is in :mod:`fgln.theory.diagonal_correlation`, the synthetic
checks of Theorem 6.1 in :mod:`fgln.initialization.synthetic_alignment`.
"""
from __future__ import annotations

import math
import warnings
from typing import Mapping, Sequence

import numpy as np
import torch

from ..base.conventions import shared_doc
from ..base.laws import Product
from ..base.progress import progress as progress_bar
from ..base.results import Result
from ..base.statistics import mean_se
from ..base.threads import single_threaded, torch_threads
from ..base.validation import check_int, check_layers
from ..products.partial_products import network_partial_products
from ..products.sampling import sample_network
from ..theory.diagonal_correlation import diagonal_correlations

Tensor = torch.Tensor

__all__ = ["fix_signs", "svd_fixed_signs", "alignment_overlaps", "overlap_profiles",
           "appendix_g_panel", "profile_minimum", "figure6_readings"]


# --------------------------------------------------------------------------------------
# SVD with a deterministic sign convention
# --------------------------------------------------------------------------------------


def fix_signs(U: Tensor, Vh: Tensor) -> tuple[Tensor, Tensor]:
    """Apply the sign convention of :func:`svd_fixed_signs` to an SVD pair.

    ``U`` [..., m, m] (or [..., m, r]), ``Vh`` [..., r', n]: every column of U is flipped so
    that its entry of largest absolute value (the first one on exact ties) is positive, and
    the matching row of ``Vh`` (for the first ``min(r', columns of U)`` rows) with it.

    Parameters
    ----------
    U : Tensor
        Left singular vectors [..., m, m] or [..., m, r].
    Vh : Tensor
        Right singular vectors, transposed [..., r', n].

    Returns
    -------
    U, Vh : Tensor
        The same shapes, signs fixed.
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

    Parameters
    ----------
    X : Tensor
        Matrices [..., m, n].

    Returns
    -------
    U : Tensor
        [..., m, m].
    S : Tensor
        Singular values [..., min(m, n)], decreasing.
    Vh : Tensor
        [..., n, n] (reduced [..., min(m, n), n] when m = n).
    """
    with torch_threads(1):
        U, S, Vh = torch.linalg.svd(X, full_matrices=X.shape[-1] != X.shape[-2])
    U, Vh = fix_signs(U, Vh)
    return U, S, Vh


# --------------------------------------------------------------------------------------
# overlaps of a fixed-gates network (Section 7 notation; Figures 5, 6, 10, 11, 12)
# --------------------------------------------------------------------------------------


def _network_bases(weights: Tensor, gates: Tensor, layers: list[int] | None = None):
    """``(UJ, SJ, UA, SA, AAt)`` for ``J = A_1 W_1`` and every ``A_l`` (batched), or only the
    ``A_l`` of the 0-based indices ``layers`` (in that order)."""
    A, _ = network_partial_products(weights, gates)  # A[:, l-1] = A_l
    J = A[:, 0] @ weights[:, 0]  # J = A_1 W_1 B_1 with B_1 = I
    if layers is not None:
        A = A[:, layers]
    UJ, SJ, _ = svd_fixed_signs(J)
    UA, SA, _ = svd_fixed_signs(A)
    return UJ, SJ, UA, SA, A @ A.mT


def _blocks(UJ: Tensor, UA: Tensor, AAt: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """Top-left k x k blocks of ``U_J^T U_{A_l}``, ``U_J^T A_l A_l^T U_J``, ``A_l A_l^T``."""
    UJk = UJ[..., :k]  # [b, n, k]
    overlap = UJk.mT[:, None] @ UA[..., :k]  # [b, L, k, k]
    gram = UJk.mT[:, None] @ AAt @ UJk[:, None]
    return overlap, gram, AAt[..., :k, :k]


def _rho(X: Tensor) -> Tensor:
    """Diagonal correlations, NaN without a warning where undefined (e.g. k = 1)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return diagonal_correlations(X)


@single_threaded
def alignment_overlaps(weights: Tensor, gates: Tensor, k: int) -> dict[str, Tensor]:
    """Alignment statistics of ``J = W_L D_{L-1} ... D_1 W_1`` for every l = 1..L.

    ``weights`` [batch, L, n, n] or [L, n, n], ``gates`` [batch, L, n] or [L, n] (as from
    :func:`fgln.products.sampling.sample_network`; ``D_L = I``). With ``A_l = W_L D_{L-1} ...
    W_{l+1} D_l``
    (``A_L = I``, Section 7), one pass over l (:func:`.network_partial_products`) gives

    * ``overlap``  [batch, L, k, k]: top-left block of ``U_J^T U_{A_l}`` (Theorem 6.1;
      Fig 5, 6, 11),
    * ``gram``     [batch, L, k, k]: top-left block of ``U_J^T A_l A_l^T U_J`` (Fig 10),
    * ``aat``      [batch, L, k, k]: top-left block of ``A_l A_l^T`` (Fig 12),
    * ``rho_overlap``, ``rho_gram``, ``rho_aat`` [batch, L]: their diagonal correlations,
    * ``log_sv_J`` [batch, n], ``log_sv_A`` [batch, L, n]: log singular values.

    Singular vectors come from :func:`svd_fixed_signs`. At l = L, ``A_L = I`` has no
    preferred singular basis (U_{A_L} = I is a convention), so ``overlap[:, L-1]`` is just the
    top-left block of ``U_J^T``. The batch dimension is dropped if the input had none.

    Parameters
    ----------
    weights : Tensor
        ``W_1..W_L`` [batch, L, n, n] or [L, n, n].
    gates : Tensor
        Gate diagonals [batch, L, n] or [L, n] (the last one is ignored).
    k : int
        Size of the top-left blocks (in [1, n]).

    Returns
    -------
    result : dict of str to Tensor
        The entries listed above.

    Raises
    ------
    ValueError
        If the shapes do not match or ``k`` is not an integer in [1, n].
    """
    squeeze = weights.ndim == 3
    if squeeze:
        weights, gates = weights[None], gates[None]
    b, L, n = check_layers(weights, "weights")
    if gates.shape != (b, L, n):
        raise ValueError(f"gates must be [batch, L, n] = {(b, L, n)}, got {tuple(gates.shape)}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= int(k) <= n:
        raise ValueError(f"k must be an integer in [1, {n}], got {k!r}")
    k = int(k)
    UJ, SJ, UA, SA, AAt = _network_bases(weights, gates)
    overlap, gram, aat = _blocks(UJ, UA, AAt, k)
    out = {
        "overlap": overlap, "gram": gram, "aat": aat,
        "rho_overlap": _rho(overlap), "rho_gram": _rho(gram), "rho_aat": _rho(aat),
        "log_sv_J": torch.log(SJ), "log_sv_A": torch.log(SA),
    }
    if squeeze:
        out = {key: v[0] for key, v in out.items()}
    return out


@single_threaded
@shared_doc
def overlap_profiles(product: Product, k: int | Sequence[int], replicates: int, *,
                     chunk: int = 8, keep_blocks: int = 0, layers: Sequence[int] | None = None,
                     seed: int = 0, progress: bool | None = None) -> Result:
    """Diagonal correlations of the three Appendix G.2 matrices for ``replicates`` networks
    (``product`` in Definition 4.1's convention, ``"fgln"``: :meth:`.Product.network`).

    Networks are drawn by :func:`fgln.products.sampling.sample_network` in chunks of ``chunk``,
    chunk c with seed ``seed * 100003 + c`` (reproducible). For every block size k in ``k``
    returns ``rho_overlap_k{k}``, ``rho_gram_k{k}``, ``rho_aat_k{k}`` [replicates, L] (l = 1..L) and
    ``rho_overlap_sq_k{k}`` (the overlap's diagonal correlation with weights ``x^2``
    instead of ``|x|``, an alternative reading of Figure 6);
    ``keep_blocks > 0`` also stores ``overlap_k{k}`` [keep_blocks, L, k, k] of the first
    networks (for heatmaps). ``log_sv_A`` [replicates, L, max(k)]: top log singular values of
    every ``A_l`` (``-inf`` beyond the rank). With ``layers``, only those ``l`` are measured
    (the SVDs of the other ``A_l`` are not computed) and the second axis holds them in that
    order instead of l = 1..L.

    Parameters
    ----------
    %(product)s
    k : int or sequence of int
        Block size(s) (each in [1, n]).
    %(replicates)s
    chunk : int
        Networks drawn per batch (>= 1).
    keep_blocks : int
        How many networks' overlap blocks to keep (>= 0).
    layers : sequence of int or None
        The layers ``l`` (each in [1, L]) to measure; ``None``: all, l = 1..L.
    %(seed)s
    %(progress)s

    Returns
    -------
    result : dict of str to numpy.ndarray
        The entries listed above, the layers (l = 1..L, or ``layers``) along the second axis.
    """
    ks = [int(k)] if isinstance(k, (int, np.integer)) else [int(j) for j in k]
    n, L, p = product.network().n, product.L, product.law.p
    idx = None if layers is None else [check_int("layers[i]", l, 1, L) - 1 for l in layers]
    if idx is not None and not idx:
        raise ValueError("layers must name at least one layer")
    res: dict[str, list] = {}
    n_chunks = math.ceil(replicates / chunk)
    chunks = progress_bar(range(n_chunks), total=n_chunks, desc=f"n={n} L={L} p={p}",
                          enable=progress)
    done = 0
    for ci in chunks:
        bsz = min(chunk, replicates - done)
        w, g = sample_network(product, bsz, seed=seed * 100003 + ci)
        UJ, _, UA, SA, AAt = _network_bases(w, g, idx)
        res.setdefault("log_sv_A", []).append(torch.log(SA[..., : max(ks)]))
        for k in ks:
            ov, gram, aat = _blocks(UJ, UA, AAt, k)
            res.setdefault(f"rho_overlap_k{k}", []).append(_rho(ov))
            res.setdefault(f"rho_overlap_sq_k{k}", []).append(_rho(ov * ov))
            res.setdefault(f"rho_gram_k{k}", []).append(_rho(gram))
            res.setdefault(f"rho_aat_k{k}", []).append(_rho(aat))
            if keep_blocks > 0 and done < keep_blocks:
                res.setdefault(f"overlap_k{k}", []).append(ov[: keep_blocks - done])
        done += bsz
    return Result({key: torch.cat(v).numpy() for key, v in res.items()})


@shared_doc
def appendix_g_panel(product: Product, k: int, replicates: int, *, seed: int = 0) -> Result:
    """One panel (n, p) of Appendix G.2 (Figures 10-12): :func:`overlap_profiles` for block
    size ``k`` over ``replicates`` networks, drawn with seed ``seed + 7 n + int(10 p)`` (so panels
    are independent).

    Parameters
    ----------
    %(product)s
    k : int
        Block size (in [1, n]).
    %(replicates)s
    %(seed)s

    Returns
    -------
    result : dict of str to numpy.ndarray
        As :func:`overlap_profiles` with the one block size ``k``.
    """
    n, p = product.n, product.law.p
    return overlap_profiles(product, [k], replicates, seed=seed + 7 * n + int(10 * p))


def profile_minimum(x: np.ndarray, boot: int, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray, int, tuple[float, float, float]]:
    """Where a mean profile over the layers has its minimum, with a bootstrap range
    (Appendix G.2's U shape).

    The minimum is taken over l = 1..L-1 (the last layer, where ``A_L = I``, is left out).

    Parameters
    ----------
    x : numpy.ndarray
        One profile per network [replicates, L] (NaN entries are left out of the means).
    boot : int
        Bootstrap resamples of the networks (>= 1).
    rng : numpy.random.Generator
        The resampling stream (consumed: pass the same generator to continue a sequence).

    Returns
    -------
    mean, se : numpy.ndarray
        Mean profile and its standard error over the networks [L].
    i_min : int
        Index (0-based, l - 1) of the smallest mean over l = 1..L-1.
    range : tuple of float
        16th, 50th and 84th percentiles of the minimum's location l (1-based) over the
        bootstrap resamples.
    """
    x = np.asarray(x, dtype=float)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"x must be [replicates, L] with L >= 2, got shape {x.shape}")
    boot = check_int("boot", boot, 1)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator, got {type(rng).__name__}")
    L = x.shape[1]
    m, se, _ = mean_se(x)
    i_min = int(np.argmin(m[: L - 1]))
    locs = []
    for _ in range(boot):
        idx = rng.integers(0, x.shape[0], x.shape[0])
        locs.append(int(np.argmin(np.nanmean(x[idx, : L - 1], 0))) + 1)
    lo, med, hi = np.percentile(locs, [16, 50, 84])
    return m, se, i_min, (float(lo), float(med), float(hi))


def figure6_readings(rho: Mapping[str, np.ndarray], printed: Sequence[float], n_select: int,
                     *, alpha: float = 0.05) -> dict:
    """Every reading of Figure 6's printed diagonal correlations, decided out of sample.

    A *reading* is one choice of block size and weights (``|x|`` as in Appendix F, or
    ``x^2``). The networks are split in two: the *selection* half (the first ``n_select``)
    picks the reading most favourable to the printed values and gives the spread of a single
    draw; the *test* half, used for neither, gives the statistic to decide (its mean per
    panel and the standard error of that mean).

    Parameters
    ----------
    rho : mapping of str to numpy.ndarray
        Reading name -> diagonal correlations [networks, panels] (the same networks, in the
        same order, for every reading).
    printed : sequence of float
        The printed values [panels].
    n_select : int
        Networks in the selection half; the rest form the test half (>= 2 in each).
    alpha : float
        Family-wise level of the single-draw prediction band over the panels (default 0.05).

    Returns
    -------
    result : dict
        ``names`` [readings]; per reading and panel [readings, panels]: ``mean_sel``,
        ``sd_sel`` (selection half), ``mean_test``, ``se_test`` (test half) and ``band``, the
        half-width ``q sqrt(1 + 1/n_select) sd_sel`` of the prediction band of one new draw
        (``q``: Student t, ``n_select - 1`` degrees of freedom, two-sided, Bonferroni over
        the panels); per reading: ``z_sel``, the largest ``|mean_sel - printed| / sd_sel``
        over panels, and ``dist_sel``, the largest ``|mean_sel - printed|``; ``best_draw``
        and ``best_mean``, the readings with the smallest ``z_sel`` (most favourable if the
        printed values are single draws) and the smallest ``dist_sel`` (if they are means);
        ``n_select``, ``n_test``.

    Raises
    ------
    ValueError
        If a half holds fewer than 2 networks or the readings' shapes differ.
    """
    from scipy.stats import t as student_t

    names = list(rho)
    p = np.asarray(printed, dtype=float)
    X = np.stack([np.asarray(rho[k], dtype=float) for k in names])  # [readings, nets, panels]
    if X.ndim != 3 or X.shape[2] != p.size:
        raise ValueError(f"every reading must be [networks, {p.size}] with the same networks")
    n_test = X.shape[1] - n_select
    if n_select < 2 or n_test < 2:
        raise ValueError(f"need >= 2 networks in each half, got {n_select} and {n_test}")
    S, T = X[:, :n_select], X[:, n_select:]
    mean_sel, sd_sel = S.mean(1), S.std(1, ddof=1)
    q = float(student_t.ppf(1 - alpha / (2 * p.size), n_select - 1))
    return dict(names=names, mean_sel=mean_sel, sd_sel=sd_sel, mean_test=T.mean(1),
                se_test=T.std(1, ddof=1) / np.sqrt(n_test),
                band=q * np.sqrt(1 + 1 / n_select) * sd_sel,
                z_sel=np.max(np.abs(mean_sel - p) / sd_sel, axis=1),
                dist_sel=np.max(np.abs(mean_sel - p), axis=1),
                best_draw=int(np.argmin(np.max(np.abs(mean_sel - p) / sd_sel, axis=1))),
                best_mean=int(np.argmin(np.max(np.abs(mean_sel - p), axis=1))),
                n_select=int(n_select), n_test=int(n_test))
