"""Log-scaled QR accumulation of a deep product, and the one loop that feeds it layers.

A batch of products ``J = M_l ... M_1`` is kept as ``J = Q diag(exp(a)) N``: ``Q`` orthogonal,
``a`` log row scales, ``N`` upper triangular with unit rows. Nothing of size ``exp(L)`` is ever
formed, so depths of 10,000 and more neither overflow nor underflow. A step multiplies a
chunk of layers into the product and re-triangularises with one QR; the sum of the
``log|R_ii|`` of all steps (the *growth*) is the classical QR (Benettin) estimate of
``L (gamma_1 + ... )`` increments. Rank drops (exact zeros created by gates) are detected
step by step and reported as ``-inf``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Iterable

import torch

from ..base.conventions import shared_doc
from ..base.progress import progress as progress_bar
from ..base.validation import check_int, check_positive, resolve_device
from .graded_svd import _envelope, graded_log_svdvals_batched, gram_log_svdvals, needed_rows

Tensor = torch.Tensor

__all__ = ["SpectrumAccumulator", "QRInterval", "accumulate", "accumulate_factors", "NEGLECT"]

METHODS = ("householder", "cholqr")

#: Rows of a product more than this many nats below its k-th row are dropped when only the
#: top k values are read (:func:`accumulate_factors`): they reach those values at relative
#: order ``exp(-NEGLECT)`` = 4e-18 per layer (see :meth:`SpectrumAccumulator.kept_rows`).
NEGLECT = 40.0


@dataclass
class SpectrumAccumulator:
    """Running log-scaled QR factorisation of a batch of products ``J = Q diag(e^a) N``.

    ``a`` [batch, n] log row scales (``-inf`` for rows that a gate has annihilated), ``N``
    [batch, m, n] upper-triangular rows of unit norm (zero rows where ``a = -inf``; only the
    leading ``m >= max(rank)`` rows are stored, the others are zero), ``rank``
    [batch]: number of leading non-annihilated rows, ``growth`` [batch, n]: sum over steps
    of ``log|R_ii|`` (``-inf`` past the rank), ``L``: layers multiplied in. Of ``Q`` only
    the leading ``r = max(rank)`` columns (the *frame*) matter; they are kept explicitly in
    ``Q`` [batch, n, r] or in Householder form ``house = (h [batch, n, r], tau [batch, r])``.
    With ``spectrum=False`` no triangular factor is kept (the exponent estimator).

    Build it with :meth:`start`; the constructor takes the state field by field.

    Parameters
    ----------
    Q, a, N, rank, growth, L, rtol, method, spectrum, house
        The attributes below, in this order.

    Attributes
    ----------
    Q : Tensor or None
        Explicit frame [batch, n, r] (None while it is kept in Householder form).
    a : Tensor
        Log row scales [batch, n].
    N : Tensor or None
        Unit-norm upper-triangular rows [batch, m, n] (None with ``spectrum=False``): the
        leading ``m >= live()`` rows (``m = n`` at the start); the rows past ``m`` are zero
        and not stored, so that a step copies only the live rows.
    rank : Tensor
        Leading non-annihilated rows per product [batch] (long).
    growth : Tensor
        Sum over steps of ``log|R_ii|`` [batch, n].
    L : int
        Layers multiplied in so far.
    rtol : float
        Relative level at which a QR diagonal entry of a single layer is an exact zero.
    method : str
        ``"householder"`` or ``"cholqr"``.
    spectrum : bool
        Whether the triangular factor (and so the exact spectrum) is kept.
    house : tuple of Tensor or None
        The frame in Householder form ``(h [batch, n, r], tau [batch, r])``.
    """

    Q: Tensor | None
    a: Tensor
    N: Tensor | None
    rank: Tensor
    growth: Tensor
    L: int = 0
    rtol: float = 1e-12
    method: str = "householder"
    spectrum: bool = True
    house: tuple[Tensor, Tensor] | None = None

    @classmethod
    def start(cls, n: int, replicates: int, *, dtype=torch.float64, device="cpu",
              rtol: float = 1e-12, method: str = "auto",
              spectrum: bool = True) -> "SpectrumAccumulator":
        """Empty products (identity). ``method``: ``"householder"`` (LAPACK QR), ``"cholqr"``
        (CholeskyQR2 with Householder fallback, fast on GPUs where batched QR is slow), or
        ``"auto"`` (cholqr on CUDA, householder elsewhere).

        Parameters
        ----------
        n : int
            Width (>= 1).
        replicates : int
            Number of products (>= 1).
        dtype : torch.dtype
            Floating type (default float64).
        device : str or torch.device
            Where the state lives.
        rtol : float
            Relative zero level of a single layer's QR diagonal (default 1e-12).
        method : {"auto", "householder", "cholqr"}
            QR of a step.
        spectrum : bool
            Keep the triangular factor (exact spectra); False keeps only the growth.

        Returns
        -------
        acc : SpectrumAccumulator
            Identity products of depth 0.

        Raises
        ------
        TypeError
            If ``n`` or ``replicates`` is not an integer.
        ValueError
            If ``method`` is unknown or ``n``, ``replicates`` is below 1.
        """
        if method == "auto":
            method = "cholqr" if resolve_device(device).type == "cuda" else "householder"
        if method not in METHODS:
            raise ValueError(f"method must be 'auto', 'householder' or 'cholqr', got {method!r}")
        n = check_int("n", n, 1)
        batch = check_int("replicates", replicates, 1)
        eye = torch.eye(n, dtype=dtype, device=device).expand(batch, n, n).clone()
        a = torch.zeros(batch, n, dtype=dtype, device=device)
        rank = torch.full((batch,), n, dtype=torch.long, device=device)
        return cls(eye, a, eye.clone() if spectrum else None, rank, torch.zeros_like(a), 0,
                   rtol, method, spectrum)

    def live(self) -> int:
        """Width of the frame: the largest rank over the batch (at least 1).

        Returns
        -------
        r : int
            ``max(rank)``, at least 1.
        """
        return max(int(self.rank.max()), 1)

    def frame(self) -> Tensor:
        """The leading ``live()`` columns of ``Q``, [batch, n, r] (orthonormal).

        Returns
        -------
        frame : Tensor
            [batch, n, r], r = :meth:`live`.
        """
        r = self.live()
        if self.house is None:
            if self.Q is None:
                raise ValueError("the frame is not kept once triangular factors are pushed "
                                 "(push_factor); push layers into a fresh accumulator")
            return self.Q[..., :r]
        h, tau = self.house  # the first r columns of Q need only the first r reflectors
        return torch.linalg.householder_product(h[..., :r], tau[..., :r])

    def times_frame(self, M: Tensor) -> Tensor:
        """``M @ frame()`` for ``M`` [batch, n, n]; in Householder form without forming Q.

        Parameters
        ----------
        M : Tensor
            [batch, n, n].

        Returns
        -------
        Z : Tensor
            [batch, n, r], r = :meth:`live` (all n columns in Householder form).
        """
        if self.house is None or self.live() < self.house[0].shape[-2]:
            return M @ self.frame()
        return torch.ormqr(self.house[0], self.house[1], M, left=False)

    # ---------------------------------------------------------------- one QR step

    def _rank_after(self, R: Tensor, count: int, rank_bound: Tensor | None,
                    scale: Tensor | None) -> Tensor:
        """Rank of the products after a step whose QR factor is ``R`` [batch, r, r].

        A diagonal entry of ``R`` at rounding level (``rtol`` times ``scale``, the norm of the
        layer) marks an annihilated direction, but only for a single layer: a product of
        several layers can have legitimately tiny entries (its own dynamic range), so there
        only the structural ``rank_bound`` (non-zero rows of its layers) is trusted.
        """
        r = R.shape[-1]
        rank = self.rank if rank_bound is None else torch.minimum(self.rank,
                                                                  rank_bound.to(self.rank))
        if count == 1 and scale is not None:
            small = R.diagonal(dim1=-2, dim2=-1).abs() <= self.rtol * scale[:, None]
            first = torch.where(small.any(-1), small.to(torch.int8).argmax(-1),
                                torch.full_like(rank, r))
            rank = torch.minimum(rank, first)
        return rank

    def _cholqr(self, Z: Tensor, rank_bound: Tensor | None) -> tuple[Tensor, Tensor]:
        """CholeskyQR2 of ``Z`` [batch, n, r]. A rank drop can only come from rows that are
        exactly zero (gates): elements whose ``rank_bound`` is below their rank, and any whose
        Gram matrix is not numerically positive definite, go through Householder QR."""
        r = Z.shape[-1]
        ar = torch.arange(r, device=Z.device)
        dead = (ar[None, :] >= self.rank[:, None]).to(Z.dtype)  # masked (zero) columns
        fallback = torch.zeros_like(self.rank, dtype=torch.bool)
        if rank_bound is not None:
            fallback = rank_bound.to(self.rank) < self.rank
        eye = torch.diag_embed(torch.ones_like(dead))
        Q, R = Z, eye
        for _ in range(2):
            C, info = torch.linalg.cholesky_ex(Q.mT @ Q + torch.diag_embed(dead), upper=True)
            fallback = fallback | (info != 0)
            C = torch.where((info != 0)[:, None, None], eye, C)
            Q = torch.linalg.solve_triangular(C, Q, upper=True, left=False)
            R = C @ R
        R = R * (1.0 - dead)[:, :, None]
        if bool(fallback.any()):
            idx = fallback.nonzero().squeeze(-1)
            Qh, Rh = torch.linalg.qr(Z[idx])
            Q, R = Q.clone(), R.clone()
            Q[idx], R[idx] = Qh, Rh
        return Q, R

    def _factor(self, Z: Tensor, rank_bound: Tensor | None) -> Tensor:
        """QR of ``Z`` [batch, n, r]: stores the new frame, returns ``R`` [batch, r, r]
        (upper part valid)."""
        r = Z.shape[-1]
        if self.method == "cholqr":
            self.Q, R = self._cholqr(Z, rank_bound)
            self.house = None
            return R
        h, tau = torch.geqrf(Z)
        self.Q, self.house = None, (h, tau)  # the frame, formed only when needed
        return h[:, :r, :r]

    def _update_triangle(self, R: Tensor, alive: Tensor) -> None:
        """``T' = R T`` on the leading ``r`` rows, with ``T = diag(e^a) N`` in log form: row i
        of ``T'`` is ``e^{a_i} sum_{j >= i} R_ij e^{a_j - a_i} N_j``; its norm goes into ``a``,
        the normalised row into ``N``. Rows not ``alive`` (and rows already dead) vanish."""
        r = R.shape[-1]
        a = self.a[:, :r]
        fin = torch.isfinite(a)
        a_col = torch.where(fin, a, -math.inf)
        a_row = torch.where(alive & fin, a, math.inf)  # exp(-inf) = 0 on dead rows
        F = (a_col[:, None, :] - a_row[:, :, None]).clamp_(max=700.0).exp_()
        P = torch.bmm(F.mul_(R).triu_(), self.N[:, :r])
        nu = torch.linalg.vector_norm(P, dim=-1)
        ok = alive & (nu > 0)
        P.mul_(torch.where(ok, 1.0 / nu, 0.0)[..., None])
        a = torch.where(ok, torch.where(fin, a, 0.0) + torch.log(nu), -math.inf)
        self.N = P  # rows past r are dead: N keeps the leading r only (no copy of the rest)
        if r < self.a.shape[1]:
            self.a = torch.cat([a, self.a[:, r:]], 1)
        else:
            self.a = a
        self.rank = ok.sum(-1)

    def step(self, Z: Tensor, count: int = 1, rank_bound: Tensor | None = None,
             scale: Tensor | None = None) -> Tensor:
        """One QR step: ``Z`` [batch, n, r] is a product of ``count`` layers applied to
        :meth:`frame` (r = ``live()``).

        ``rank_bound`` [batch] (optional): an upper bound on the rank of those layers' product
        (e.g. the smallest number of non-zero rows among them); ``scale`` [batch]: the norm of
        the layer when ``count == 1`` (a QR diagonal entry below ``rtol * scale`` is then an
        exact zero). Returns this step's ``log|R_ii|`` [batch, n] (``-inf`` past the new rank).

        Parameters
        ----------
        Z : Tensor
            The chunk's product applied to the frame [batch, n, r].
        count : int
            Layers in the chunk (default 1).
        rank_bound : Tensor or None
            Upper bound on the chunk's rank [batch].
        scale : Tensor or None
            Norm of the single layer [batch] (``count == 1`` only).

        Returns
        -------
        logd : Tensor
            This step's ``log|R_ii|`` [batch, n].
        """
        r = Z.shape[-1]
        ar = torch.arange(r, device=Z.device)
        if bool((self.rank < r).any()):  # directions already annihilated stay zero
            Z = Z * (ar[None, :] < self.rank[:, None]).to(Z.dtype)[:, None, :]
        R = self._factor(Z, rank_bound)
        new_rank = self._rank_after(R, count, rank_bound, scale)
        alive = ar[None, :] < new_rank[:, None]  # [b, r]
        logd = _pad_minus_inf(
            torch.where(alive, torch.log(R.diagonal(dim1=-2, dim2=-1).abs()), -math.inf),
            self.growth.shape[1])
        self.growth = self.growth + logd
        if self.spectrum:
            self._update_triangle(R, alive)
        else:
            self.rank = new_rank
        self.L += count
        return logd

    def push(self, M: Tensor, count: int = 1, rank_bound: Tensor | None = None) -> Tensor:
        """Left-multiply by ``M`` [batch, n, n] (itself a product of ``count`` layers); see
        :meth:`step`. Returns this step's ``log|R_ii|`` [batch, n].

        Parameters
        ----------
        M : Tensor
            [batch, n, n].
        count : int
            Layers that ``M`` is the product of (default 1).
        rank_bound : Tensor or None
            Upper bound on the rank of ``M`` [batch].

        Returns
        -------
        logd : Tensor
            This step's ``log|R_ii|`` [batch, n].
        """
        scale = _layer_scale(M) if count == 1 else None
        return self.step(self.times_frame(M), count, rank_bound, scale)

    def push_factor(self, R: Tensor, m: Tensor) -> Tensor:
        """Left-multiply the triangular factor by ``R`` [batch, w, w]: ``T <- R T``.

        ``R`` is the triangular factor of the next layer applied to the frame, drawn in law
        (:func:`fgln.products.sampling.iter_factors`); the frame itself is then no longer
        kept. ``m`` [batch] is that layer's rank (its rows ``>= m`` are zero). Where ``w`` is
        below :meth:`live`, the product's rows from ``w`` on are dropped first (their scales
        become ``-inf``: :meth:`kept_rows` says when that leaves the top values unchanged);
        columns of ``R`` past the live rows act on zero rows.

        Parameters
        ----------
        R : Tensor
            Upper-triangular factor [batch, w, w].
        m : Tensor
            Rank of the layer [batch] (long).

        Returns
        -------
        logd : Tensor
            ``log|R_ii|`` [batch, n] (``-inf`` past the new rank).

        """
        r = self.live()
        if R.shape[-1] < r:  # drop the rows past the factor's width
            r = R.shape[-1]
            self.a = torch.cat([self.a[:, :r], torch.full_like(self.a[:, r:], -math.inf)], 1)
            self.N = self.N[:, :r]
            self.growth = torch.cat([self.growth[:, :r],
                                     torch.full_like(self.growth[:, r:], -math.inf)], 1)
            self.rank = self.rank.clamp_max(r)
        R = R[:, :r, :r]
        alive = torch.arange(r, device=R.device)[None, :] < torch.minimum(self.rank, m)[:, None]
        logd = _pad_minus_inf(
            torch.where(alive, torch.log(R.diagonal(dim1=-2, dim2=-1).abs()), -math.inf),
            self.growth.shape[1])
        self.growth = self.growth + logd
        self.Q, self.house = None, None
        if self.spectrum:
            self._update_triangle(R, alive)
        else:
            self.rank = alive.sum(-1)
        self.L += 1
        return logd

    def kept_rows(self, k: int, below: float = NEGLECT) -> int:
        """How many leading rows the top ``k`` values need, now and at every later depth.

        A row ``j`` whose log scale lies more than ``below`` nats under the ``k``-th row's
        (:func:`fgln.products.graded_svd.needed_rows`' envelope) reaches the top ``k``
        values only through the couplings of later factors, at relative order
        ``exp(-below)`` per layer; rows below the top ``k`` grow more slowly than those, so
        the gap only widens (in mean) and the neglected parts stay of that order. The
        product may then drop every row past the last one within ``below`` nats (largest
        over the batch): the top ``k`` values change by about ``L n exp(-below)`` relative
        (1e-13 for ``L = 1000``, ``n = 128`` and :data:`NEGLECT`).

        Parameters
        ----------
        k : int
            How many of the largest values are read (>= 1).
        below : float
            Nats under the ``k``-th row below which a row is neglected (default
            :data:`NEGLECT`).

        Returns
        -------
        rows : int
            Leading rows to keep, in [min(k, live()), live()].
        """
        r = self.live()
        a = self.a[:, :r]
        _, _, kth, _ = _envelope(a, self.rank, min(k, r))
        keep = torch.isfinite(a) & (a >= (kth - below)[:, None])
        last = torch.where(keep, torch.arange(1, r + 1, device=a.device), 0).amax(-1)
        return int(last.max().clamp(min(k, r), r))

    def copy(self) -> "SpectrumAccumulator":
        """A shallow copy (steps replace the tensors, never modify them in place).

        Returns
        -------
        acc : SpectrumAccumulator
            The copy.
        """
        return replace(self)

    def restore(self, other: "SpectrumAccumulator") -> None:
        """Return to the state of ``other`` (a :meth:`copy` taken earlier).

        Parameters
        ----------
        other : SpectrumAccumulator
            The state to return to.
        """
        for f in fields(self):
            setattr(self, f.name, getattr(other, f.name))

    # ---------------------------------------------------------------- read-out

    def log_svdvals(self, k: int | None = None) -> Tensor:
        """Exact log-singular values of the current products, [batch, k], ``-inf`` for zeros.

        Parameters
        ----------
        k : int or None
            How many, largest first (in [1, n]; None: all n).

        Returns
        -------
        log_s : Tensor
            [batch, k].

        Raises
        ------
        ValueError
            If the accumulator was started with ``spectrum=False`` or ``k`` is out of range.
        """
        if not self.spectrum:
            raise ValueError("log_svdvals needs an accumulator started with spectrum=True")
        n = self.a.shape[1]
        k = n if k is None else check_int("k", k, 1, n)
        r = self.live()  # rows past r are zero: exact zeros
        need = needed_rows(self.a[:, :r], self.rank, min(k, r))
        a, N, rank = self.a[:, :need], self.N[:, :need], self.rank.clamp_max(need)
        # products whose top values lie close together: the Gram route, no QR
        out, ok = gram_log_svdvals(a, N, rank, min(k, need))
        if not bool(ok.all()):
            rest = (~ok).nonzero().squeeze(-1)
            # QR of the needed rows' N^T once for these: its leading block is the QR
            # factor of any fewer leading rows (a chain of smaller rank, or needing fewer).
            R1 = torch.linalg.qr(N[rest].mT, mode="r")[1]
            out[rest] = graded_log_svdvals_batched(a[rest], R1, rank[rest], min(k, need))
        pad = out.new_full((out.shape[0], k - out.shape[1]), -math.inf)
        return torch.cat([out, pad], 1)


class QRInterval:
    """How many layers to multiply together between two QR steps.

    Multiplying ``m`` layers before a QR step saves ``m - 1`` QR steps, but the columns of the
    chunk's product lose orthogonality: the step resolves direction i only to a relative
    error of about ``eps * exp(S)``, where the *spread* ``S = max_j log|R_jj| - min_i
    log|R_ii|`` (live directions, worst chain) is measured at every step. ``fixed=m`` always
    multiplies ``m`` layers. Otherwise (adaptive) the next interval is chosen from the
    spread per layer measured so far so that ``S`` stays near ``target = log(tol / (320
    eps))`` (7.2 nats for float64 and ``tol = 1e-10``), and a chunk whose spread exceeds the
    target by more than 2 is redone one layer per step. Every finite log-singular value then
    stays within about ``tol`` of the one-layer-per-step result (the constants are measured:
    the largest deviation over gated and ungated products of widths 32-128 and depths
    100-200 was 6e-11).

    Parameters
    ----------
    fixed : int or None
        Always multiply this many layers (>= 1; an error names it ``reorth_every``); None
        chooses the interval adaptively.
    tol : float
        Accuracy of the finite log-singular values (> 0; default 1e-10).
    dtype : torch.dtype
        Floating type of the products (its machine epsilon sets the target spread).
    max_layers : int
        Largest adaptive interval (default 32).

    Raises
    ------
    TypeError
        If ``fixed`` is not an integer or ``tol`` not a number.
    ValueError
        If ``fixed`` is below 1 or ``tol`` is not positive and finite.
    """

    def __init__(self, fixed: int | None = None, *, tol: float = 1e-10,
                 dtype: torch.dtype = torch.float64, max_layers: int = 32):
        self.fixed = None if fixed is None else check_int("reorth_every", fixed, 1)
        tol = check_positive("tol", tol)
        self.target = math.log(tol / (320 * torch.finfo(dtype).eps))
        self.redo_above = self.target + 2.0
        self.max_layers = max_layers
        self.rate: float | None = None  # spread per layer, conservative running estimate
        self.size = self.fixed or 1

    @property
    def adaptive(self) -> bool:
        """Whether the interval is chosen from the measured growth (no fixed interval, and a
        tolerance loose enough to allow more than one layer per step).

        Returns
        -------
        adaptive : bool
            True when the interval adapts.
        """
        return self.fixed is None and self.target > 0

    def must_redo(self, spread: float, count: int) -> bool:
        """Whether a step over ``count`` layers with this spread is too inexact to keep.

        Parameters
        ----------
        spread : float
            The step's spread ``S`` (nats).
        count : int
            Layers in the step.

        Returns
        -------
        redo : bool
            True when adaptive, ``count > 1`` and ``S`` exceeds the target by more than 2.
        """
        return self.adaptive and count > 1 and spread > self.redo_above

    def observe(self, spread: float, count: int) -> None:
        """Record a step's spread over ``count`` layers and choose the next interval.

        Parameters
        ----------
        spread : float
            The step's spread ``S`` (nats).
        count : int
            Layers in the step.
        """
        if not self.adaptive:
            return
        rate = max(spread, 1e-3) / count
        # rise at once, fall at most by half per step
        self.rate = rate if self.rate is None else max(rate, 0.5 * (self.rate + rate))
        self.size = int(min(self.max_layers, max(1, self.target // self.rate)))


def _pad_minus_inf(x: Tensor, width: int) -> Tensor:
    """``x`` [batch, r] padded with ``-inf`` to [batch, width] (``x`` itself when r = width)."""
    r = x.shape[1]
    if r == width:
        return x
    return torch.cat([x, x.new_full((x.shape[0], width - r), -math.inf)], 1)


def _spread(logd: Tensor) -> float:
    """Largest over the batch of ``max - min`` of the finite entries of ``logd`` [b, n]."""
    fin = torch.isfinite(logd)
    hi = torch.where(fin, logd, torch.full_like(logd, -math.inf)).amax(-1)
    lo = torch.where(fin, logd, torch.full_like(logd, math.inf)).amin(-1)
    gap = torch.where(fin.any(-1), hi - lo, torch.zeros_like(hi))
    return float(gap.max())


def _layer_scale(M: Tensor) -> Tensor:
    """Frobenius norm of each layer [b] (at least the smallest normal number): a QR diagonal
    entry below ``rtol`` times it is an exact zero."""
    return torch.linalg.matrix_norm(M).clamp_min(torch.finfo(M.dtype).tiny)


def _live_rows(M: Tensor) -> Tensor:
    """Number of non-zero rows of each layer [b] (an upper bound on its rank)."""
    return (M.abs().amax(-1) > 0).sum(-1)


@shared_doc
def accumulate(layers: Iterable[Tensor], acc: SpectrumAccumulator, L: int, *,
               depths: Iterable[int] = (), k: int | None = None,
               reorth_every: int | None = None, tol: float = 1e-10,
               progress: bool | None = None, desc: str = "layers") -> list[Tensor]:
    """Push ``L`` layers [batch, n, n] into ``acc``; log-spectra at ``depths`` ([batch, k] each).

    ``reorth_every`` layers are multiplied together between two QR steps; ``None`` chooses
    the interval from the measured growth (:class:`QRInterval`, accuracy ``tol``). A step is
    also taken at every wanted depth and at L. Each chunk carries a structural rank bound:
    the smallest number of non-zero rows among its layers. ``progress``: a progress bar
    labelled ``desc`` (silenced by ``FGLN_PROGRESS=0``).

    Parameters
    ----------
    layers : iterable of Tensor
        ``M_1..M_L`` [batch, n, n], applied in that order.
    acc : SpectrumAccumulator
        The products to extend (updated in place).
    L : int
        Number of layers in ``layers``.
    depths : iterable of int
        Depths (counted from the first layer pushed here) at which to read the spectrum.
    k : int or None
        How many log-singular values to keep, largest first (in [1, n]; None: all n).
    reorth_every : int or None
        Layers multiplied together between two QR steps (>= 1); None chooses it
        adaptively (:class:`QRInterval`).
    tol : float
        Accuracy of the adaptive QR interval (> 0; default 1e-10).
    %(progress)s
    desc : str
        Label of the progress bar.

    Returns
    -------
    spectra : list of Tensor
        One [batch, k] log-spectrum per depth in ``depths`` reached, in increasing order.
    """
    interval = QRInterval(reorth_every, tol=tol, dtype=acc.a.dtype)
    wanted = set(depths)
    it = progress_bar(layers, total=L, desc=desc, enable=progress)
    out: list[Tensor] = []
    chunk: list[Tensor] = []  # the chunk's layers, kept for a redo (adaptive only)
    # The chunk's layers are applied one by one to the frame (Z [batch, n, r]) when some
    # directions are dead (r < n: cheaper), else multiplied together (P) and applied at the
    # step, where the frame in Householder form needs not be formed.
    Z: Tensor | None = None
    P: Tensor | None = None
    bound: Tensor | None = None
    count = 0
    for l, M in enumerate(it, start=1):
        if count == 0:
            narrow = acc.house is None or acc.live() < M.shape[-1]
        if narrow:
            Z = M @ (acc.frame() if Z is None else Z)
        else:
            P = M if P is None else M @ P
        live = _live_rows(M)
        bound = live if bound is None else torch.minimum(bound, live)
        count += 1
        if interval.adaptive:
            chunk.append(M)
        if count >= interval.size or l in wanted or l == L:
            before = acc.copy()
            scale = _layer_scale(M) if count == 1 else None
            spread = _spread(acc.step(Z if narrow else acc.times_frame(P), count, bound, scale))
            if interval.must_redo(spread, count):
                acc.restore(before)
                for layer in chunk:
                    acc.push(layer, 1, _live_rows(layer))
            interval.observe(spread, count)
            Z, P, bound, chunk, count = None, None, None, [], 0
        if l in wanted:
            out.append(acc.log_svdvals(k))
    return out


@shared_doc
def accumulate_factors(factors: Iterable[tuple[Tensor, Tensor]], acc: SpectrumAccumulator,
                       L: int, *, depths: Iterable[int] = (), k: int | None = None,
                       below: float | None = NEGLECT, progress: bool | None = None,
                       desc: str = "layers") -> list[Tensor]:
    """Push ``L`` triangular factors into ``acc``; log-spectra at ``depths`` ([batch, k] each).

    The factor path of :func:`accumulate`: ``factors`` yields ``(R_l, m_l)`` as
    :func:`fgln.products.sampling.iter_factors` does, and each is one
    :meth:`SpectrumAccumulator.push_factor` (no QR step: the factors are triangular already).
    Where only the top ``k`` values are read (``k`` given) and ``factors`` takes a width
    (a generator, as :func:`~fgln.products.sampling.iter_factors`), the product keeps only
    the rows within ``below`` nats of its ``k``-th (:meth:`SpectrumAccumulator.kept_rows`),
    and the next factor is drawn on those rows alone; ``below=None`` keeps every row.

    Parameters
    ----------
    factors : iterable of tuple of Tensor
        ``(R_l [batch, w, w], m_l [batch])`` for l = 1..L, applied in that order.
    acc : SpectrumAccumulator
        The products to extend (updated in place).
    L : int
        Number of factors in ``factors``.
    depths : iterable of int
        Depths (counted from the first factor pushed here) at which to read the spectrum.
    k : int or None
        How many log-singular values to keep, largest first (in [1, n]; None: all n).
    below : float or None
        With ``k``: nats under the ``k``-th row past which rows are dropped (default
        :data:`NEGLECT`); None keeps every row.
    %(progress)s
    desc : str
        Label of the progress bar.

    Returns
    -------
    spectra : list of Tensor
        One [batch, k] log-spectrum per depth in ``depths`` reached, in increasing order.
    """
    wanted = set(depths)
    factors = iter(factors)
    send = getattr(factors, "send", None)
    drop = k is not None and below is not None and send is not None
    out: list[Tensor] = []
    for l in progress_bar(range(1, L + 1), total=L, desc=desc, enable=progress):
        R, m = (next(factors) if l == 1 or not drop else send(acc.kept_rows(k, below)))
        acc.push_factor(R, m)
        if l in wanted:
            out.append(acc.log_svdvals(k))
    return out
