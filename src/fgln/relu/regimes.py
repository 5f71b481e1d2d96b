"""Closed forms for ReLU Jacobians at initialization and the measurements on pairs of inputs
(the book's chapter 9).

* the three regimes of ``J = W_L D_{L-1} ... D_1 W_1`` with Bernoulli(1/2) gates (which a ReLU
  network's J(x) follows exactly at one input, :mod:`fgln.relu`): the large-width moment law
  (:func:`psg_variance`), the log-normal law of ``||J u||^2`` (:func:`lognorm_law`, exact;
  :func:`lognorm_leading_order`, its leading order in 1/n); the Lyapunov spectrum is
  :func:`fgln.theory.exponents.lyapunov_exponents`;
* two inputs through one network (a multi-mode FGLN, Definition 4.3): shared gates
  (:func:`arccos_shared_fraction`, :func:`input_pair_measurements`);
* alignment of ``U_J`` and ``U_{A_l}`` at one input (:func:`relu_alignment`).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from scipy.special import digamma, polygamma
from scipy.stats import binom

from ..base.validation import check_int, check_positive
from ..initialization.alignment import alignment_overlaps
from ..products.sampling import make_generator, sample_network
from ..theory.exponents import finite_depth_constants, lyapunov_exponents
from .jacobians import he_sigma, relu_forward, relu_jacobian

Tensor = torch.Tensor

__all__ = [
    "relu_first_order",
    "lognorm_law",
    "lognorm_leading_order",
    "psg_variance",
    "arccos_shared_fraction",
    "input_pair_measurements",
    "relu_alignment",
]


# --------------------------------------------------------------------------------------
# closed forms for the three regimes
# --------------------------------------------------------------------------------------


def relu_first_order(n: int, L: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Theorem 5.3's first-order prediction for the Jacobian of a bias-free ReLU network at one
    input, ``J = W_L D_{L-1} W_{L-1} ... D_1 W_1`` (gates of probability 1/2, He scale).

    Parameters
    ----------
    n : int
        Width (>= 1).
    L : int
        Depth (>= 1): L - 1 gated layers and an ungated last one.
    k : int
        How many of the largest singular values (1 <= k <= n).

    Returns
    -------
    prediction : numpy.ndarray
        ``E[(1/L) log s_i] ~ gamma_i + (d_i - d_{i-1}) / L``, i = 1..k [k], with the
        layer-averaged exponent ``gamma_i = ((L-1) gamma_i(1/2) + gamma_i(1)) / L``.
    gamma : numpy.ndarray
        The layer-averaged exponents alone [k].
    """
    s = he_sigma(n)
    g = ((L - 1) * lyapunov_exponents(n, 0.5, s, k) + lyapunov_exponents(n, 1.0, s, k)) / L
    d = finite_depth_constants(n, k)
    return g + (d[1:] - d[:-1]) / L, g



def lognorm_law(n: int, L: int, p: float = 0.5, sigma: float | None = None) -> tuple[float, float]:
    """Exact mean and variance of ``log ||J u||^2`` for a fixed unit u, with
    ``J = W_L D_{L-1} ... D_1 W_1`` (independent p-gates, sigma-Ginibre weights).

    One gated layer multiplies ``||v||^2`` by ``sigma^2 chi^2_K``, K ~ Bin(n, p) (conditioned on
    K >= 1), independently of the past; the ungated last layer by ``sigma^2 chi^2_n``. With
    ``E log chi^2_K = log 2 + psi(K/2)`` and ``Var log chi^2_K = psi'(K/2)`` the sum gives
    ``(L-1) (mean, var)_gated + (mean, var)_ungated``. For a ReLU network at one input the
    same law holds exactly (module docstring).

    Parameters
    ----------
    n : int
        Width (>= 1).
    L : int
        Depth (>= 1).
    p : float
        Gate probability (default 1/2).
    sigma : float or None
        Standard deviation of the weights (> 0); None for He's ``sqrt(2/n)``.

    Returns
    -------
    mean, var : float
        Mean and variance of ``log ||J u||^2``.

    Raises
    ------
    TypeError
        If a count is not an integer or ``sigma`` not a number.
    ValueError
        If one of them is out of range.
    """
    n = check_int("n", n, 1)
    L = check_int("L", L, 1)
    sigma = he_sigma(n) if sigma is None else check_positive("sigma", sigma)
    base = math.log(2.0 * sigma * sigma)
    K = np.arange(1, n + 1)
    w = binom.pmf(K, n, p)
    w = w / w.sum()
    psi = digamma(K / 2.0)
    mean_g = base + float(np.sum(w * psi))
    spread = float(np.sum(w * (psi - np.sum(w * psi)) ** 2))
    var_g = float(np.sum(w * polygamma(1, K / 2.0))) + spread
    mean_u = base + float(digamma(n / 2.0))
    var_u = float(polygamma(1, n / 2.0))
    return (L - 1) * mean_g + mean_u, (L - 1) * var_g + var_u


def lognorm_leading_order(n: int, L: int) -> tuple[float, float]:
    """Leading order in 1/n of :func:`lognorm_law` for He weights (``sigma^2 = 2/n``):
    per gated layer mean ``-5/(2n)``, variance ``5/n``; the ungated last layer ``log 2 - 1/n``
    and ``2/n``. With ``beta = (L-1)/n``: mean ``log 2 - 5 beta/2 - 1/n``, variance
    ``5 beta + 2/n`` (the log-normal law of Hanin & Nica for this product).

    Parameters
    ----------
    n : int
        Width (>= 1).
    L : int
        Depth (>= 1).

    Returns
    -------
    mean, var : float
        Leading-order mean and variance of ``log ||J u||^2``.

    Raises
    ------
    TypeError
        If a count is not an integer.
    ValueError
        If one of them is out of range.
    """
    n = check_int("n", n, 1)
    L = check_int("L", L, 1)
    beta = (L - 1) / n
    return math.log(2.0) - 2.5 * beta - 1.0 / n, 5.0 * beta + 2.0 / n


def psg_variance(L: int, p: float = 0.5) -> float:
    """Large-width law (Pennington, Schoenholz & Ganguli): ``m_2 / m_1^2 - 1`` of the squared
    singular values of ``W_L D_{L-1} ... D_1 W_1`` is ``sum_l 1/p_l`` = ``(L-1)/p + 1``
    (``2L - 1`` for ReLU); each gated layer contributes ``1/p``, the ungated last one 1.

    Parameters
    ----------
    L : int
        Depth (>= 1).
    p : float
        Gate probability (> 0; default 1/2).

    Returns
    -------
    variance : float
        ``(L-1)/p + 1``.

    Raises
    ------
    TypeError
        If ``L`` is not an integer or ``p`` not a number.
    ValueError
        If ``L < 1`` or ``p <= 0``.
    """
    L = check_int("L", L, 1)
    return (L - 1) / check_positive("p", p) + 1.0


# --------------------------------------------------------------------------------------
# two inputs: shared gates and subspace overlaps (multi-mode networks, Definition 4.3)
# --------------------------------------------------------------------------------------


def arccos_shared_fraction(theta: float, L: int) -> np.ndarray:
    """Large-width fraction of gates shared by two inputs at angle ``theta``, layers 1..L-1.

    The gates of layer l agree with probability ``1 - theta_{l-1}/pi`` where ``theta_{l-1}`` is
    the angle between ``h_{l-1}(x)`` and ``h_{l-1}(x')``; the angle follows the arc-cosine
    kernel map ``cos theta_l = (sin theta_{l-1} + (pi - theta_{l-1}) cos theta_{l-1}) / pi``
    (Cho & Saul), ``theta_0 = theta``. Returns ndarray[L-1].

    Parameters
    ----------
    theta : float
        Angle between the inputs, in [0, pi].
    L : int
        Depth (>= 2).

    Returns
    -------
    shared : numpy.ndarray
        Fractions of shared gates [L-1], layers 1..L-1.

    Raises
    ------
    ValueError
        If ``theta`` lies outside [0, pi] or ``L < 2``.
    """
    L = check_int("L", L, 2)
    t = float(theta)
    if not 0.0 <= t <= math.pi:
        raise ValueError(f"theta must lie in [0, pi], got {theta}")
    out = []
    for _ in range(L - 1):
        out.append(1.0 - t / math.pi)
        c = (math.sin(t) + (math.pi - t) * math.cos(t)) / math.pi
        t = math.acos(min(1.0, max(-1.0, c)))
    return np.array(out)


def _pair(n: int, theta: float, batch: int, gen: torch.Generator, dtype) -> tuple[Tensor, Tensor]:
    """Unit inputs x, x' [batch, n] at angle theta (uniformly oriented)."""
    g = torch.randn(batch, 2, n, generator=gen, dtype=dtype)
    x = g[:, 0] / torch.linalg.vector_norm(g[:, 0], dim=-1, keepdim=True)
    y = g[:, 1] - (g[:, 1] * x).sum(-1, keepdim=True) * x
    y = y / torch.linalg.vector_norm(y, dim=-1, keepdim=True)
    return x, math.cos(theta) * x + math.sin(theta) * y


def input_pair_measurements(n: int, L: int, theta: float, *, replicates: int, seed: int = 0,
                            ranks: Sequence[int] = (1, 5), sigma: float | None = None,
                            dtype: torch.dtype = torch.float64) -> dict[str, np.ndarray]:
    """One ReLU network, two inputs at angle ``theta``: how much of J(x) and J(x') is shared.

    Returns ``shared`` [replicates, L-1]: fraction of the n gates of layer l equal at x and x';
    ``overlap_r{r}`` [replicates] for r in ``ranks``: ``||U_r(x)^T U_r(x')||_F^2 / r`` with
    ``U_r`` the top-r left singular vectors of the Jacobian (1: same subspace; ``r/n`` on
    average for independent subspaces). Explicit products: moderate L.

    Parameters
    ----------
    n : int
        Width (>= 1).
    L : int
        Depth (>= 2).
    theta : float
        Angle between the inputs, in [0, pi].
    replicates : int
        Independent networks (>= 1).
    seed : int
        Start value of the random stream (>= 0).
    ranks : sequence of int
        Subspace dimensions r (each in [1, n]).
    sigma : float or None
        Standard deviation of the weights (> 0); None for He's ``sqrt(2/n)``.
    dtype : torch.dtype
        Floating type (default float64).

    Returns
    -------
    result : dict of str to numpy.ndarray
        The entries listed above.

    Raises
    ------
    TypeError
        If a count is not an integer or ``sigma`` not a number.
    ValueError
        If one of them is out of range, or ``theta`` outside [0, pi].
    """
    n = check_int("n", n, 1)
    L = check_int("L", L, 2)
    replicates = check_int("replicates", replicates, 1)
    theta = float(theta)
    if not 0.0 <= theta <= math.pi:
        raise ValueError(f"theta must lie in [0, pi], got {theta}")
    sigma = he_sigma(n) if sigma is None else check_positive("sigma", sigma)
    gen = make_generator(check_int("seed", seed, 0))
    x, x2 = _pair(n, theta, replicates, gen, dtype)
    w, _ = sample_network(n, L, 1.0, sigma, batch=replicates, seed=gen, dtype=dtype)
    _, g1 = relu_forward(w, x)
    _, g2 = relu_forward(w, x2)
    out = {"shared": (g1[:, : L - 1] == g2[:, : L - 1]).to(dtype).mean(-1).numpy()}
    U1 = torch.linalg.svd(relu_jacobian(w, x))[0]
    U2 = torch.linalg.svd(relu_jacobian(w, x2))[0]
    for r in ranks:
        r = check_int("ranks", r, 1, n)
        ov = U1[..., :r].mT @ U2[..., :r]
        out[f"overlap_r{r}"] = ((ov ** 2).sum((-1, -2)) / r).numpy()
    return out


def relu_alignment(n: int, L: int, k: int, *, replicates: int, seed: int = 0, gated: bool = False,
                   sigma: float | None = None) -> dict[str, np.ndarray]:
    """Diagonal correlation of the top-left k x k block of ``U_J^T U_{A_l}`` (Section 7's
    ``A_l``), l = 1..L, for ``replicates`` ReLU networks each at its own Gaussian input (the gates
    are ``D_l(x)``), or with ``gated=True`` for networks with independent Bernoulli(1/2) gates.
    Returns ``rho`` [replicates, L] and ``log_sv_J`` [replicates, n]
    (:func:`fgln.initialization.alignment.alignment_overlaps`).

    Parameters
    ----------
    n : int
        Width (>= 1).
    L : int
        Depth (>= 2).
    k : int
        Block size (in [1, n]).
    replicates : int
        Independent networks (>= 1).
    seed : int
        Start value of the random stream (>= 0).
    gated : bool
        Independent Bernoulli(1/2) gates instead of ReLU gates.
    sigma : float or None
        Standard deviation of the weights (> 0); None for He's ``sqrt(2/n)``.

    Returns
    -------
    result : dict of str to numpy.ndarray
        ``rho`` [replicates, L] and ``log_sv_J`` [replicates, n].

    Raises
    ------
    TypeError
        If a count is not an integer or ``sigma`` not a number.
    ValueError
        If one of them is out of range.
    """
    n = check_int("n", n, 1)
    L = check_int("L", L, 2)
    replicates = check_int("replicates", replicates, 1)
    sigma = he_sigma(n) if sigma is None else check_positive("sigma", sigma)
    gen = make_generator(check_int("seed", seed, 0))
    if gated:
        w, g = sample_network(n, L, 0.5, sigma, batch=replicates, seed=gen)
    else:
        x = torch.randn(replicates, n, generator=gen, dtype=torch.float64)
        w, _ = sample_network(n, L, 1.0, sigma, batch=replicates, seed=gen)
        _, g = relu_forward(w, x)
    res = alignment_overlaps(w, g, k)
    return {"rho": res["rho_overlap"].numpy(), "log_sv_J": res["log_sv_J"].numpy()}
