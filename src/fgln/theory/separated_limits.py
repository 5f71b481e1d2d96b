"""Theorem D.1 measured: the eigenpairs of ``X_L = S_L C S_L`` under spectral separation
(paper, Appendix D), every step of its proof (Lemmas D.4-D.7), and Theorem 6.1 on gated
products whose rank is below n.

``S_L = diag(s_{1,L}, ..., s_{n,L})`` is given by its logarithms ``log_s`` (``-inf`` for a
zero ``s_i``, which Theorem D.1 (i) allows); ``C`` is symmetric, possibly indefinite, with a
positive definite leading block ``C^{r,r}``. The entries of the eigenvectors of ``X_L`` and its
eigenvalues span many orders of magnitude (``e_j^T u_i ~ s_j / s_i``), far beyond what a float64
eigensolver resolves on the formed ``X_L``; :func:`separated_eigh` therefore decomposes it in
``mpmath`` at a precision set by the spread of ``log_s``, and returns float64 values that are
accurate entry by entry (relative to each entry). The limits are those of Theorem D.1: the
pivots ``l_i = det C^{i,i} / det C^{i-1,i-1}`` and the unit lower-triangular factor ``T_C`` of
``C^{r,r} = T_C diag(l) T_C^T``, and (our closed form of Remark D.3's constants) the first r
columns ``K`` of the unit lower-triangular factor after r steps of Gaussian elimination on C
(:func:`partial_ldl`).
"""
from __future__ import annotations

import math
from typing import Sequence

import mpmath
import numpy as np
import torch

from ..base.laws import LayerLaw
from ..base.results import Result
from ..base.validation import check_int
from ..products.sampling import network_layers, sample_network
from .exterior import compound, subsets

__all__ = ["partial_ldl", "separated_eigh", "separated_quantities", "separated_sweep",
           "lemma_d4_errors", "gated_alignment"]


def _symmetric(C) -> np.ndarray:
    C = np.asarray(C, dtype=float)
    if C.ndim != 2 or C.shape[0] != C.shape[1]:
        raise ValueError(f"C must be a square matrix [n, n], got shape {C.shape}")
    if not np.all(np.isfinite(C)):
        raise ValueError("C has non-finite entries")
    if not np.allclose(C, C.T, rtol=0, atol=1e-12 * max(1.0, float(np.abs(C).max()))):
        raise ValueError("C must be symmetric")
    return 0.5 * (C + C.T)


def partial_ldl(C, r: int) -> tuple[np.ndarray, np.ndarray]:
    """r steps of Gaussian elimination without pivoting on a symmetric C [n, n].

    ``C = K_full diag(l_1..l_r, Schur) K_full^T`` with ``K_full`` unit lower-triangular in its
    first r columns; returns those columns ``K`` [n, r] (``K[:r]`` is the factor ``T_C`` of
    Theorem D.1, ``C^{r,r} = T_C diag(l) T_C^T``) and the pivots ``l`` [r],
    ``l_i = det C^{i,i} / det C^{i-1,i-1}`` (Theorem D.1 (b)). ``K[j, i]`` for ``j >= r`` is our
    closed form of the constant ``K_{j,i}`` of Remark D.3.

    Parameters
    ----------
    C : array_like
        Symmetric [n, n] whose leading blocks ``C^{i,i}``, i <= r, are nonsingular.
    r : int
        Elimination steps, in [1, n].

    Returns
    -------
    K : numpy.ndarray
        [n, r], ``K[i, i] = 1`` and ``K[j, i] = 0`` for j < i.
    l : numpy.ndarray
        Pivots [r].

    Raises
    ------
    ValueError
        If C is not symmetric and finite, r is out of range, or a pivot vanishes.
    """
    C = _symmetric(C)
    n = C.shape[0]
    r = check_int("r", r, 1, n)
    W = C.copy()
    K = np.zeros((n, r))
    piv = np.zeros(r)
    for i in range(r):
        piv[i] = W[i, i]
        if abs(piv[i]) <= 1e-13 * max(1.0, float(np.abs(C).max())):
            raise ValueError(f"the leading block C^{{{i + 1},{i + 1}}} is singular")
        K[:, i] = W[:, i] / piv[i]
        W = W - piv[i] * np.outer(K[:, i], K[:, i])
    return K, piv


def separated_eigh(log_s, C, *, digits: int | None = None) -> Result:
    """Eigenpairs of ``X = S C S``, ``S = diag(exp(log_s))``, accurate entry by entry.

    ``X`` is formed and decomposed in mpmath with ``digits`` decimal digits (default: 30 more
    than the orders of magnitude spanned by ``X``), so that every eigenvector entry and every
    eigenvalue is returned with float64 relative accuracy however graded ``X`` is. Order: by
    decreasing ``|sigma|`` (the paper's ``|sigma_j| >= |sigma_{j+1}|``); signs:
    ``e_i^T u_i >= 0`` (Theorem D.1).

    Parameters
    ----------
    log_s : array_like
        ``log s_1 >= ... >= log s_n`` [n]; ``-inf`` for a zero ``s_i``.
    C : array_like
        Symmetric [n, n].
    digits : int or None
        Working precision (decimal digits); None chooses it.

    Returns
    -------
    result : Result
        ``sigma`` [n] (signed eigenvalues), ``U`` [n, n] (columns ``u_i``), ``digits``.

    Raises
    ------
    ValueError
        If shapes disagree, ``log_s`` is increasing somewhere or NaN, or C is not symmetric.
    """
    C = _symmetric(C)
    a = np.asarray(log_s, dtype=float)
    n = C.shape[0]
    if a.shape != (n,):
        raise ValueError(f"log_s must have length n={n}, got shape {a.shape}")
    if np.any(np.isnan(a)) or np.any(a == np.inf) or np.any(a[1:] > a[:-1]):
        raise ValueError("log_s must be non-increasing, finite or -inf (s_1 >= ... >= s_n >= 0)")
    fin = a[np.isfinite(a)]
    spread = 2 * float(fin.max() - fin.min()) / math.log(10) if fin.size else 0.0
    dps = int(digits) if digits is not None else 30 + int(math.ceil(spread))
    with mpmath.workdps(dps):
        s = [mpmath.exp(mpmath.mpf(float(x))) if np.isfinite(x) else mpmath.mpf(0) for x in a]
        X = mpmath.matrix(n, n)
        for i in range(n):
            for j in range(n):
                X[i, j] = s[i] * mpmath.mpf(float(C[i, j])) * s[j]
        E, Q = mpmath.eigsy(X)
        sig = np.array([float(E[k]) for k in range(n)])
        U = np.array([[float(Q[i, k]) for k in range(n)] for i in range(n)])
    order = np.argsort(-np.abs(sig), kind="stable")
    sig, U = sig[order], U[:, order]
    sgn = np.where(np.diagonal(U) < 0, -1.0, 1.0)
    return Result(sigma=sig, U=U * sgn[None, :], digits=dps)


def separated_quantities(log_s, C, r: int) -> Result:
    """Every quantity of Theorem D.1 and of its proof at one ``S_L`` (finite ``log s_1..s_r``;
    later ``s_i`` may be zero).

    With ``X = U Sigma U^T`` from :func:`separated_eigh`, ``(T_C, l)`` and ``K`` from
    :func:`partial_ldl` and ``m`` the number of nonzero ``s_i``:

    * ``ratio_b`` [r]: ``sigma_i / s_i^2`` (Theorem D.1 (b)); ``prod_ratio`` [r]:
      ``prod_{k<=i} sigma_k / s_k^2`` (Lemma D.5); ``sep`` = ``|sigma_{r+1}| / sigma_r``;
    * ``dist_a`` [r]: ``||u_i - e_i||`` (Theorem D.1 (a));
    * ``scaled`` [r, r]: ``(S^{-1} U S)^{r,r}`` below the diagonal and on it,
      ``(S U S^{-1})^{r,r}`` above it (Remark D.2: limits ``T_C`` and ``T_C^{-T}``);
      ``K_scaled`` [n - r, r]: ``e_j^T u_i s_i / s_j`` for ``j > r`` (0 where ``s_j = 0``);
    * ``wedge_dist`` [r]: ``||wedge^i X / eta_i - E_{I_0,I_0}||_F`` with
      ``eta_i = det C^{i,i} prod_{k<=i} s_k^2`` (Lemma D.5), from ``wedge^i S wedge^i C wedge^i S``;
    * on the nonzero block (m x m), ``P = S^{-1} U S``: ``eq2_product`` [m, m] =
      ``P D P^T`` with ``D = S^{-1} Sigma S^{-1}`` (equation (2): it is ``C^{m,m}``),
      ``eq2_swapped`` = ``P^T D P``, ``eq2_residual`` = ``max|P D P^T - C^{m,m}|``; ``eps_max``
      (the block ``P^{r, r+1..m}``), ``R_max`` (strictly upper part of ``P^{r,r}``),
      ``Q_err`` = ``max|Q - T_C|`` (Lemma D.6), ``inverse_gap`` =
      ``max|(P^{r,r})^{-1} - (P^{-1})^{r,r}|``;
    * Lemma D.7: ``d7_core`` [r, r] = ``P^{r,r} D_1 P^{r,r T}``, ``d7_term`` [r, r] =
      ``sum_{k>r} sigma_k/(s_i s_j) U_{ik} U_{jk}`` (all k, zero
      ``s_k`` included), ``d7_residual`` = ``max|C^{r,r} - P^{r,r} D_1 P^{r,r T} - d7_term|``,
      ``d7_bound`` = ``(|sigma_{r+1}| / sigma_r)(sigma_r / s_r^2)``, ``d7_no_term`` =
      ``max|C^{r,r} - P^{r,r} D_1 P^{r,r T}|``.

    Parameters
    ----------
    log_s : array_like
        [n], non-increasing, ``log s_1..log s_r`` finite.
    C : array_like
        Symmetric [n, n], ``C^{r,r}`` positive definite.
    r : int
        The separated block, in [1, n-1].

    Returns
    -------
    result : Result
        The fields above, and ``sigma``, ``U``, ``T_C``, ``l``, ``K`` and the working
        ``digits``.

    Raises
    ------
    ValueError
        If ``r`` is out of range, ``log s_r`` is not finite or ``C^{r,r}`` is not positive
        definite.
    """
    C = _symmetric(C)
    n = C.shape[0]
    r = check_int("r", r, 1, n - 1)
    a = np.asarray(log_s, dtype=float)
    if not np.isfinite(a[r - 1]):
        raise ValueError(f"s_1..s_r must be positive (log_s[:r] finite), r={r}")
    K, ell = partial_ldl(C, r)
    if np.any(ell <= 0):
        raise ValueError("C^{r,r} must be positive definite")
    T = K[:r]
    eig = separated_eigh(a, C)
    sig, U = eig.sigma, eig.U
    m = int(np.isfinite(a).sum())
    am = a[:m]
    ratio = np.exp(am[:, None] - am[None, :])              # s_i / s_j on the nonzero block
    P = U[:m, :m] / ratio                                   # (S^-1 U S)_{ij} = U_ij s_j / s_i
    D = sig[:m] * np.exp(-2 * am)
    Pinv = U[:m, :m].T / ratio                              # (S^-1 U^T S) = P^{-1}
    low = np.tril(np.ones((r, r), bool))
    scaled = np.where(low, P[:r, :r], (U[:r, :r] * ratio[:r, :r]))
    K_scaled = np.zeros((n - r, r))
    K_scaled[: m - r] = U[r:m, :r] * np.exp(a[:r][None, :] - am[r:][:, None])
    Pr = P[:r, :r]
    Q = np.tril(Pr)
    # Lemma D.7's term from its sum formula, valid with zero s_k too
    w = sig[r:][None, None, :] * U[:r, r:][:, None, :] * U[:r, r:][None, :, :]
    d7_term = (w.sum(-1) * np.exp(-a[:r][:, None] - a[:r][None, :]))
    core = Pr @ np.diag(D[:r]) @ Pr.T
    # Lemma D.5: wedge^i X / eta_i from wedge^i S wedge^i C wedge^i S (no graded minors)
    Ct = torch.as_tensor(C)
    wd = np.zeros(r)
    for i in range(1, r + 1):
        Ci = compound(Ct, i).numpy()
        idx = subsets(n, i).numpy()
        logs_I = np.array([a[I].sum() for I in idx])
        g = np.exp(logs_I - a[:i].sum())                    # prod s_I / prod s_{I_0}
        M = g[:, None] * Ci * g[None, :] / Ci[0, 0]
        M[0, 0] -= 1.0
        wd[i - 1] = float(np.sqrt((M ** 2).sum()))
    return Result(
        sigma=sig, U=U, T_C=T, l=ell, K=K, digits=eig.digits,
        ratio_b=sig[:r] * np.exp(-2 * a[:r]),
        prod_ratio=np.cumprod(sig[:r] * np.exp(-2 * a[:r])),
        sep=abs(sig[r]) / sig[r - 1],
        dist_a=np.linalg.norm(U[:, :r] - np.eye(n)[:, :r], axis=0),
        scaled=scaled, K_scaled=K_scaled, wedge_dist=wd,
        eq2_product=P @ np.diag(D) @ P.T, eq2_swapped=P.T @ np.diag(D) @ P,
        eq2_residual=float(np.abs(P @ np.diag(D) @ P.T - C[:m, :m]).max()),
        eps_max=float(np.abs(P[:r, r:m]).max()) if m > r else 0.0,
        R_max=float(np.abs(np.triu(Pr, 1)).max()) if r > 1 else 0.0,
        Q_err=float(np.abs(Q - T).max()),
        inverse_gap=float(np.abs(np.linalg.inv(Pr) - Pinv[:r, :r]).max()),
        d7_term=d7_term, d7_core=core,
        d7_residual=float(np.abs(C[:r, :r] - core - d7_term).max()),
        d7_no_term=float(np.abs(C[:r, :r] - core).max()),
        d7_bound=abs(sig[r]) / sig[r - 1] * sig[r - 1] * math.exp(-2 * a[r - 1]),
    )



def separated_sweep(rates: Sequence[float], depths: Sequence[float], C, r: int, *,
                    zeros: int = 0) -> Result:
    """:func:`separated_quantities` along ``s_{i,L} = exp(-rates_i L)``, stacked over depths.

    Parameters
    ----------
    rates : sequence of float
        ``c_1 <= ... <= c_n`` [n].
    depths : sequence of float
        The depths L [nL], > 0.
    C : array_like
        Symmetric [n, n] with ``C^{r,r}`` positive definite.
    r : int
        The separated block, in [1, n-1].
    zeros : int
        How many of the last ``s_i`` are exactly 0 at every depth (Theorem D.1 (i)), at most
        ``n - r``.

    Returns
    -------
    result : Result
        Every field of :func:`separated_quantities` with a leading depth axis [nL, ...]
        (``T_C``, ``l``, ``K`` once), ``log_s`` [nL, n], ``depths``, ``rates``.

    Raises
    ------
    ValueError
        If ``rates`` is not non-decreasing of length n, or ``zeros`` is out of range.
    """
    c = np.asarray(rates, dtype=float)
    C = _symmetric(C)
    n = C.shape[0]
    if c.shape != (n,) or np.any(np.diff(c) < 0):
        raise ValueError(f"rates must be non-decreasing of length n={n}")
    zeros = check_int("zeros", zeros, 0, n - check_int("r", r, 1, n - 1))
    rows, logs = [], []
    for L in depths:
        a = -c * float(L)
        if zeros:
            a[n - zeros:] = -np.inf
        logs.append(a)
        rows.append(separated_quantities(a, C, r))
    out = {k: np.stack([np.asarray(q[k]) for q in rows]) for k in rows[0]
           if k not in ("T_C", "l", "K")}
    out.update(T_C=rows[0]["T_C"], l=rows[0]["l"], K=rows[0]["K"], log_s=np.stack(logs),
               depths=np.asarray(depths, float), rates=c)
    return Result(out)


def lemma_d4_errors(E, eps: Sequence[float]) -> Result:
    """Lemma D.4 measured on ``M = e_1 e_1^T + eps E``, E symmetric [n, n], for each eps.

    Parameters
    ----------
    E : array_like
        Symmetric perturbation [n, n].
    eps : sequence of float
        Perturbation sizes [m], > 0.

    Returns
    -------
    result : Result
        ``top`` [m] = ``|sigma - 1|`` (sigma the eigenvalue largest in absolute value),
        ``others`` [m] = largest ``|lambda|`` of the other eigenvalues, ``vector`` [m] =
        ``||u - e_1||`` (sign ``u_1 >= 0``), ``size`` [m] = ``||eps E||_2``, ``eps``.
    """
    E = _symmetric(E)
    n = E.shape[0]
    e1 = np.zeros((n, n))
    e1[0, 0] = 1.0
    top, others, vec, size = [], [], [], []
    for x in eps:
        lam, V = np.linalg.eigh(e1 + float(x) * E)
        k = int(np.argmax(np.abs(lam)))
        u = V[:, k] * (1.0 if V[0, k] >= 0 else -1.0)
        top.append(abs(lam[k] - 1.0))
        others.append(float(np.abs(np.delete(lam, k)).max()))
        vec.append(float(np.linalg.norm(u - np.eye(n)[0])))
        size.append(float(x) * float(np.linalg.norm(E, 2)))
    return Result(top=np.array(top), others=np.array(others), vector=np.array(vec),
                  size=np.array(size), eps=np.asarray(eps, float))


def gated_alignment(law: LayerLaw, L: int, ell: int, k: int, replicates: int, *,
                    seed: int = 0) -> Result:
    """Theorem 6.1 on gated products: ``J = A B`` with ``B = M_ell ... M_1`` fixed and
    ``A = M_d ... M_{ell+1}`` for ``d = ell+1..L`` (Section 6's partial products of one chain
    of ``law``'s layers, ``M = D W``).

    ``R = U_A^T U_J`` (signs: positive diagonal) is measured on its leading k x k block;
    the rank of each product is the smallest rank of its gates (almost surely).

    Parameters
    ----------
    law : LayerLaw
        The layers' law.
    L : int
        Depth of the chain.
    ell : int
        Layers in ``B``, in [1, L-1].
    k : int
        Size of the leading block (Theorem 6.1's r).
    replicates : int
        Independent chains.
    seed : int
        Start value of the random stream.

    Returns
    -------
    result : Result
        ``depths`` [L - ell] (layers in A), ``err_identity`` [replicates, L - ell]
        (``||R^{k,k} - I||_F``), ``log_s`` [replicates, L - ell, n] (log singular values of
        A), ``rank_A`` [replicates, L - ell], ``rank_B`` [replicates].
    """
    L = check_int("L", L, 2)
    ell = check_int("ell", ell, 1, L - 1)
    k = check_int("k", k, 1, law.n - 1)
    w, d = sample_network(law.product(L), replicates, seed=seed)
    M = network_layers(w, d)
    B = M[:, 0]
    for l in range(1, ell):
        B = M[:, l] @ B
    rank_g = d.sum(-1)                                           # [replicates, L]
    A = torch.eye(law.n, dtype=M.dtype).expand_as(B)
    errs, logs, ranks = [], [], []
    eye = torch.eye(k, dtype=M.dtype)
    for l in range(ell, L):
        A = M[:, l] @ A
        UA, sA, _ = torch.linalg.svd(A)
        UJ = torch.linalg.svd(A @ B)[0]
        R = UA[..., :k].mT @ UJ[..., :k]
        sgn = torch.where(torch.diagonal(R, dim1=-2, dim2=-1) < 0, -1.0, 1.0)
        R = R * sgn[..., None, :]
        errs.append(torch.linalg.matrix_norm(R - eye))
        logs.append(torch.log(sA))
        ranks.append(rank_g[:, ell:l + 1].min(-1).values)
    return Result(depths=np.arange(1, L - ell + 1, dtype=float),
                  err_identity=torch.stack(errs, 1).numpy(), log_s=torch.stack(logs, 1).numpy(),
                  rank_A=torch.stack(ranks, 1).numpy().astype(int),
                  rank_B=rank_g[:, :ell].min(-1).values.numpy().astype(int))
