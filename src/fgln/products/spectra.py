"""Exact log-singular values and QR Lyapunov estimates of deep gated products (Section 5).

Every function here runs the one QR loop of :func:`fgln.products.accumulator.accumulate`,
either on a stack of layers in memory or on layers drawn one at a time by
:func:`fgln.products.sampling.iter_layers`
(memory O(batch n^2) whatever the depth; same seed, same numbers as the in-memory path).
"""
from __future__ import annotations

from typing import Iterable, Sequence

import torch

from ..base.validation import check_int, check_layers, check_network
from .accumulator import SpectrumAccumulator, accumulate
from .sampling import Seed, iter_layers

Tensor = torch.Tensor

__all__ = [
    "log_singular_values",
    "log_spectra_by_depth",
    "stream_log_spectra",
    "lyapunov_estimates",
    "stream_lyapunov_estimates",
]


def _as_depths(depths: Iterable[int] | None, L: int) -> list[int]:
    if depths is None:
        return list(range(1, L + 1))
    ds = sorted({int(d) for d in depths})
    if not ds or ds[0] < 1 or ds[-1] > L:
        raise ValueError(f"depths must lie in [1, {L}], got {depths!r}")
    return ds


def _spectra(layers: Iterable[Tensor], L: int, batch: int, n: int, depths: list[int],
             k: int | None, reorth_every: int | None, dtype, device, method: str,
             progress: bool = False) -> Tensor:
    if k is not None:
        k = check_int("k", k, 1, n)
    acc = SpectrumAccumulator.start(batch, n, dtype=dtype, device=device, method=method)
    out = accumulate(layers, acc, L, depths=depths, k=k, reorth_every=reorth_every,
                     progress=progress)
    return torch.stack(out, 1)


def _growth(layers: Iterable[Tensor], L: int, batch: int, n: int, reorth_every: int | None,
            tol: float, dtype, device, method: str, progress: bool = False) -> Tensor:
    acc = SpectrumAccumulator.start(batch, n, dtype=dtype, device=device, method=method,
                                    spectrum=False)
    # tol bounds the error of the exponents, i.e. of the growth divided by L
    accumulate(layers, acc, L, reorth_every=reorth_every, tol=tol * L, progress=progress)
    return acc.growth / L


def _unbind(layers: Tensor) -> Iterable[Tensor]:
    return (layers[:, l] for l in range(layers.shape[1]))


def log_singular_values(layers: Tensor, *, k: int | None = None, reorth_every: int | None = None,
                        method: str = "auto") -> Tensor:
    """Log-singular values of ``M_L ... M_1`` for ``layers`` [batch, L, n, n].

    Returns [batch, k] (default k = n), largest first, exact zeros as ``-inf``.
    ``reorth_every``: layers multiplied together between two QR steps; ``None`` (default)
    chooses it from the growth measured along the way, keeping every finite value within
    about 1e-10 of the one-layer-per-step result (:class:`fgln.products.accumulator.QRInterval`).

    Parameters
    ----------
    layers : Tensor
        ``M_1..M_L`` [batch, L, n, n].
    k : int or None
        How many log-singular values to keep, largest first (in [1, n]; None: all n).
    reorth_every : int or None
        Layers multiplied together between two QR steps (>= 1); None chooses it adaptively
        (:class:`fgln.products.accumulator.QRInterval`).
    method : {"auto", "householder", "cholqr"}
        QR of a step: LAPACK Householder, CholeskyQR2 (fast on GPUs), or ``"auto"``
        (cholqr on CUDA, householder elsewhere).

    Returns
    -------
    log_s : Tensor
        ``log s_1 >= ... >= log s_k`` of the product [batch, k]; ``-inf`` for exact zeros.

    Raises
    ------
    ValueError
        If ``layers`` is not [batch, L, n, n], ``k`` lies outside [1, n] or ``method`` is
        unknown.
    """
    b, L, n = check_layers(layers)
    return _spectra(_unbind(layers), L, b, n, [L], k, reorth_every, layers.dtype,
                    layers.device, method)[:, 0]


def log_spectra_by_depth(layers: Tensor, *, depths: Sequence[int] | None = None,
                         k: int | None = None, reorth_every: int | None = None,
                         method: str = "auto") -> Tensor:
    """Log-spectra of the partial products ``M_l ... M_1`` at ``depths`` in one pass.

    Returns [batch, len(depths), k]; ``depths`` defaults to 1..L (a QR step at every
    layer); ``reorth_every`` as in :func:`log_singular_values` between wanted depths.

    Parameters
    ----------
    layers : Tensor
        ``M_1..M_L`` [batch, L, n, n].
    depths : sequence of int or None
        Depths in [1, L] at which to read the spectrum (default 1..L; sorted,
        duplicates dropped).
    k : int or None
        How many log-singular values to keep, largest first (in [1, n]; None: all n).
    reorth_every : int or None
        Layers multiplied together between two QR steps (>= 1); None chooses it adaptively
        (:class:`fgln.products.accumulator.QRInterval`).
    method : {"auto", "householder", "cholqr"}
        QR of a step: LAPACK Householder, CholeskyQR2 (fast on GPUs), or ``"auto"``
        (cholqr on CUDA, householder elsewhere).

    Returns
    -------
    log_s : Tensor
        Log-singular values of ``M_l ... M_1`` [batch, len(depths), k], largest first,
        ``-inf`` for exact zeros.

    Raises
    ------
    ValueError
        If ``layers`` is not [batch, L, n, n], a depth lies outside [1, L], ``k`` outside
        [1, n], or ``method`` is unknown.
    """
    b, L, n = check_layers(layers)
    return _spectra(_unbind(layers), L, b, n, _as_depths(depths, L), k, reorth_every,
                    layers.dtype, layers.device, method)


def stream_log_spectra(n: int, L: int, p: float = 1.0, sigma: float | None = None, *,
                       batch: int = 1, min_rank: int | None = None, seed: Seed = None,
                       depths: Sequence[int] | None = None, k: int | None = None,
                       reorth_every: int | None = None, dtype=torch.float64, device="cpu",
                       convention: str = "section5", progress: bool = False,
                       method: str = "auto") -> Tensor:
    """:func:`fgln.products.sampling.sample_layers` + :func:`log_spectra_by_depth`, drawing layers
    one at a time. Returns [batch, len(depths), k]; ``depths`` defaults to ``[L]``.

    Memory O(batch n^2) whatever the depth; same seed, same numbers as the in-memory path.

    Parameters
    ----------
    n : int
        Width (>= 1).
    L : int
        Depth: number of layers (>= 1).
    p : float
        Gate probability in (0, 1]; 1 means no gate.
    sigma : float or None
        Standard deviation of the Ginibre entries (> 0); None means ``1/sqrt(n)``.
    batch : int
        Independent products drawn at once, the leading dimension (>= 1).
    min_rank : int or None
        ``r`` of (r, p)-gates (Definition 5.2): gates resampled until their rank is at least
        ``r`` (in [1, n]); None for plain p-gates.
    seed : int, torch.Generator or None
        Start value of the random stream (>= 0), a generator to draw from, or None for a
        fresh random seed.
    depths : sequence of int or None
        Depths in [1, L] at which to read the spectrum (default ``[L]``; sorted,
        duplicates dropped).
    k : int or None
        How many log-singular values to keep, largest first (in [1, n]; None: all n).
    reorth_every : int or None
        Layers multiplied together between two QR steps (>= 1); None chooses it adaptively
        (:class:`fgln.products.accumulator.QRInterval`).
    dtype : torch.dtype
        Floating type of the tensors (default float64).
    device : str or torch.device
        Where the tensors live (default ``"cpu"``).
    convention : {"section5", "fgln"}
        ``"section5"``: every layer gated, ``D_L W_L ... D_1 W_1``; ``"fgln"``
        (Definition 4.1): the last gate is the identity, ``W_L D_{L-1} ... D_1 W_1``.
    progress : bool
        Show a progress bar over the layers (silenced by ``FGLN_PROGRESS=0``).
    method : {"auto", "householder", "cholqr"}
        QR of a step: LAPACK Householder, CholeskyQR2 (fast on GPUs), or ``"auto"``
        (cholqr on CUDA, householder elsewhere).

    Returns
    -------
    log_s : Tensor
        [batch, len(depths), k], largest first, ``-inf`` for exact zeros.

    Raises
    ------
    TypeError
        If ``n``, ``L``, ``batch`` or ``min_rank`` is not an integer or ``p``, ``sigma`` not a
        number.
    ValueError
        If one of them is out of its range, or ``min_rank`` is practically unreachable
        (probability below 1e-9).
    """
    n, L, p, sigma, min_rank = check_network(n, L, p, sigma, min_rank)
    ds = _as_depths([L] if depths is None else depths, L)
    layers = iter_layers(n, L, p, sigma, batch=batch, min_rank=min_rank, seed=seed,
                         dtype=dtype, device=device, convention=convention)
    return _spectra(layers, L, batch, n, ds, k, reorth_every, dtype, device, method, progress)


def lyapunov_estimates(layers: Tensor, *, reorth_every: int | None = None, tol: float = 1e-10,
                       method: str = "auto") -> Tensor:
    """QR estimate of the Lyapunov exponents: ``(1/L) sum log|R_ii|``, [batch, n].

    The classical estimator (Benettin et al.): ``sum_{j<=i} log|R_jj| = log||J e_1 ^ ... ^
    J e_i||``, whose mean is exactly ``L (gamma_1 + ... + gamma_i)`` for layers whose law is
    invariant under right rotations (Ginibre times a gate), so the estimate has no
    finite-depth bias, unlike ``(1/L) log s_{i,L}`` (Theorem 5.3). Cheaper than the exact
    spectrum: no triangular factor is kept. ``reorth_every=None`` (default) chooses the
    number of layers between two QR steps so that the estimates stay within about ``tol`` of
    the one-layer-per-step estimates. Entries past a rank drop are ``-inf``.

    Parameters
    ----------
    layers : Tensor
        ``M_1..M_L`` [batch, L, n, n].
    reorth_every : int or None
        Layers multiplied together between two QR steps (>= 1); None chooses it adaptively
        (:class:`fgln.products.accumulator.QRInterval`).
    tol : float
        Accuracy of the adaptive QR interval (> 0; default 1e-10).
    method : {"auto", "householder", "cholqr"}
        QR of a step: LAPACK Householder, CholeskyQR2 (fast on GPUs), or ``"auto"``
        (cholqr on CUDA, householder elsewhere).

    Returns
    -------
    gamma : Tensor
        Estimates of ``gamma_1..gamma_n`` [batch, n].

    Raises
    ------
    ValueError
        If ``layers`` is not [batch, L, n, n], ``tol`` is not positive or ``method`` is
        unknown.
    """
    b, L, n = check_layers(layers)
    return _growth(_unbind(layers), L, b, n, reorth_every, tol, layers.dtype, layers.device,
                   method)


def stream_lyapunov_estimates(n: int, L: int, p: float = 1.0, sigma: float | None = None, *,
                              batch: int = 1, min_rank: int | None = None, seed: Seed = None,
                              reorth_every: int | None = None, tol: float = 1e-10,
                              dtype=torch.float64, device="cpu",
                              method: str = "auto", progress: bool = False) -> Tensor:
    """:func:`lyapunov_estimates` drawing the layers one at a time ([batch, n]).

    Parameters
    ----------
    n : int
        Width (>= 1).
    L : int
        Depth: number of layers (>= 1).
    p : float
        Gate probability in (0, 1]; 1 means no gate.
    sigma : float or None
        Standard deviation of the Ginibre entries (> 0); None means ``1/sqrt(n)``.
    batch : int
        Independent products drawn at once, the leading dimension (>= 1).
    min_rank : int or None
        ``r`` of (r, p)-gates (Definition 5.2): gates resampled until their rank is at least
        ``r`` (in [1, n]); None for plain p-gates.
    seed : int, torch.Generator or None
        Start value of the random stream (>= 0), a generator to draw from, or None for a
        fresh random seed.
    reorth_every : int or None
        Layers multiplied together between two QR steps (>= 1); None chooses it adaptively
        (:class:`fgln.products.accumulator.QRInterval`).
    tol : float
        Accuracy of the adaptive QR interval (> 0; default 1e-10).
    dtype : torch.dtype
        Floating type of the tensors (default float64).
    device : str or torch.device
        Where the tensors live (default ``"cpu"``).
    method : {"auto", "householder", "cholqr"}
        QR of a step: LAPACK Householder, CholeskyQR2 (fast on GPUs), or ``"auto"``
        (cholqr on CUDA, householder elsewhere).
    progress : bool
        Show a progress bar over the layers (silenced by ``FGLN_PROGRESS=0``).

    Returns
    -------
    gamma : Tensor
        Estimates of ``gamma_1..gamma_n`` [batch, n], ``-inf`` past a rank drop.

    Raises
    ------
    TypeError
        If ``n``, ``L``, ``batch`` or ``min_rank`` is not an integer or ``p``, ``sigma`` not a
        number.
    ValueError
        If one of them is out of its range, or ``min_rank`` is practically unreachable
        (probability below 1e-9).
    """
    n, L, p, sigma, min_rank = check_network(n, L, p, sigma, min_rank)
    layers = iter_layers(n, L, p, sigma, batch=batch, min_rank=min_rank, seed=seed,
                         dtype=dtype, device=device)
    return _growth(layers, L, batch, n, reorth_every, tol, dtype, device, method, progress)
