"""Singular values of graded triangular factors ``T = diag(exp(a)) N``, relatively accurate.

The QR accumulation of a deep product (:mod:`fgln.products.accumulator`) keeps its triangular factor
as log row scales ``a`` and rows ``N`` of unit norm; ``exp(a)`` may span thousands of orders
of magnitude. Since ``sv(T) = sv(R1 diag(exp(a)))`` where ``N^T = Q1 R1`` (QR is equivariant
under column scaling), the singular values come from the column-graded triangle
``R1 diag(exp(a))``, decomposed in overlapping windows of indices whose scales lie within
``exp(18)`` of the window top. A window accepts only indices at least ``exp(9)`` away from the
neglected rows above and columns below it, so the neglected couplings perturb the accepted
values by ``O(exp(-18))`` (Schur complement of a column-graded triangle).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..base.validation import check_int

Tensor = torch.Tensor

__all__ = ["WINDOW", "HALF", "GRAM_SPREAD", "window_plan", "needed_rows", "graded_log_svdvals",
           "graded_log_svdvals_batched", "gram_log_svdvals"]

WINDOW = 18.0  # float64 resolves singular values within exp(18) of the window top to ~1e-8
HALF = 9.0  # deflation margin: couplings across it perturb by exp(-2 * 9) ~ 1.5e-8
#: Largest ``log s_1 - log s_k`` (nats) at which :func:`gram_log_svdvals` accepts its values:
#: their relative error is then at most about ``m eps exp(2 GRAM_SPREAD)`` (4e-11 for m = 128).
GRAM_SPREAD = 4.0


def window_plan(a: np.ndarray, k: int) -> list[tuple[int, int, int, int, float]]:
    """Windows ``(s, e, take_from, take_to, top)`` covering the top ``k`` of ``r`` values.

    ``a`` [r]: finite log row scales. Block ``[s, e)`` of the column-graded triangle is
    decomposed with its columns scaled by ``exp(a - top)``; its sorted log-singular values
    at positions ``[take_from, take_to)`` are accepted.

    Parameters
    ----------
    a : numpy.ndarray
        Finite log row scales [r], roughly non-increasing.
    k : int
        How many of the largest values the windows must cover (<= r).

    Returns
    -------
    plan : list of tuple of (int, int, int, int, float)
        One ``(s, e, take_from, take_to, top)`` per window, from the top of the spectrum down:
        the block ``[s, e)``, the positions ``[take_from, take_to)`` of its sorted values that
        are accepted, and the log scale ``top`` its columns are divided by.
    """
    r = a.shape[0]
    env = np.minimum.accumulate(a)  # non-increasing envelope

    def first_below(thr: float, start: int) -> int:
        # first index i >= start with env[i] < thr (env is non-increasing), else r
        return start + int(np.searchsorted(-env[start:], -thr, side="right"))

    plan = []
    s, acc = 0, 0  # window start, first not-yet-accepted index
    while acc < k:
        hi = float(env[s])
        acc_end = first_below(hi - WINDOW, s)
        e = r if acc_end == r else first_below(hi - WINDOW - HALF, acc_end)
        take_from, take_to = acc - s, min(acc_end, k) - s
        plan.append((s, e, take_from, take_to, float(a[s:e].max())))
        acc = max(acc, min(acc_end, k))
        if acc >= k:
            break
        s = max(first_below(hi - HALF, s + 1), s + 1)
    return plan


def _windowed(a: Tensor, R1: Tensor, rank: Tensor, k: int, out: Tensor) -> None:
    """Windowed SVDs of many graded triangles at once, writing into ``out`` [b, k].

    ``a`` [b, n] (finite on the first ``rank`` entries), ``R1`` [b, n, n]. The windows of all
    matrices with the same window index are decomposed in one batched SVD (blocks padded
    with zeros, whose extra singular values are zeros at the end of each sorted list).
    """
    a_np = a.cpu().numpy()
    plans = [window_plan(a_np[i, : int(rank[i])], min(k, int(rank[i]))) for i in range(len(a_np))]
    dev = a.device
    for w in range(max((len(p) for p in plans), default=0)):
        rows = [(i, p[w]) for i, p in enumerate(plans) if len(p) > w and p[w][3] > p[w][2]]
        if not rows:
            continue
        size = max(e - s for _, (s, e, *_rest) in rows)
        bi = torch.tensor([i for i, _ in rows], device=dev)
        st = torch.tensor([p[0] for _, p in rows], device=dev)
        ln = torch.tensor([p[1] - p[0] for _, p in rows], device=dev)
        top = torch.tensor([p[4] for _, p in rows], dtype=a.dtype, device=dev)
        ar = torch.arange(size, device=dev)
        idx = (st[:, None] + ar[None, :]).clamp(max=a.shape[1] - 1)  # [m, size]
        valid = ar[None, :] < ln[:, None]
        block = R1[bi[:, None, None], idx[:, :, None], idx[:, None, :]]
        scale = torch.where(valid, torch.exp(a[bi[:, None], idx] - top[:, None]),
                            torch.zeros_like(top[:, None]))
        block = block * scale[:, None, :] * valid[:, :, None].to(a.dtype)
        lsv = torch.log(torch.linalg.svdvals(block)) + top[:, None]
        for j, (i, (s, _, take_from, take_to, _)) in enumerate(rows):
            acc = s + take_from
            out[i, acc : acc + take_to - take_from] = lsv[j, take_from:take_to]


def _envelope(a: Tensor, rank: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Top scale, non-increasing envelope, scale of the last wanted value and the fast-path
    mask of :func:`graded_log_svdvals_batched` (one definition for it and
    :func:`needed_rows`)."""
    finite = torch.isfinite(a)
    a0 = torch.where(finite, a, torch.full_like(a, -math.inf))
    top = a0.max(-1).values
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    env = torch.cummin(torch.where(finite, a, top[:, None] - 1e300), -1).values
    kk = torch.minimum(rank, torch.full_like(rank, k)).clamp(1, a.shape[1])
    kth = env.gather(1, (kk - 1)[:, None]).squeeze(1)  # scale of the last wanted value
    return top, env, kth, (top - kth) <= WINDOW


def needed_rows(a: Tensor, rank: Tensor, k: int) -> int:
    """How many leading rows of a batch of graded triangles the top ``k`` values read.

    :func:`graded_log_svdvals_batched` reads the rows whose scale lies within ``HALF`` of the
    ``k``-th (one window), or within ``WINDOW + HALF`` where it needs several windows; the
    rows below are neglected there. So the triangles may be cut to the returned number of
    leading rows beforehand, with the same result (the QR of their leading rows is the
    leading block of the whole QR).

    Parameters
    ----------
    a : Tensor
        Log scales [b, r] (``-inf`` past ``rank``).
    rank : Tensor
        Number of finite scales of each matrix [b] (int).
    k : int
        How many values will be read (``1 <= k <= r``).

    Returns
    -------
    rows : int
        The largest number of leading rows that one matrix of the batch reads, in [k, r].
    """
    _, env, kth, fast = _envelope(a, rank, k)
    margin = torch.where(fast, torch.full_like(kth, HALF), torch.full_like(kth, WINDOW + HALF))
    return int((env >= (kth - margin)[:, None]).sum(-1).max().clamp_min(k))


def graded_log_svdvals_batched(a: Tensor, R1: Tensor, rank: Tensor, k: int) -> Tensor:
    """Top-``k`` log-singular values of ``R1 diag(exp(a))`` for a batch, [b, k], largest first.

    ``a`` [b, n] log scales (``-inf`` past ``rank``), ``R1`` [b, n, n] upper triangular,
    ``rank`` [b]. Values beyond the rank are ``-inf``. Matrices whose top-k scales lie within
    one window take one SVD of their leading rows; the others go through the windows.

    Parameters
    ----------
    a : Tensor
        Log column scales [b, n]; ``-inf`` past each matrix's rank.
    R1 : Tensor
        Upper triangular factors [b, n, n] with columns of order one.
    rank : Tensor
        Number of finite scales of each matrix [b] (int).
    k : int
        How many values to return per matrix.

    Returns
    -------
    log_s : Tensor
        Top-``k`` log-singular values of ``R1 diag(exp(a))`` [b, k], largest first; ``-inf``
        beyond the rank.
    """
    b, _ = a.shape
    a0 = torch.where(torch.isfinite(a), a, torch.full_like(a, -math.inf))
    top, env, kth, fast = _envelope(a, rank, k)
    # the top-k values only need the leading rows whose scale is above kth - 9: the
    # neglected columns couple to them at O(exp(-9)), i.e. O(exp(-18)) on the values
    cut = int(((env >= (kth - HALF)[:, None]) & fast[:, None]).sum(-1).max().clamp_min(k))
    out = torch.full((b, k), -math.inf, dtype=a.dtype, device=a.device)
    if bool(fast.any()):
        idx = fast.nonzero().squeeze(-1)
        scale = torch.exp(a0[idx, :cut] - top[idx, None])  # exp(-inf) = 0 for dead rows
        sv = torch.linalg.svdvals(R1[idx, :cut, :cut] * scale[:, None, :])[:, :k]
        vals = torch.log(sv) + top[idx, None]
        # exact zeros: singular values beyond the rank are -inf, never rounding noise
        ar = torch.arange(k, device=a.device)
        vals = torch.where(ar[None, :] < rank[idx, None], vals, torch.full_like(vals, -math.inf))
        out[idx] = vals
    slow = (~fast).nonzero().squeeze(-1)
    if len(slow):
        sub = torch.full((len(slow), k), -math.inf, dtype=a.dtype, device=a.device)
        _windowed(a[slow], R1[slow], rank[slow], k, sub)
        out[slow] = sub
    return out


def gram_log_svdvals(a: Tensor, N: Tensor, rank: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Top-``k`` log-singular values of ``diag(exp(a)) N`` from the eigenvalues of its Gram
    matrix, for the matrices of a batch whose top ``k`` values are close together.

    The symmetric eigensolver returns the eigenvalues of ``G = A A^T`` (``A = diag(exp(a -
    top)) N``, ``top`` the largest scale) to an absolute error of order ``m eps lambda_1``,
    so ``s_k^2 = lambda_k`` is relatively accurate when ``lambda_1 / lambda_k`` is moderate.
    A matrix is accepted (``ok``) when its computed ``log s_1 - log s_k`` (over the values
    within its rank) is at most :data:`GRAM_SPREAD`, which bounds that error a posteriori;
    the others need :func:`graded_log_svdvals_batched`. Half the cost of a QR of ``N^T``
    followed by an SVD (the readout of a shallow product, whose top values are close).

    Parameters
    ----------
    a : Tensor
        Log row scales [b, m] (``-inf`` past each matrix's rank).
    N : Tensor
        Rows of order one [b, m, n].
    rank : Tensor
        Number of finite scales of each matrix [b] (int).
    k : int
        How many values to return per matrix (``1 <= k <= m``).

    Returns
    -------
    log_s : Tensor
        Top-``k`` log-singular values [b, k], largest first; ``-inf`` beyond the rank.
        Meaningful where ``ok``.
    ok : Tensor
        [b] bool: the values of that matrix are accepted.
    """
    top = torch.where(torch.isfinite(a), a, torch.full_like(a, -math.inf)).max(-1).values
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    A = torch.exp(a - top[:, None])[..., None] * N  # exp(-inf) = 0: dead rows vanish
    lam = torch.linalg.eigvalsh(A @ A.mT).flip(-1)[:, :k]  # largest first
    vals = 0.5 * torch.log(lam.clamp_min(0.0)) + top[:, None]
    ar = torch.arange(k, device=a.device)
    inside = ar[None, :] < rank[:, None]
    vals = torch.where(inside, vals, torch.full_like(vals, -math.inf))
    last = vals.gather(1, (rank.clamp(1, k) - 1)[:, None]).squeeze(1)
    ok = (rank <= 0) | ((vals[:, 0] - last) <= GRAM_SPREAD)
    return vals, ok


def graded_log_svdvals(a: Tensor, N: Tensor, k: int | None = None) -> Tensor:
    """Log-singular values of ``T = diag(exp(a)) N`` for one matrix, largest first.

    ``a``: [r] finite log row scales (roughly non-increasing), ``N``: [r, n] with r <= n and
    rows of order one. Returns the top ``k`` (default r) values, [k], accurate in the relative
    sense even when ``exp(a)`` spans thousands of orders of magnitude.

    Parameters
    ----------
    a : Tensor
        Finite log row scales [r].
    N : Tensor
        Rows of order one [r, n], r <= n.
    k : int or None
        How many values to return, in [1, r]; None: all r.

    Returns
    -------
    log_s : Tensor
        Log-singular values of ``diag(exp(a)) N`` [k], largest first.

    Raises
    ------
    ValueError
        If the shapes are not [r] and [r, n] with r <= n, or ``k`` lies outside [1, r].
    """
    if a.ndim != 1 or N.ndim != 2 or N.shape[0] != a.shape[0] or N.shape[0] > N.shape[1]:
        raise ValueError(f"need a [r] and N [r, n] with r <= n, got {tuple(a.shape)}, "
                         f"{tuple(N.shape)}")
    r = a.shape[0]
    if r == 0:
        return a.new_empty(0)
    k = r if k is None else check_int("k", k, 1, r)
    R1 = torch.linalg.qr(N.mT, mode="r")[1][:r, :r]
    rank = torch.tensor([r], device=a.device)
    return graded_log_svdvals_batched(a[None], R1[None], rank, k)[0]
