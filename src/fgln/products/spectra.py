"""Exact log-singular values and QR Lyapunov estimates of deep gated products (Section 5).

Every function here runs the one QR loop of :func:`fgln.products.accumulator.accumulate`,
either on a stack of layers in memory or on layers drawn one at a time by
:func:`fgln.products.sampling.iter_layers`
(memory O(replicates n^2) whatever the depth; same seed, same numbers as the in-memory path),
except :func:`factor_log_spectra`, which draws the QR loop's triangular factors in law
(:func:`fgln.products.sampling.iter_factors`): the same law of spectra, other draws, a
fraction of the cost.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import torch

from ..base.conventions import shared_doc
from ..base.laws import Product, check_product
from ..base.validation import check_int, check_layers, resolve_device
from .accumulator import SpectrumAccumulator, accumulate, accumulate_factors
from .sampling import Seed, iter_factors, iter_layers, make_generator

Tensor = torch.Tensor

__all__ = [
    "as_depths",
    "log_singular_values",
    "log_spectra_by_depth",
    "stream_log_spectra",
    "factor_log_spectra",
    "CPU_BATCH",
    "lyapunov_estimates",
    "stream_lyapunov_estimates",
]


def as_depths(depths: Iterable[int] | None, L: int) -> list[int]:
    """The depths at which to read a product of ``L`` layers: sorted, unique, in [1, L].

    Parameters
    ----------
    depths : iterable of int or None
        Requested depths; None means every depth 1..L.
    L : int
        Depth of the product.

    Returns
    -------
    depths : list of int
        Sorted, duplicates dropped.

    Raises
    ------
    ValueError
        If ``depths`` is empty or a depth lies outside [1, L].
    """
    if depths is None:
        return list(range(1, L + 1))
    ds = sorted({int(d) for d in depths})
    if not ds or ds[0] < 1 or ds[-1] > L:
        raise ValueError(f"depths must lie in [1, {L}], got {depths!r}")
    return ds


def _spectra(layers: Iterable[Tensor], L: int, batch: int, n: int, depths: list[int],
             k: int | None, reorth_every: int | None, dtype, device, method: str,
             progress: bool | None = None) -> Tensor:
    if k is not None:
        k = check_int("k", k, 1, n)
    acc = SpectrumAccumulator.start(n, batch, dtype=dtype, device=device, method=method)
    out = accumulate(layers, acc, L, depths=depths, k=k, reorth_every=reorth_every,
                     progress=progress)
    return torch.stack(out, 1)


def _growth(layers: Iterable[Tensor], L: int, batch: int, n: int, reorth_every: int | None,
            tol: float, dtype, device, method: str, progress: bool | None = None) -> Tensor:
    acc = SpectrumAccumulator.start(n, batch, dtype=dtype, device=device, method=method,
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
    return _spectra(_unbind(layers), L, b, n, as_depths(depths, L), k, reorth_every,
                    layers.dtype, layers.device, method)


@shared_doc
def stream_log_spectra(product: Product, k: int | None = None, replicates: int = 1, *,
                       depths: Sequence[int] | None = None, reorth_every: int | None = None,
                       seed: Seed = 0, dtype=torch.float64, device="cpu",
                       progress: bool | None = None,
                       method: str = "auto") -> Tensor:
    """:func:`fgln.products.sampling.sample_layers` + :func:`log_spectra_by_depth`, drawing
    layers one at a time. Returns [replicates, len(depths), k].

    Memory O(replicates n^2) whatever the depth; same seed, same numbers as the in-memory
    path.

    Parameters
    ----------
    %(product)s
    %(k)s
    %(replicates)s
    depths : sequence of int or None
        Depths in [1, L] at which to read the spectrum (sorted, duplicates dropped); None:
        every depth 1..L.
    reorth_every : int or None
        Layers multiplied together between two QR steps (>= 1); None chooses it adaptively
        (:class:`fgln.products.accumulator.QRInterval`).
    %(seed)s
    %(dtype)s
    %(device)s
    %(progress)s
    method : {"auto", "householder", "cholqr"}
        QR of a step: LAPACK Householder, CholeskyQR2 (fast on GPUs), or ``"auto"``
        (cholqr on CUDA, householder elsewhere).

    Returns
    -------
    log_s : Tensor
        [replicates, len(depths), k], largest first, ``-inf`` for exact zeros.

    Raises
    ------
    TypeError
        If ``product`` is not a Product, or ``k``, ``replicates`` not integers.
    ValueError
        If a depth lies outside [1, L], or ``k``, ``replicates`` out of range.
    """
    ds = as_depths(depths, check_product(product).L)
    replicates = check_int("replicates", replicates, 1)
    device = resolve_device(device)
    layers = iter_layers(product, replicates, seed=seed, dtype=dtype, device=device)
    return _spectra(layers, product.L, replicates, product.n, ds, k, reorth_every, dtype,
                    device, method, progress)


#: Products multiplied together by :func:`factor_log_spectra` on the CPU: the cost per product
#: grows with the batch (memory traffic); Figure 2's products (n = 128, L = 200, top 5) took
#: 84, 99 and 118 ms each in batches of 128, 256 and 512 (2-core x86_64 VM, one thread).
CPU_BATCH = 128


@shared_doc
def factor_log_spectra(product: Product, k: int | None = None, replicates: int = 1, *,
                       depths: Sequence[int] | None = None, seed: Seed = 0,
                       dtype=torch.float64, device="cpu", progress: bool | None = None,
                       ) -> Tensor:
    """Log-spectra of ``J_l = M_l ... M_1`` at ``depths``, from triangular factors drawn in law.

    The spectra of :func:`stream_log_spectra` in law (jointly over the depths), computed
    from :func:`fgln.products.sampling.iter_factors`: no layer is drawn and no QR is taken,
    half the Gaussian draws; with ``k`` given, rows far below the ``k``-th are dropped
    (:func:`fgln.products.accumulator.accumulate_factors`); the readout of each depth is the
    same. On the CPU the products go in batches of :data:`CPU_BATCH`, drawn one after the
    other from the one stream of ``seed``. Different draws from :func:`stream_log_spectra`
    for the same seed.

    Parameters
    ----------
    %(product)s
    %(k)s
    %(replicates)s
    depths : sequence of int or None
        Depths in [1, L] at which to read the spectrum (sorted, duplicates dropped); None:
        every depth 1..L.
    %(seed)s
    %(dtype)s
    %(device)s
    %(progress)s

    Returns
    -------
    log_s : Tensor
        [replicates, len(depths), k], largest first, ``-inf`` for exact zeros.

    Raises
    ------
    TypeError
        If ``product`` is not a Product, or ``k``, ``replicates`` not integers.
    ValueError
        If a depth lies outside [1, L], or ``k``, ``replicates`` out of range.
    """
    ds = as_depths(depths, check_product(product).L)
    replicates = check_int("replicates", replicates, 1)
    n = product.n
    if k is not None:
        k = check_int("k", k, 1, n)
    device = resolve_device(device)
    gen = make_generator(seed, device=device)
    size = replicates if device.type == "cuda" else CPU_BATCH
    parts = []
    for start in range(0, replicates, size):  # one stream: batch after batch
        b = min(size, replicates - start)
        acc = SpectrumAccumulator.start(n, b, dtype=dtype, device=device)
        factors = iter_factors(product, b, seed=gen, dtype=dtype, device=device)
        parts.append(torch.stack(accumulate_factors(factors, acc, product.L, depths=ds, k=k,
                                                    progress=progress), 1))
    return torch.cat(parts)


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


@shared_doc
def stream_lyapunov_estimates(product: Product, replicates: int = 1, *,
                              reorth_every: int | None = None, tol: float = 1e-10,
                              seed: Seed = 0, dtype=torch.float64, device="cpu",
                              progress: bool | None = None, method: str = "auto") -> Tensor:
    """:func:`lyapunov_estimates` drawing the layers one at a time ([replicates, n]).

    Parameters
    ----------
    %(product)s
    %(replicates)s
    reorth_every : int or None
        Layers multiplied together between two QR steps (>= 1); None chooses it adaptively
        (:class:`fgln.products.accumulator.QRInterval`).
    tol : float
        Error bound of the exponents for the adaptive interval (> 0).
    %(seed)s
    %(dtype)s
    %(device)s
    %(progress)s
    method : {"auto", "householder", "cholqr"}
        QR of a step: LAPACK Householder, CholeskyQR2 (fast on GPUs), or ``"auto"``
        (cholqr on CUDA, householder elsewhere).

    Returns
    -------
    gamma : Tensor
        Estimates of ``gamma_1..gamma_n`` [batch, n], ``-inf`` past a rank drop.

    Raises
    ------
    TypeError
        If ``product`` is not a Product or ``replicates`` not an integer.
    ValueError
        If ``replicates < 1`` or ``tol`` is not positive.
    """
    check_product(product)
    replicates = check_int("replicates", replicates, 1)
    device = resolve_device(device)
    layers = iter_layers(product, replicates, seed=seed, dtype=dtype, device=device)
    return _growth(layers, product.L, replicates, product.n, reorth_every, tol, dtype, device,
                   method, progress)
