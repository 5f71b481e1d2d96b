"""Gated random products and their log-singular values.

Models (paper, Definitions 4.1, 5.1, 5.2):

* a *layer* is ``M_l = D_l W_l`` with ``W_l`` a sigma-Ginibre matrix (i.i.d. N(0, sigma^2)
  entries) and ``D_l`` a p-gate (diagonal, i.i.d. Bernoulli(p) entries), optionally an
  (r, p)-gate (a p-gate resampled until its rank is at least r);
* Section 5 convention: ``J_L = D_L W_L ... D_1 W_1`` (every layer gated);
* Definition 4.1 (FGLN) convention: ``J = W_L D_{L-1} ... D_1 W_1`` (last gate is I).

The log-spectrum of a product is accumulated with Householder QR, one layer (or one
small chunk of layers) at a time, keeping the triangular factor in log-scaled form
``T = diag(exp(a)) N`` (``N`` with unit rows). Nothing of size ``exp(L)`` is ever formed,
so depths of 10,000 and more neither overflow nor underflow. Rank drops (exact zero
singular values created by gates) are detected layer by layer and reported as ``-inf``.
The final singular values of the graded triangular factor are obtained with a windowed
SVD (see :func:`graded_log_svdvals`) that is accurate in the *relative* sense for every
singular value, however small.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch

from .validation import check_int as _check_int
from .validation import check_p, check_sigma

Tensor = torch.Tensor

__all__ = [
    "make_generator",
    "sample_network",
    "network_layers",
    "sample_layers",
    "iter_layers",
    "log_singular_values",
    "log_spectra_by_depth",
    "stream_log_spectra",
    "graded_log_svdvals",
    "prefix_suffix_products",
    "network_partial_products",
    "SpectrumAccumulator",
    "lyapunov_estimates",
    "stream_lyapunov_estimates",
]

# --------------------------------------------------------------------------------------
# validation and random sampling
# --------------------------------------------------------------------------------------


def _check_params(n, L, p, sigma, min_rank):
    n = _check_int("n", n, 1)
    L = _check_int("L", L, 1)
    p = check_p(p)
    sigma = check_sigma(sigma, n)
    if min_rank is not None:
        min_rank = _check_int("min_rank", min_rank, 1, n)
        # probability that a p-gate has rank >= min_rank: refuse hopeless rejection loops
        from scipy.stats import binom

        prob = float(binom.sf(min_rank - 1, n, p))
        if prob < 1e-9:
            raise ValueError(
                f"min_rank={min_rank} is practically unreachable for n={n}, p={p} "
                f"(P(rank >= min_rank) = {prob:.2e} < 1e-9)"
            )
    return n, L, p, sigma, min_rank


def make_generator(seed: int | torch.Generator | None, device="cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded by ``seed`` (a fresh random seed if None)."""
    if isinstance(seed, torch.Generator):
        return seed
    gen = torch.Generator(device=torch.device(device))
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(_check_int("seed", seed, 0))
    return gen


def _draw_gate(gen, batch, n, p, min_rank, dtype, device) -> Tensor:
    """Gate diagonals, shape [batch, n], entries in {0, 1} (Definitions 5.1, 5.2)."""
    if p == 1.0:
        return torch.ones(batch, n, dtype=dtype, device=device)
    g = torch.rand(batch, n, generator=gen, dtype=dtype, device=device) < p
    if min_rank is not None:
        bad = g.sum(-1) < min_rank
        while bool(bad.any()):
            idx = bad.nonzero().squeeze(-1)
            g[idx] = torch.rand(len(idx), n, generator=gen, dtype=dtype, device=device) < p
            bad = g.sum(-1) < min_rank
    return g.to(dtype)


def _draw_weight_and_gate(gen, batch, n, p, sigma, min_rank, dtype, device):
    w = torch.randn(batch, n, n, generator=gen, dtype=dtype, device=device) * sigma
    d = _draw_gate(gen, batch, n, p, min_rank, dtype, device)
    return w, d


def iter_network(
    n: int,
    L: int,
    p: float = 1.0,
    sigma: float | None = None,
    *,
    batch: int = 1,
    min_rank: int | None = None,
    seed: int | torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device="cpu",
) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield ``(W_l, diag D_l)`` for l = 1..L, shapes [batch, n, n] and [batch, n].

    This is the single source of randomness: :func:`sample_network`,
    :func:`sample_layers`, :func:`iter_layers` and :func:`stream_log_spectra` all draw
    through it, so equal seeds give equal matrices whichever path is used.
    """
    n, L, p, sigma, min_rank = _check_params(n, L, p, sigma, min_rank)
    batch = _check_int("batch", batch, 1)
    gen = make_generator(seed, device)
    for _ in range(L):
        yield _draw_weight_and_gate(gen, batch, n, p, sigma, min_rank, dtype, device)


def sample_network(n, L, p=1.0, sigma=None, *, batch=1, min_rank=None, seed=None,
                   dtype=torch.float64, device="cpu") -> tuple[Tensor, Tensor]:
    """Weights [batch, L, n, n] and gate diagonals [batch, L, n] (gate l+1 at index l)."""
    ws, ds = zip(*iter_network(n, L, p, sigma, batch=batch, min_rank=min_rank, seed=seed,
                               dtype=dtype, device=device))
    return torch.stack(ws, 1), torch.stack(ds, 1)


def network_layers(weights: Tensor, gates: Tensor, convention: str = "section5") -> Tensor:
    """Layers ``M_l`` [batch, L, n, n] from weights and gate diagonals.

    ``convention="section5"``: ``M_l = D_l W_l`` for every l, product ``D_L W_L ... D_1 W_1``.
    ``convention="fgln"`` (Definition 4.1): the last gate is the identity, so the product
    is ``W_L D_{L-1} ... D_1 W_1``.
    """
    if convention not in ("section5", "fgln"):
        raise ValueError(f"convention must be 'section5' or 'fgln', got {convention!r}")
    g = gates
    if convention == "fgln":
        g = gates.clone()
        g[:, -1] = 1.0
    return g[..., :, None] * weights


def sample_layers(n, L, p=1.0, sigma=None, *, batch=1, min_rank=None, seed=None,
                  dtype=torch.float64, device="cpu", convention="section5") -> Tensor:
    """Layers [batch, L, n, n]; entry ``[:, l]`` is ``M_{l+1} = D_{l+1} W_{l+1}``.

    ``sigma`` defaults to ``1/sqrt(n)``; ``p=1`` means no gate; ``min_rank=r`` gives
    (r, p)-gates (Definition 5.2).
    """
    w, d = sample_network(n, L, p, sigma, batch=batch, min_rank=min_rank, seed=seed,
                          dtype=dtype, device=device)
    return network_layers(w, d, convention)


def iter_layers(n, L, p=1.0, sigma=None, *, batch=1, min_rank=None, seed=None,
                dtype=torch.float64, device="cpu", convention="section5") -> Iterator[Tensor]:
    """Stream the layers of :func:`sample_layers` one at a time ([batch, n, n] each)."""
    if convention not in ("section5", "fgln"):
        raise ValueError(f"convention must be 'section5' or 'fgln', got {convention!r}")
    for l, (w, d) in enumerate(iter_network(n, L, p, sigma, batch=batch, min_rank=min_rank,
                                            seed=seed, dtype=dtype, device=device)):
        if convention == "fgln" and l == L - 1:
            yield w
        else:
            yield d[..., :, None] * w


# --------------------------------------------------------------------------------------
# partial products (Sections 6 and 7)
# --------------------------------------------------------------------------------------


def prefix_suffix_products(layers: Tensor) -> tuple[Tensor, Tensor]:
    """Section 6 partial products of ``J_L = M_L ... M_1``, in one pass each.

    Returns ``(B, A)``, both [batch, L+1, n, n], with ``B[:, l] = M_l ... M_1`` (``B_0 = I``)
    and ``A[:, l] = M_L ... M_{l+1}`` (``A_L = I``), so that ``J_L = A[:, l] @ B[:, l]``.
    Entries are raw products: use only at moderate depth (no rescaling).
    """
    b, L, n, _ = layers.shape
    eye = torch.eye(n, dtype=layers.dtype, device=layers.device).expand(b, n, n)
    pre = [eye]
    for l in range(L):
        pre.append(layers[:, l] @ pre[-1])
    suf = [eye]
    for l in range(L - 1, -1, -1):
        suf.append(suf[-1] @ layers[:, l])
    return torch.stack(pre, 1), torch.stack(suf[::-1], 1)


def network_partial_products(weights: Tensor, gates: Tensor) -> tuple[Tensor, Tensor]:
    """Section 7 partial products of ``J = W_L D_{L-1} ... D_1 W_1``, in one pass each.

    Returns ``(A, B)``, both [batch, L, n, n]; index ``l-1`` holds
    ``A_l = W_L D_{L-1} ... W_{l+1} D_l`` and ``B_l = D_{l-1} W_{l-1} ... D_1 W_1``
    (with ``D_0 = D_L = I``), so that ``J = A_l W_l B_l`` for every l = 1..L.
    ``gates[:, l-1]`` is the diagonal of ``D_l``; the last gate is ignored (``D_L = I``).
    """
    b, L, n, _ = weights.shape
    eye = torch.eye(n, dtype=weights.dtype, device=weights.device).expand(b, n, n)
    B = [eye]
    for l in range(1, L):  # B_{l+1} = D_l W_l B_l
        B.append(gates[:, l - 1, :, None] * (weights[:, l - 1] @ B[-1]))
    A = [eye]  # A_L = I
    for l in range(L - 1, 0, -1):  # A_l = A_{l+1} W_{l+1} D_l
        A.append((A[-1] @ weights[:, l]) * gates[:, l - 1, None, :])
    return torch.stack(A[::-1], 1), torch.stack(B, 1)


# --------------------------------------------------------------------------------------
# graded SVD of the accumulated triangular factor
# --------------------------------------------------------------------------------------

_WINDOW = 18.0  # float64 resolves singular values within exp(18) of the window top to ~1e-8
_HALF = 9.0  # deflation margin: couplings across it perturb by exp(-2 * 9) ~ 1.5e-8


def graded_log_svdvals(a: Tensor, N: Tensor, k: int | None = None) -> Tensor:
    """Log-singular values of ``T = diag(exp(a)) N`` for one matrix, largest first.

    ``a``: [r] finite log row scales (roughly non-increasing), ``N``: [r, n] with r <= n and
    rows of order one. Returns the top ``k`` (default r) values, accurate in the relative
    sense even when ``exp(a)`` spans thousands of orders of magnitude.

    Method: ``sv(T) = sv(R1 diag(exp(a)))`` where ``N^T = Q1 R1`` (QR is equivariant under
    column scaling), an upper-triangular matrix whose columns are graded. Its singular values
    are taken from overlapping windows of indices whose scales lie within ``exp(18)`` of
    the window top; a window accepts only indices at least ``exp(9)`` away from the
    neglected rows above and columns below it, so the neglected couplings perturb the
    accepted values by ``O(exp(-18))`` (Schur complement of a column-graded triangle).
    """
    R1 = torch.linalg.qr(N.mT, mode="r")[1]
    return _graded_from_r(a, R1[: a.shape[0], : a.shape[0]], k)


def _window_plan(a_np: np.ndarray, k: int) -> list[tuple[int, int, int, int, float]]:
    """Windows ``(s, e, take_from, take_to, top)`` covering the top ``k`` of ``r`` values.

    ``a_np`` [r]: finite log row scales. Block ``[s, e)`` of the column-graded triangle is
    decomposed with its columns scaled by ``exp(a - top)``; its sorted log-singular values
    at positions ``[take_from, take_to)`` are accepted (see :func:`graded_log_svdvals`).
    """
    r = a_np.shape[0]
    env = np.minimum.accumulate(a_np)  # non-increasing envelope

    def first_below(thr: float, start: int) -> int:
        # first index i >= start with env[i] < thr (env is non-increasing), else r
        return start + int(np.searchsorted(-env[start:], -thr, side="right"))

    plan = []
    s, acc = 0, 0  # window start, first not-yet-accepted index
    while acc < k:
        hi = float(env[s])
        acc_end = first_below(hi - _WINDOW, s)
        e = r if acc_end == r else first_below(hi - _WINDOW - _HALF, acc_end)
        take_from, take_to = acc - s, min(acc_end, k) - s
        plan.append((s, e, take_from, take_to, float(a_np[s:e].max())))
        acc = max(acc, min(acc_end, k))
        if acc >= k:
            break
        s = max(first_below(hi - _HALF, s + 1), s + 1)
    return plan


def _graded_from_r(a: Tensor, R1: Tensor, k: int | None) -> Tensor:
    r = a.shape[0]
    k = r if k is None else min(k, r)
    if r == 0 or k == 0:
        return a.new_empty(0)
    if float(a.max() - a.min()) <= _WINDOW:  # fast path: one window holds everything
        top = a.max()
        sv = torch.linalg.svdvals(R1 * torch.exp(a - top)[None, :])
        return (torch.log(sv) + top)[:k]
    out: list[Tensor] = []
    for s, e, take_from, take_to, top in _window_plan(a.cpu().numpy(), k):
        if take_to > take_from:
            block = R1[s:e, s:e] * torch.exp(a[s:e] - top)[None, :]
            lsv = torch.log(torch.linalg.svdvals(block)) + top
            out.append(lsv[take_from:take_to])
    return torch.cat(out)[:k]


def _graded_batched(a: Tensor, R1: Tensor, rank: Tensor, k: int, out: Tensor) -> None:
    """:func:`_graded_from_r` for many matrices at once, writing into ``out`` [b, k].

    ``a`` [b, n] (finite on the first ``rank`` entries), ``R1`` [b, n, n]. The windows of all
    matrices with the same window index are decomposed in one batched SVD (blocks padded
    with zeros, whose extra singular values are zeros at the end of each sorted list).
    """
    a_np = a.cpu().numpy()
    plans = [_window_plan(a_np[i, : int(rank[i])], min(k, int(rank[i]))) for i in range(len(a_np))]
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
        for j, (i, (s, e, take_from, take_to, _)) in enumerate(rows):
            acc = s + take_from
            out[i, acc : acc + take_to - take_from] = lsv[j, take_from:take_to]


# --------------------------------------------------------------------------------------
# accumulation
# --------------------------------------------------------------------------------------


@dataclass
class SpectrumAccumulator:
    """Running log-scaled QR factorisation of a batch of products ``J = Q diag(e^a) N``.

    ``Q`` [batch, n, n] orthogonal, ``a`` [batch, n] log row scales (``-inf`` for rows that a
    gate has annihilated), ``N`` [batch, n, n] upper-triangular rows of unit norm (zero rows
    where ``a = -inf``), ``rank`` [batch]: number of leading non-annihilated rows.
    """

    Q: Tensor
    a: Tensor
    N: Tensor
    rank: Tensor
    depth: int = 0
    rtol: float = 1e-12
    method: str = "householder"

    @classmethod
    def start(cls, batch: int, n: int, *, dtype=torch.float64, device="cpu",
              rtol: float = 1e-12, method: str = "auto") -> "SpectrumAccumulator":
        """Empty products (identity). ``method``: ``"householder"`` (LAPACK QR), ``"cholqr"``
        (CholeskyQR2 with Householder fallback, fast on GPUs where batched QR is slow), or
        ``"auto"`` (cholqr on CUDA, householder elsewhere)."""
        if method == "auto":
            method = "cholqr" if torch.device(device).type == "cuda" else "householder"
        if method not in ("householder", "cholqr"):
            raise ValueError(f"method must be 'auto', 'householder' or 'cholqr', got {method!r}")
        eye = torch.eye(n, dtype=dtype, device=device).expand(batch, n, n).clone()
        a = torch.zeros(batch, n, dtype=dtype, device=device)
        rank = torch.full((batch,), n, dtype=torch.long, device=device)
        return cls(eye.clone(), a, eye, rank, 0, rtol, method)

    def _rank_after(self, R: Tensor, M: Tensor, count: int,
                    rank_bound: Tensor | None) -> Tensor:
        """Rank of the products after left-multiplying by ``M`` with QR factor ``R``.

        A diagonal entry of ``R`` at rounding level (``rtol`` times the norm of ``M``) marks an
        annihilated direction, but only when ``M`` is a single layer: a product of several
        layers can have legitimately tiny entries (its own dynamic range), so there only the
        structural ``rank_bound`` (non-zero rows of its layers) is trusted.
        """
        n = R.shape[-1]
        rank = self.rank if rank_bound is None else torch.minimum(self.rank,
                                                                  rank_bound.to(self.rank))
        if count == 1:
            scale = torch.linalg.matrix_norm(M).clamp_min(torch.finfo(M.dtype).tiny)
            small = R.diagonal(dim1=-2, dim2=-1).abs() <= self.rtol * scale[:, None]
            first = torch.where(small.any(-1), small.to(torch.int8).argmax(-1),
                                torch.full_like(rank, n))
            rank = torch.minimum(rank, first)
        return rank

    def _qr(self, Z: Tensor, M: Tensor) -> tuple[Tensor, Tensor]:
        if self.method == "householder":
            # geqrf + householder_product: the same factors as torch.linalg.qr, ~30% faster
            h, tau = torch.geqrf(Z)
            return torch.linalg.householder_product(h, tau), torch.triu(h)
        # CholeskyQR2. A rank drop can only come from rows of M that are exactly zero
        # (gates); such elements, and any whose Gram matrix is not numerically positive
        # definite, go through Householder QR instead.
        b, n, _ = Z.shape
        ar = torch.arange(n, device=Z.device)
        dead = (ar[None, :] >= self.rank[:, None]).to(Z.dtype)  # masked (zero) columns
        live_rows = (M.abs().sum(-1) > 0).sum(-1)
        fallback = live_rows < self.rank
        Q, R = Z, torch.diag_embed(torch.ones_like(dead))
        for _ in range(2):
            G = Q.mT @ Q + torch.diag_embed(dead)
            C, info = torch.linalg.cholesky_ex(G, upper=True)
            fallback = fallback | (info != 0)
            C = torch.where((info != 0)[:, None, None], torch.diag_embed(torch.ones_like(dead)), C)
            Q = torch.linalg.solve_triangular(C, Q, upper=True, left=False)
            R = C @ R
        R = R * (1.0 - dead)[:, :, None]
        if bool(fallback.any()):
            idx = fallback.nonzero().squeeze(-1)
            Qh, Rh = torch.linalg.qr(Z[idx])
            Q, R = Q.clone(), R.clone()
            Q[idx], R[idx] = Qh, Rh
        return Q, R

    def push(self, M: Tensor, count: int = 1, rank_bound: Tensor | None = None) -> None:
        """Left-multiply by ``M`` [batch, n, n] (itself a product of ``count`` layers).

        ``rank_bound`` [batch] (optional): an upper bound on the rank of ``M``, e.g. the
        smallest number of non-zero rows among the gated layers multiplied into it; a
        direction is declared annihilated beyond it, or when its QR diagonal entry is at
        rounding level (``rtol`` times the norm of ``M``).
        """
        b, n, _ = M.shape
        ar = torch.arange(n, device=M.device)
        colmask = (ar[None, :] < self.rank[:, None]).to(M.dtype)  # [b, n]
        Z = (M @ self.Q) * colmask[:, None, :]
        Qn, R = self._qr(Z, M)
        new_rank = self._rank_after(R, M, count, rank_bound)
        alive = ar[None, :] < new_rank[:, None]  # [b, n]
        R = R * alive[:, :, None].to(R.dtype)
        # T' = R T with T = diag(e^a) N, in log form: row i = e^{a_i} sum_j R_ij e^{a_j-a_i} N_j
        a = self.a
        a_safe = torch.where(torch.isfinite(a), a, torch.zeros_like(a))
        diff = (a_safe[:, None, :] - a_safe[:, :, None]).clamp(max=700.0)
        F = torch.exp(diff) * torch.isfinite(a)[:, None, :].to(a.dtype)
        P = torch.triu(R * F) @ self.N
        nu = torch.linalg.vector_norm(P, dim=-1)
        ok = alive & (nu > 0)
        nu_safe = torch.where(ok, nu, torch.ones_like(nu))
        self.N = torch.where(ok[..., None], P / nu_safe[..., None], torch.zeros_like(P))
        self.a = torch.where(ok, a_safe + torch.log(nu_safe),
                             torch.full_like(a, -math.inf))
        self.rank = ok.sum(-1)
        self.Q = Qn
        self.depth += count

    def log_svdvals(self, k: int | None = None) -> Tensor:
        """Exact log-singular values of the current products, [batch, k], ``-inf`` for zeros."""
        b, n = self.a.shape
        k = n if k is None else _check_int("k", k, 1, n)
        # QR of N^T once for the whole batch: rows of N beyond the rank are zero, so the
        # leading r x r block of R1 is the QR factor of the live rows alone.
        R1 = torch.linalg.qr(self.N.mT, mode="r")[1]
        finite = torch.isfinite(self.a)
        a0 = torch.where(finite, self.a, torch.full_like(self.a, -math.inf))
        top = a0.max(-1).values
        top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
        env = torch.cummin(torch.where(finite, self.a, top[:, None] - 1e300), -1).values
        kk = torch.minimum(self.rank, torch.full_like(self.rank, k)).clamp_min(1)
        kth = env.gather(1, (kk - 1)[:, None]).squeeze(1)  # scale of the last wanted value
        fast = (top - kth) <= _WINDOW
        # the top-k values only need the leading rows whose scale is above kth - 9: the
        # neglected columns couple to them at O(exp(-9)), i.e. O(exp(-18)) on the values
        cut = int(((env >= (kth - _HALF)[:, None]) & fast[:, None]).sum(-1).max().clamp_min(k))
        out = torch.full((b, k), -math.inf, dtype=self.a.dtype, device=self.a.device)
        if bool(fast.any()):
            idx = fast.nonzero().squeeze(-1)
            scale = torch.exp(a0[idx, :cut] - top[idx, None])  # exp(-inf) = 0 for dead rows
            sv = torch.linalg.svdvals(R1[idx, :cut, :cut] * scale[:, None, :])[:, :k]
            vals = torch.log(sv) + top[idx, None]
            # exact zeros: singular values beyond the rank are -inf, never rounding noise
            ar = torch.arange(k, device=self.a.device)
            vals = torch.where(ar[None, :] < self.rank[idx, None], vals,
                               torch.full_like(vals, -math.inf))
            out[idx] = vals
        slow = (~fast).nonzero().squeeze(-1)
        if len(slow):
            sub = torch.full((len(slow), k), -math.inf, dtype=self.a.dtype, device=self.a.device)
            _graded_batched(self.a[slow], R1[slow], self.rank[slow], k, sub)
            out[slow] = sub
        return out


def _qr_growth(layer_iter: Iterable[Tensor], L: int, batch: int, n: int, reorth_every: int,
               dtype, device, method: str, progress: bool) -> Tensor:
    """Sum over QR steps of ``log|R_ii|`` ([batch, n]; ``-inf`` past a rank drop)."""
    reorth_every = _check_int("reorth_every", reorth_every, 1)
    acc = SpectrumAccumulator.start(batch, n, dtype=dtype, device=device, method=method)
    total = torch.zeros(batch, n, dtype=dtype, device=device)
    it = layer_iter
    if progress:
        from .progress import progress as _progress

        it = _progress(layer_iter, total=L, desc="layers")
    pending, count, bound = None, 0, None
    ar = torch.arange(n, device=device)
    house: tuple[Tensor, Tensor] | None = None  # Q kept in Householder form (CPU path)
    for l, M in enumerate(it, start=1):
        pending = M if pending is None else M @ pending
        live = (M.abs().amax(-1) > 0).sum(-1)
        bound = live if bound is None else torch.minimum(bound, live)
        count += 1
        if count == reorth_every or l == L:
            colmask = (ar[None, :] < acc.rank[:, None]).to(dtype)
            if house is not None:  # pending @ Q without forming Q
                Z = torch.ormqr(house[0], house[1], pending, left=False) * colmask[:, None, :]
            else:
                Z = (pending @ acc.Q) * colmask[:, None, :]
            if acc.method == "householder":
                h, tau = torch.geqrf(Z)
                R = h
                house = (h, tau)
            else:
                acc.Q, R = acc._qr(Z, pending)
            rank = acc._rank_after(R, pending, count, bound)
            alive = ar[None, :] < rank[:, None]
            logd = torch.log(R.diagonal(dim1=-2, dim2=-1).abs())
            total = torch.where(alive, total + logd, torch.full_like(total, -math.inf))
            acc.rank = rank
            pending, count, bound = None, 0, None
    return total


def lyapunov_estimates(layers: Tensor, *, reorth_every: int = 4, method: str = "auto") -> Tensor:
    """QR estimate of the Lyapunov exponents: ``(1/L) sum log|R_ii|``, [batch, n].

    The classical estimator (Benettin et al.): ``sum_{j<=i} log|R_jj| = log||J e_1 ^ ... ^
    J e_i||``, whose mean is exactly ``L (gamma_1 + ... + gamma_i)`` for layers whose law is
    invariant under right rotations (Ginibre times a gate), so the estimate has no
    finite-depth bias, unlike ``(1/L) log s_{i,L}`` (Theorem 5.3). Cheaper than the exact
    spectrum: no triangular factor is kept, and ``reorth_every`` layers are multiplied
    between two QR steps. Entries past a rank drop are ``-inf``.
    """
    if layers.ndim != 4 or layers.shape[-1] != layers.shape[-2]:
        raise ValueError(f"layers must have shape [batch, L, n, n], got {tuple(layers.shape)}")
    b, L, n, _ = layers.shape
    return _qr_growth((layers[:, l] for l in range(L)), L, b, n, reorth_every, layers.dtype,
                      layers.device, method, False) / L


def stream_lyapunov_estimates(n, L, p=1.0, sigma=None, *, batch=1, min_rank=None, seed=None,
                              reorth_every: int = 4, dtype=torch.float64, device="cpu",
                              method: str = "auto", progress: bool = False) -> Tensor:
    """:func:`lyapunov_estimates` drawing the layers one at a time ([batch, n])."""
    n, L, p, sigma, min_rank = _check_params(n, L, p, sigma, min_rank)
    layers = iter_layers(n, L, p, sigma, batch=batch, min_rank=min_rank, seed=seed,
                         dtype=dtype, device=device)
    return _qr_growth(layers, L, batch, n, reorth_every, dtype, device, method, progress) / L


def _as_depths(depths: Iterable[int] | None, L: int) -> list[int]:
    if depths is None:
        return list(range(1, L + 1))
    ds = sorted({int(d) for d in depths})
    if not ds or ds[0] < 1 or ds[-1] > L:
        raise ValueError(f"depths must lie in [1, {L}], got {depths!r}")
    return ds


def _run(layer_iter: Iterable[Tensor], L: int, batch: int, n: int, depths: list[int],
         k: int | None, reorth_every: int, dtype, device, progress: bool,
         method: str = "auto") -> Tensor:
    reorth_every = _check_int("reorth_every", reorth_every, 1)
    if k is not None:
        k = _check_int("k", k, 1, n)
    acc = SpectrumAccumulator.start(batch, n, dtype=dtype, device=device, method=method)
    wanted = set(depths)
    out = []
    pending: Tensor | None = None
    count = 0
    it = layer_iter
    if progress:
        from .progress import progress as _progress

        it = _progress(layer_iter, total=L, desc="layers")
    bound: Tensor | None = None
    for l, M in enumerate(it, start=1):
        pending = M if pending is None else M @ pending
        live = (M.abs().amax(-1) > 0).sum(-1)  # rank(M) <= its number of non-zero rows
        bound = live if bound is None else torch.minimum(bound, live)
        count += 1
        if count == reorth_every or l in wanted or l == L:
            acc.push(pending, count, bound)
            pending, count, bound = None, 0, None
        if l in wanted:
            out.append(acc.log_svdvals(k))
    return torch.stack(out, 1)


def log_singular_values(layers: Tensor, *, k: int | None = None, reorth_every: int = 1,
                        method: str = "auto") -> Tensor:
    """Log-singular values of ``M_L ... M_1`` for ``layers`` [batch, L, n, n].

    Returns [batch, k] (default k = n), largest first, exact zeros as ``-inf``.
    ``reorth_every``: layers multiplied together between two QR steps (1 = most accurate).
    """
    if layers.ndim != 4 or layers.shape[-1] != layers.shape[-2]:
        raise ValueError(f"layers must have shape [batch, L, n, n], got {tuple(layers.shape)}")
    b, L, n, _ = layers.shape
    return _run((layers[:, l] for l in range(L)), L, b, n, [L], k, reorth_every,
                layers.dtype, layers.device, False, method)[:, 0]


def log_spectra_by_depth(layers: Tensor, *, depths: Sequence[int] | None = None,
                         k: int | None = None, method: str = "auto") -> Tensor:
    """Log-spectra of every partial product ``M_l ... M_1`` in one pass.

    Returns [batch, len(depths), k]; ``depths`` defaults to 1..L.
    """
    if layers.ndim != 4 or layers.shape[-1] != layers.shape[-2]:
        raise ValueError(f"layers must have shape [batch, L, n, n], got {tuple(layers.shape)}")
    b, L, n, _ = layers.shape
    ds = _as_depths(depths, L)
    return _run((layers[:, l] for l in range(L)), L, b, n, ds, k, 1, layers.dtype,
                layers.device, False, method)


def stream_log_spectra(n, L, p=1.0, sigma=None, *, batch=1, min_rank=None, seed=None,
                       depths: Sequence[int] | None = None, k: int | None = None,
                       reorth_every: int = 1, dtype=torch.float64, device="cpu",
                       convention: str = "section5", progress: bool = False,
                       method: str = "auto") -> Tensor:
    """Like :func:`sample_layers` + :func:`log_spectra_by_depth`, drawing layers one at a time.

    Memory is O(batch n^2) whatever L. Same seed, same numbers as the in-memory path.
    Returns [batch, len(depths), k]; ``depths`` defaults to ``[L]``.
    """
    n, L, p, sigma, min_rank = _check_params(n, L, p, sigma, min_rank)
    ds = _as_depths([L] if depths is None else depths, L)
    layers = iter_layers(n, L, p, sigma, batch=batch, min_rank=min_rank, seed=seed,
                         dtype=dtype, device=device, convention=convention)
    return _run(layers, L, batch, n, ds, k, reorth_every, dtype, device, progress, method)
