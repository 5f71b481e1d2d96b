"""Singular-vector alignment (paper, Section 6, Appendices D and F) and its measurements.

Contents

* :func:`diagonal_correlations` / :func:`diagonal_correlation` -- the diagonal correlation
  coefficient of Appendix F (Pearson correlation of the row and column index of a cell
  drawn with probability proportional to ``|A_ij|``); :func:`diagonal_correlation_closed_form`
  is the paper's closed formula, kept separately so that the two can be compared.
* :func:`svd_fixed_signs` -- SVD with a deterministic sign convention.
* :func:`alignment_overlaps` -- for a fixed-gates network ``J = A_l W_l B_l`` (Section 7
  notation), the top-left ``k x k`` blocks of ``U_J^T U_{A_l}``, ``U_J^T A_l A_l^T U_J`` and
  ``A_l A_l^T`` for every l in one pass, with their diagonal correlations (Figures 5, 6,
  10-12).
* Synthetic checks of Theorem 6.1 and Remarks 6.2, 6.3: :func:`synthetic_product`,
  :func:`overlap_scaled`, :func:`theorem61_sweep`, :func:`cluster_sweep`, :func:`unit_ldl`.
* Experiment drivers returning plain numpy dicts (for :func:`fgln.cache.cached`):
  :func:`overlap_profiles`, :func:`depth_scaling_fit`.

Degenerate diagonal correlation. The coefficient is a ratio ``Cov / (sd_X sd_Y)``; when the
mass of ``|A|`` sits on a single row or a single column (in particular for every 1 x 1
matrix) one standard deviation is zero and the coefficient is undefined. We return NaN and
emit a ``RuntimeWarning`` in that case (as ``numpy.corrcoef`` does), so that one
degenerate block does not abort a batched computation. Zero, empty, non-square and
non-finite inputs are errors (``ValueError``): they signal a bug upstream.
"""
from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
from typing import Iterator, Sequence

import numpy as np
import torch

from .products import (
    make_generator,
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
# diagonal correlation (Appendix F)
# --------------------------------------------------------------------------------------


def _as_tensor(A) -> Tensor:
    if isinstance(A, Tensor):
        return A
    return torch.as_tensor(np.asarray(A, dtype=np.float64))


def _check_square_stack(A: Tensor) -> None:
    if A.ndim < 2:
        raise ValueError(f"diagonal correlation needs a square matrix, got shape {tuple(A.shape)}")
    if A.shape[-1] != A.shape[-2]:
        raise ValueError(
            f"diagonal correlation needs square matrices, got shape {tuple(A.shape)} "
            f"({A.shape[-2]} x {A.shape[-1]})")
    if A.numel() == 0:
        raise ValueError(f"diagonal correlation of an empty array (shape {tuple(A.shape)})")
    if not bool(torch.isfinite(A).all()):
        raise ValueError("diagonal correlation needs finite entries (got NaN or inf)")


def diagonal_correlations(A) -> Tensor:
    """Diagonal correlation rho of every matrix in ``A`` [..., k, k]; returns Tensor[...].

    Appendix F: with weights ``w_ij = |A_ij| / sum |A|``, rho is the Pearson correlation of
    the row index X and column index Y under ``P(X=i, Y=j) = w_ij``. It is +1 exactly for
    (non-degenerate) diagonally supported matrices, -1 for anti-diagonal ones, invariant
    under ``A -> c A`` (c != 0), ``A -> A^T`` and entry sign changes.

    Computed with centred indices (no cancellation). Raises ``ValueError`` for empty,
    non-square, non-finite or all-zero matrices; returns NaN with a ``RuntimeWarning``
    when the mass lies on one row or one column (zero variance, e.g. any 1 x 1 matrix).
    """
    A = _as_tensor(A)
    _check_square_stack(A)
    W = A.abs().to(torch.float64 if not A.is_floating_point() else A.dtype)
    k = W.shape[-1]
    m = W.sum((-2, -1))
    if bool((m == 0).any()):
        raise ValueError("diagonal correlation of an all-zero matrix is undefined")
    P = W / m[..., None, None]
    idx = torch.arange(1, k + 1, dtype=W.dtype, device=W.device)
    px, py = P.sum(-1), P.sum(-2)  # row and column marginals
    mx, my = (px * idx).sum(-1), (py * idx).sum(-1)
    dx = idx - mx[..., None]
    dy = idx - my[..., None]
    vx = (px * dx * dx).sum(-1)
    vy = (py * dy * dy).sum(-1)
    cov = (dx[..., :, None] * P * dy[..., None, :]).sum((-2, -1))
    # exact degeneracy test: a single non-zero row (or column) carries all the mass
    one_row = (W.sum(-1) > 0).sum(-1) <= 1
    one_col = (W.sum(-2) > 0).sum(-1) <= 1
    degenerate = one_row | one_col
    rho = cov / torch.sqrt(vx * vy).where(~degenerate, torch.ones_like(vx))
    rho = rho.clamp(-1.0, 1.0)  # rounding can exceed 1 by an ulp
    if bool(degenerate.any()):
        warnings.warn(
            f"diagonal correlation undefined for {int(degenerate.sum())} matrix(ces) whose "
            "mass lies on a single row or column (zero variance); returning NaN",
            RuntimeWarning, stacklevel=2)
        rho = torch.where(degenerate, torch.full_like(rho, math.nan), rho)
    return rho


def diagonal_correlation(A) -> float:
    """Diagonal correlation (Appendix F) of one square matrix ``A`` [k, k]; a float.

    See :func:`diagonal_correlations` for the definition and error handling.
    """
    A = _as_tensor(A)
    if A.ndim != 2:
        raise ValueError(f"diagonal_correlation takes one matrix [k, k], got shape {tuple(A.shape)}"
                         " (use diagonal_correlations for batches)")
    return float(diagonal_correlations(A))


def diagonal_correlation_closed_form(A) -> Tensor:
    """The paper's closed formula (Appendix F) for rho, batched: [..., k, k] -> [...].

    With ``m = 1^T A 1``, ``r1 = (1..k)``, ``r2 = (1^2..k^2)`` and A replaced by ``|A|``::

        rho = (m r1^T A r1 - (r1^T A 1)(1^T A r1))
              / sqrt((m r2^T A 1 - (r1^T A 1)^2) (m 1^T A r2 - (1^T A r1)^2))

    Raw moments, so it loses accuracy by cancellation for large k; use
    :func:`diagonal_correlations` in computations. No validation, no degeneracy handling.
    """
    W = _as_tensor(A).abs()
    k = W.shape[-1]
    one = torch.ones(k, dtype=W.dtype, device=W.device)
    r1 = torch.arange(1, k + 1, dtype=W.dtype, device=W.device)
    r2 = r1 * r1

    def q(x, y):  # x^T W y, batched
        return torch.einsum("i,...ij,j->...", x, W, y)

    m = q(one, one)
    num = m * q(r1, r1) - q(r1, one) * q(one, r1)
    den = torch.sqrt((m * q(r2, one) - q(r1, one) ** 2) * (m * q(one, r2) - q(one, r1) ** 2))
    return num / den


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
# synthetic checks of Theorem 6.1 and Remarks 6.2, 6.3
# --------------------------------------------------------------------------------------


def haar_orthogonal(n: int, seed: int | torch.Generator | None = None,
                    dtype=torch.float64) -> Tensor:
    """A Haar-distributed orthogonal matrix [n, n] (QR of a Ginibre matrix, signs fixed)."""
    gen = make_generator(seed)
    G = torch.randn(n, n, generator=gen, dtype=dtype)
    Q, R = torch.linalg.qr(G)
    d = torch.sign(torch.diagonal(R))
    return Q * torch.where(d == 0, torch.ones_like(d), d)[None, :]


def unit_ldl(C: Tensor) -> tuple[Tensor, Tensor]:
    """``C = T diag(sigma) T^T`` with T unit lower-triangular; returns ``(T, sigma)``.

    C [r, r] symmetric positive definite (Theorem D.1's "Cholesky" factorisation of
    ``C^{r,r}``): from the Cholesky factor ``C = G G^T``, ``T = G diag(G)^{-1}``,
    ``sigma = diag(G)^2`` (= det C^{i,i} / det C^{i-1,i-1}).
    """
    G = torch.linalg.cholesky(C)
    g = torch.diagonal(G)
    return G / g[None, :], g * g


def synthetic_product(n: int, rates: Sequence[float], L: float, *, B: Tensor | None = None,
                      seed: int = 0) -> dict[str, Tensor]:
    """Theorem 6.1 setting: ``A_L = U S_L`` (right singular vectors = identity), ``J_L = A_L B``.

    ``S_L = diag(exp(-rates_i L))`` with non-decreasing ``rates`` (so ``s_{i+1}/s_i =
    exp(-(c_{i+1}-c_i) L)``); ``U`` [n, n] fixed Haar orthogonal and ``B`` [n, n] a fixed
    standard Gaussian matrix (both from ``seed``) unless ``B`` is given. Returns ``U``,
    ``log_s`` [n], ``B``, ``A`` and ``J`` (formed explicitly: use only at moderate L).
    """
    c = torch.as_tensor(rates, dtype=torch.float64)
    if c.shape != (n,):
        raise ValueError(f"rates must have length n={n}, got shape {tuple(c.shape)}")
    if bool((c[1:] < c[:-1]).any()):
        raise ValueError("rates must be non-decreasing (singular values sorted)")
    gen = make_generator(seed)
    U = haar_orthogonal(n, gen)
    if B is None:
        B = torch.randn(n, n, generator=gen, dtype=torch.float64)
    log_s = -c * float(L)
    A = U * torch.exp(log_s)[None, :]
    return {"U": U, "log_s": log_s, "B": B, "A": A, "J": A @ B}


def overlap_scaled(log_s: Tensor, B: Tensor) -> tuple[Tensor, Tensor]:
    """``R_L = U_{A_L}^T U_{J_L}`` and ``log s(J_L)`` for ``A_L = U diag(exp(log_s))``, ``J_L = A_L B``.

    Since ``U^T J_L = S_L B``, ``R_L`` is the left singular basis of ``S_L B``, whatever U
    is; we never form ``J_L``. Rows of ``S_L B`` are graded (sorted decreasing), for which
    LAPACK's SVD is accurate entrywise, down to entries of 1e-30 and below (checked in the
    tests against 80-digit arithmetic). Signs: positive diagonal of ``R_L`` (Theorem 6.1).
    Returns ``(R [n, n], log_sJ [n])``; the common factor ``exp(max log_s)`` is scaled out.
    """
    top = log_s.max()
    X = torch.exp(log_s - top)[:, None] * B
    R, S, _ = torch.linalg.svd(X)
    d = torch.sign(torch.diagonal(R))
    R = R * torch.where(d == 0, torch.ones_like(d), d)[None, :]
    return R, torch.log(S) + top


def fit_slopes(x, Y) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares lines ``Y[:, j] ~ a_j x + b_j``; x [m], Y [m, q] -> (a [q], b [q])."""
    x = np.asarray(x, dtype=float)
    Y = np.asarray(Y, dtype=float)
    squeeze = Y.ndim == 1
    Y = Y[:, None] if squeeze else Y
    X = np.stack([x, np.ones_like(x)], 1)
    coef, *_ = np.linalg.lstsq(X, Y, rcond=None)
    a, b = coef[0], coef[1]
    return (a[0], b[0]) if squeeze else (a, b)


def theorem61_sweep(rates: Sequence[float], Ls: Sequence[float], r: int, *, seed: int = 0,
                    B: Tensor | None = None) -> dict[str, np.ndarray]:
    """Theorem 6.1 / Remark 6.3 measured along ``L in Ls`` for ``s_i = exp(-rates_i L)``.

    Returns numpy arrays (``nL = len(Ls)``):

    * ``R`` [nL, n, n]: ``R_L`` (positive diagonal), ``log_s`` [nL, n], ``log_sJ`` [nL, n];
    * ``err_identity`` [nL]: ``||R_L^{r,r} - I||_F``;
    * ``err_T`` [nL]: ``||(S^{r,r})^{-1} R_L^{r,r} S^{r,r} - T_C||_F``;
    * ``err_Tinv`` [nL]: ``||S^{r,r} R_L^{r,r} (S^{r,r})^{-1} - T_C^{-T}||_F``;
    * ``err_sigma_sqrt`` [nL]: ``max_i |s_{J,i}/s_{A,i} - sqrt(Sigma_C,i)|`` (i <= r);
    * ``err_sigma_printed`` [nL]: ``max_i |s_{J,i}/s_{A,i} - Sigma_C,i|`` (Remark 6.3 as printed);
    * ``T_C`` [r, r], ``Sigma_C`` [r], ``C`` [n, n] (``C = B B^T``), ``Ls``, ``rates``;
    * ``pred_offdiag`` [nL, r, r]: first-order prediction of ``R_L^{r,r}`` off the diagonal,
      ``(T_C)_{ij} s_i/s_j`` for i > j and ``(T_C^{-1})_{ji} s_j/s_i`` for i < j.
    """
    c = np.asarray(rates, dtype=float)
    n = c.shape[0]
    if not 1 <= r <= n - 1:
        raise ValueError(f"r must be in [1, n-1] = [1, {n - 1}], got {r}")
    prod = synthetic_product(n, c.tolist(), 0.0, B=B, seed=seed)
    Bm = prod["B"]
    C = Bm @ Bm.T
    T, sig = unit_ldl(C[:r, :r])
    Tinv = torch.linalg.inv(T)
    eye = torch.eye(r, dtype=torch.float64)
    out: dict[str, list] = {k: [] for k in (
        "R", "log_s", "log_sJ", "err_identity", "err_T", "err_Tinv", "err_sigma_sqrt",
        "err_sigma_printed", "pred_offdiag")}
    for L in Ls:
        log_s = -torch.as_tensor(c) * float(L)
        R, log_sJ = overlap_scaled(log_s, Bm)
        Rr = R[:r, :r]
        ls = log_s[:r]
        ratio = torch.exp(ls[:, None] - ls[None, :])  # s_i / s_j
        P = Rr / ratio  # (S^-1 R S)_{ij} = R_ij s_j / s_i
        Q = Rr * ratio  # (S R S^-1)_{ij} = R_ij s_i / s_j
        quot = torch.exp(log_sJ[:r] - ls)
        low = torch.tril(torch.ones(r, r, dtype=torch.bool), -1)
        pred = torch.where(low, T * ratio, torch.zeros_like(T))
        pred = torch.where(low.T, Tinv.T * ratio.T, pred)
        out["R"].append(R)
        out["log_s"].append(log_s)
        out["log_sJ"].append(log_sJ)
        out["err_identity"].append(torch.linalg.matrix_norm(Rr - eye))
        out["err_T"].append(torch.linalg.matrix_norm(P - T))
        out["err_Tinv"].append(torch.linalg.matrix_norm(Q - Tinv.T))
        out["err_sigma_sqrt"].append((quot - torch.sqrt(sig)).abs().max())
        out["err_sigma_printed"].append((quot - sig).abs().max())
        out["pred_offdiag"].append(pred)
    res = {k: torch.stack(v).numpy() for k, v in out.items()}
    res.update(T_C=T.numpy(), Sigma_C=sig.numpy(), C=C.numpy(), Ls=np.asarray(Ls, float),
               rates=c)
    return res


def cluster_limit(log_s_block: Tensor, C_block: Tensor) -> Tensor:
    """Remark 6.2: limit of the cluster's block of ``R_L`` when the cluster's ratios are fixed.

    For a cluster ``s_a..s_b`` with fixed ratios ``K = diag(s_a..s_b)/s_a`` and separation
    from everything else, the cluster block of ``R_L`` tends to the eigenvector matrix of
    ``K C^{block} K`` (the Schur complement of the larger singular directions in C,
    restricted to the cluster), ordered by decreasing eigenvalue, signs: positive diagonal.
    """
    K = torch.exp(log_s_block - log_s_block.max())
    M = K[:, None] * C_block * K[None, :]
    evals, Q = torch.linalg.eigh(M)
    Q = Q.flip(-1)
    d = torch.sign(torch.diagonal(Q))
    return Q * torch.where(d == 0, torch.ones_like(d), d)[None, :]


def cluster_sweep(rates: Sequence[float], offsets: Sequence[float], Ls: Sequence[float],
                  cluster: tuple[int, int], r: int, *, seed: int = 0) -> dict[str, np.ndarray]:
    """Remark 6.2 measured: ``s_i = exp(-rates_i L + offsets_i)``; ``cluster = (a, b)`` is a
    0-based half-open index range whose rates are equal (fixed ratios inside the cluster).

    Returns ``R`` [nL, n, n], ``limit`` [r, r] (block-diagonal: the cluster block from
    :func:`cluster_limit`, identity elsewhere), ``err_limit`` [nL] = ``||R^{r,r} - limit||_F``,
    ``err_identity`` [nL] = ``||R^{r,r} - I||_F``, ``offblock`` [nL] (largest entry of
    ``R^{r,r}`` outside the diagonal blocks) and ``Ls``.
    """
    c = np.asarray(rates, dtype=float)
    off = np.asarray(offsets, dtype=float)
    n = c.shape[0]
    a, b = cluster
    if not (0 <= a < b <= r <= n - 1):
        raise ValueError(f"need 0 <= a < b <= r <= n-1, got cluster={cluster}, r={r}, n={n}")
    if not np.allclose(c[a:b], c[a]):
        raise ValueError("rates inside the cluster must be equal")
    Bm = synthetic_product(n, np.sort(c).tolist(), 0.0, seed=seed)["B"]
    C = Bm @ Bm.T
    # Schur complement of the directions above the cluster: what the cluster "sees"
    if a > 0:
        Cs = C[a:b, a:b] - C[a:b, :a] @ torch.linalg.solve(C[:a, :a], C[:a, a:b])
    else:
        Cs = C[a:b, a:b]
    out: dict[str, list] = {k: [] for k in ("R", "err_limit", "err_identity", "offblock")}
    limit = torch.eye(r, dtype=torch.float64)
    blockmask = torch.eye(r, dtype=torch.bool)
    blockmask[a:b, a:b] = True
    for L in Ls:
        log_s = -torch.as_tensor(c) * float(L) + torch.as_tensor(off)
        if bool((log_s[1:] > log_s[:-1] + 1e-12).any()):
            raise ValueError(f"singular values not sorted at L={L}; adjust rates/offsets")
        R, _ = overlap_scaled(log_s, Bm)
        limit[a:b, a:b] = cluster_limit(log_s[a:b], Cs)
        Rr = R[:r, :r]
        out["R"].append(R)
        out["err_limit"].append(torch.linalg.matrix_norm(Rr - limit))
        out["err_identity"].append(torch.linalg.matrix_norm(Rr - torch.eye(r, dtype=R.dtype)))
        out["offblock"].append(Rr.abs().where(~blockmask, torch.zeros_like(Rr)).max())
    res = {k: torch.stack(v).numpy() for k, v in out.items()}
    res.update(limit=limit.numpy(), Ls=np.asarray(Ls, float))
    return res


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
