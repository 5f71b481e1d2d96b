"""Synthetic checks of Theorem 6.1 and Remarks 6.2, 6.3 (alignment from separation).

Products ``J_L = A_L B`` with ``A_L = U S_L`` (U fixed Haar orthogonal, right singular
vectors the identity as in the theorem), prescribed log-singular values ``log s_{i,L} =
-c_i L`` and a fixed ``B``; the overlaps ``R_L = U_{A_L}^T U_{J_L}`` are computed from the SVD
of ``S_L B`` (never forming ``J_L``), so that every limit of the theorem can be measured
far into the separated regime.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..base.results import Result
from ..products.sampling import haar_orthogonal, make_generator

Tensor = torch.Tensor

__all__ = ["unit_ldl", "synthetic_product", "overlap_scaled", "theorem61_sweep",
           "theorem61_replicates", "cluster_limit", "cluster_sweep"]


# --------------------------------------------------------------------------------------
# synthetic checks of Theorem 6.1 and Remarks 6.2, 6.3
# --------------------------------------------------------------------------------------


def unit_ldl(C: Tensor) -> tuple[Tensor, Tensor]:
    """``C = T diag(sigma) T^T`` with T unit lower-triangular; returns ``(T, sigma)``.

    C [r, r] symmetric positive definite (Theorem D.1's "Cholesky" factorisation of
    ``C^{r,r}``): from the Cholesky factor ``C = G G^T``, ``T = G diag(G)^{-1}``,
    ``sigma = diag(G)^2`` (= det C^{i,i} / det C^{i-1,i-1}).

    Parameters
    ----------
    C : Tensor
        Symmetric positive definite [r, r].

    Returns
    -------
    T : Tensor
        Unit lower-triangular [r, r].
    sigma : Tensor
        [r], positive.
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

    Parameters
    ----------
    n : int
        Size.
    rates : sequence of float
        ``c_1 <= ... <= c_n``, length n.
    L : float
        Depth (any real; 0 gives ``S_L = I``).
    B : Tensor or None
        Fixed right factor [n, n]; None draws a standard Gaussian one.
    seed : int
        Start value of the random stream (>= 0).

    Returns
    -------
    result : dict of str to Tensor
        ``U`` [n, n], ``log_s`` [n], ``B`` [n, n], ``A`` [n, n], ``J`` [n, n].

    Raises
    ------
    ValueError
        If ``rates`` does not have length n or is not non-decreasing.
    """
    c = torch.as_tensor(rates, dtype=torch.float64)
    if c.shape != (n,):
        raise ValueError(f"rates must have length n={n}, got shape {tuple(c.shape)}")
    if bool((c[1:] < c[:-1]).any()):
        raise ValueError("rates must be non-decreasing (singular values sorted)")
    gen = make_generator(seed)
    U = haar_orthogonal(n, seed=gen)
    if B is None:
        B = torch.randn(n, n, generator=gen, dtype=torch.float64)
    log_s = -c * float(L)
    A = U * torch.exp(log_s)[None, :]
    return {"U": U, "log_s": log_s, "B": B, "A": A, "J": A @ B}


def overlap_scaled(log_s: Tensor, B: Tensor) -> tuple[Tensor, Tensor]:
    """``R_L = U_{A_L}^T U_{J_L}`` and ``log s(J_L)``, for ``A_L = U diag(exp(log_s))`` and
    ``J_L = A_L B``.

    Since ``U^T J_L = S_L B``, ``R_L`` is the left singular basis of ``S_L B``, whatever U
    is; we never form ``J_L``. Rows of ``S_L B`` are graded (sorted decreasing), for which
    LAPACK's SVD is accurate entrywise, down to entries of 1e-30 and below (checked in the
    tests against 80-digit arithmetic). Signs: positive diagonal of ``R_L`` (Theorem 6.1).
    Returns ``(R [n, n], log_sJ [n])``; the common factor ``exp(max log_s)`` is scaled out.

    Parameters
    ----------
    log_s : Tensor
        Log-singular values of ``A_L`` [n], decreasing.
    B : Tensor
        Right factor [n, n].

    Returns
    -------
    R : Tensor
        ``R_L`` [n, n], positive diagonal.
    log_sJ : Tensor
        Log-singular values of ``J_L`` [n].
    """
    top = log_s.max()
    X = torch.exp(log_s - top)[:, None] * B
    R, S, _ = torch.linalg.svd(X)
    d = torch.sign(torch.diagonal(R))
    R = R * torch.where(d == 0, torch.ones_like(d), d)[None, :]
    return R, torch.log(S) + top


def theorem61_sweep(rates: Sequence[float], depths: Sequence[float], k: int, *,
                    B: Tensor | None = None, seed: int = 0) -> Result:
    """Theorem 6.1 / Remark 6.3 measured along ``L in depths`` for ``s_i = exp(-rates_i L)``.

    The theorem's separated block has size ``k`` (the paper writes it r, the letter the
    package keeps for Definition 5.2's minimum rank); below, ``R^{k,k}`` is its leading block.
    Returns numpy arrays (``nL = len(depths)``):

    * ``R`` [nL, n, n]: ``R_L`` (positive diagonal), ``log_s`` [nL, n], ``log_sJ`` [nL, n];
    * ``err_identity`` [nL]: ``||R_L^{r,r} - I||_F``;
    * ``err_T`` [nL]: ``||(S^{r,r})^{-1} R_L^{r,r} S^{r,r} - T_C||_F``;
    * ``err_Tinv`` [nL]: ``||S^{r,r} R_L^{r,r} (S^{r,r})^{-1} - T_C^{-T}||_F``;
    * ``err_sigma_sqrt`` [nL]: ``max_i |s_{J,i}/s_{A,i} - sqrt(Sigma_C,i)|`` (i <= r);
    * ``err_sigma_printed`` [nL]: ``max_i |s_{J,i}/s_{A,i} - Sigma_C,i|`` (Remark 6.3 as printed);
    * ``T_C`` [r, r], ``Sigma_C`` [r], ``C`` [n, n] (``C = B B^T``), ``Ls``, ``rates``;
    * ``pred_offdiag`` [nL, r, r]: first-order prediction of ``R_L^{r,r}`` off the diagonal,
      ``(T_C)_{ij} s_i/s_j`` for i > j and ``(T_C^{-1})_{ji} s_j/s_i`` for i < j.

    Parameters
    ----------
    rates : sequence of float
        ``c_1 <= ... <= c_n``.
    depths : sequence of float
        Depths L at which to measure.
    k : int
        Size of the leading block (in [1, n-1]).
    B : Tensor or None
        Fixed right factor [n, n]; None draws one from ``seed``.
    seed : int
        Start value of the random stream (>= 0).

    Returns
    -------
    result : dict of str to numpy.ndarray
        The entries listed above.

    Raises
    ------
    ValueError
        If ``k`` lies outside [1, n-1] or ``rates`` is not non-decreasing.
    """
    c = np.asarray(rates, dtype=float)
    n = c.shape[0]
    r, Ls = k, depths
    if not 1 <= r <= n - 1:
        raise ValueError(f"k must be in [1, n-1] = [1, {n - 1}], got {k}")
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
    return Result(res)


def cluster_limit(log_s_block: Tensor, C_block: Tensor) -> Tensor:
    """Remark 6.2: limit of the cluster's block of ``R_L`` when the cluster's ratios are fixed.

    For a cluster ``s_a..s_b`` with fixed ratios ``K = diag(s_a..s_b)/s_a`` and separation
    from everything else, the cluster block of ``R_L`` tends to the eigenvector matrix of
    ``K C^{block} K`` (the Schur complement of the larger singular directions in C,
    restricted to the cluster), ordered by decreasing eigenvalue, signs: positive diagonal.

    Parameters
    ----------
    log_s_block : Tensor
        Log-singular values of the cluster [m].
    C_block : Tensor
        The cluster's block of the Schur complement of C [m, m].

    Returns
    -------
    limit : Tensor
        Eigenvector matrix [m, m], columns by decreasing eigenvalue, positive diagonal.
    """
    K = torch.exp(log_s_block - log_s_block.max())
    M = K[:, None] * C_block * K[None, :]
    evals, Q = torch.linalg.eigh(M)
    Q = Q.flip(-1)
    d = torch.sign(torch.diagonal(Q))
    return Q * torch.where(d == 0, torch.ones_like(d), d)[None, :]


def cluster_sweep(rates: Sequence[float], offsets: Sequence[float], depths: Sequence[float],
                  cluster: tuple[int, int], k: int, *, seed: int = 0) -> Result:
    """Remark 6.2 measured: ``s_i = exp(-rates_i L + offsets_i)``; ``cluster = (a, b)`` is a
    0-based half-open index range whose rates are equal (fixed ratios inside the cluster).

    Returns ``R`` [nL, n, n], ``limit`` [r, r] (block-diagonal: the cluster block from
    :func:`cluster_limit`, identity elsewhere), ``err_limit`` [nL] = ``||R^{r,r} - limit||_F``,
    ``err_identity`` [nL] = ``||R^{r,r} - I||_F``, ``offblock`` [nL] (largest entry of
    ``R^{r,r}`` outside the diagonal blocks) and ``Ls``.

    Parameters
    ----------
    rates : sequence of float
        ``c_1..c_n`` (sorted by the caller so that the singular values decrease).
    offsets : sequence of float
        Log offsets of the singular values [n] (the ratios inside the cluster).
    depths : sequence of float
        Depths L at which to measure.
    cluster : tuple of int
        ``(a, b)``, with ``0 <= a < b <= k``.
    k : int
        Size of the leading block (<= n-1).
    seed : int
        Start value of the random stream (>= 0).

    Returns
    -------
    result : dict of str to numpy.ndarray
        The entries listed above.

    Raises
    ------
    ValueError
        If the cluster or ``r`` is out of range, the cluster's rates differ, or the singular
        values are not sorted at some depth.
    """
    c = np.asarray(rates, dtype=float)
    off = np.asarray(offsets, dtype=float)
    n = c.shape[0]
    a, b = cluster
    r, Ls = k, depths
    if not (0 <= a < b <= r <= n - 1):
        raise ValueError(f"need 0 <= a < b <= k <= n-1, got cluster={cluster}, k={k}, n={n}")
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
    return Result(res)


def theorem61_replicates(rates: Sequence[float], depths: Sequence[float], k: int,
                         replicates: int, *, dependent_rows: bool = False, seed: int = 0,
                         ) -> Result:
    """Theorem 6.1 over independent right factors: one Gaussian ``B`` per replicate.

    Replicate ``s`` draws ``B`` from ``seed + s`` (as :func:`theorem61_sweep` does) and
    measures ``R_L`` along ``depths``. With ``dependent_rows``, the second row of each ``B`` is
    replaced by twice its first (the first ``r`` rows dependent, the first ``r`` columns still
    independent: the printed condition (ii) of Theorem 6.1 holds, the one its proof uses
    does not).

    Parameters
    ----------
    rates : sequence of float
        ``c_1 <= ... <= c_n``.
    depths : sequence of float
        Depths L at which to measure.
    k : int
        Size of the leading block (in [1, n-1]).
    replicates : int
        Number of independent ``B`` (>= 1).
    dependent_rows : bool
        Make the second row of every ``B`` twice its first.
    seed : int
        First seed of the replicates (>= 0).

    Returns
    -------
    result : dict of str to numpy.ndarray
        ``err_identity`` [replicates, nL]: ``||R_L^{r,r} - I||_F``; ``log_abs_R``
        [replicates, nL, r, r]: ``log |R_L^{r,r}|`` entrywise; ``Ls`` [nL].

    Raises
    ------
    ValueError
        If ``replicates < 1`` (other arguments as in :func:`theorem61_sweep`).
    """
    if replicates < 1:
        raise ValueError(f"replicates must be >= 1, got {replicates}")
    r, Ls = k, depths
    c = np.asarray(rates, dtype=float)
    n = c.shape[0]
    errs, logs = [], []
    for s in range(replicates):
        B = synthetic_product(n, c.tolist(), 0.0, seed=seed + s)["B"]
        if dependent_rows:
            B = B.clone()
            B[1] = 2 * B[0]
        eye = torch.eye(r, dtype=torch.float64)
        e_s, l_s = [], []
        for L in Ls:
            R, _ = overlap_scaled(-torch.as_tensor(c) * float(L), B)
            e_s.append(float(torch.linalg.matrix_norm(R[:r, :r] - eye)))
            l_s.append(torch.log(R[:r, :r].abs()).numpy())
        errs.append(np.array(e_s))
        logs.append(np.stack(l_s))
    return Result({"err_identity": np.stack(errs), "log_abs_R": np.stack(logs),
                   "Ls": np.asarray(Ls, dtype=float)})
