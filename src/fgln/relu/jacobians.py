"""Bias-free ReLU networks at initialization: the input-output Jacobian as a gated product.

Model: ``f(x) = W_L relu(W_{L-1} ... relu(W_1 x))`` (L weight layers of width n, L-1 ReLU
layers), Gaussian weights N(0, sigma^2), ``sigma^2 = 2/n`` (He) by default. At an input x the
Jacobian is the fixed-gates product of Definition 4.1,

    J(x) = W_L D_{L-1}(x) W_{L-1} ... D_1(x) W_1,   D_l(x) = diag 1[W_l h_{l-1}(x) > 0],

with ``h_0 = x``, ``h_l = relu(W_l h_{l-1})``; ``J(x) x = f(x)`` (positive homogeneity).

* :func:`relu_forward`, :func:`relu_jacobian`: output, gates and Jacobian of given weights.
* :func:`iter_relu_layers`: the layers ``D_l(x) W_l`` of fresh networks drawn one at a time
  (weights through :func:`fgln.products.sampling.iter_network`), for the stable product code.
* :func:`relu_log_spectra`: exact log-singular values of J(x) (exact zeros as ``-inf``)
  through :func:`fgln.products.accumulator.accumulate`, never by differentiating through depth.
* :func:`relu_products`: the same together with ``log ||J(x) u||^2`` for a fixed unit u and
  the moments of the squared singular values (the three regimes of the book's chapter 9).

Law of J(x) (derived in chapter 9): for one input x, J(x) has exactly the law of the product
with independent Bernoulli(1/2) gates, because ``S_l D_l W_l`` with an independent random
sign diagonal ``S_l`` has the law of an independently gated Gaussian layer whatever the
direction that sets the gate.
"""
from __future__ import annotations

import math
from typing import Iterator, Sequence

import numpy as np
import torch

from ..base.validation import check_int, check_positive
from ..products.accumulator import SpectrumAccumulator, accumulate
from ..products.sampling import Seed, iter_network, make_generator, network_layers

Tensor = torch.Tensor

__all__ = [
    "he_sigma",
    "relu_forward",
    "relu_jacobian",
    "iter_relu_layers",
    "relu_log_spectra",
    "relu_products",
]


def he_sigma(n: int) -> float:
    """``sqrt(2/n)``: the weight scale that keeps ``E||h_l||^2`` constant through ReLU layers.

    Parameters
    ----------
    n : int
        Width (>= 1).

    Returns
    -------
    sigma : float
        ``sqrt(2/n)``.
    """
    return math.sqrt(2.0 / check_int("n", n, 1))


def _check_weights(weights: Tensor) -> tuple[int, int, int]:
    if not isinstance(weights, Tensor):
        raise TypeError(f"weights must be a torch.Tensor, got {type(weights).__name__}")
    if weights.ndim != 4 or weights.shape[-1] != weights.shape[-2]:
        raise ValueError(f"weights must have shape [batch, L, n, n], got {tuple(weights.shape)}")
    b, L, n, _ = weights.shape
    return b, L, n


def _check_inputs(x: Tensor, batch: int, n: int) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.shape != (batch, n):
        raise ValueError(f"x must have shape [batch, n] = {(batch, n)}, got {tuple(x.shape)}")
    return x


def relu_forward(weights: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    """``(f(x) [batch, n], gates [batch, L, n])`` of bias-free ReLU networks.

    ``weights`` [batch, L, n, n] (``weights[:, l-1] = W_l``), ``x`` [batch, n]. ``gates[:, l-1]``
    is the diagonal of ``D_l(x)`` for l < L and ones for l = L (``D_L = I``: no ReLU after the
    last layer), the layout of :func:`fgln.products.sampling.sample_network`.

    Parameters
    ----------
    weights : Tensor
        ``W_1..W_L`` [batch, L, n, n].
    x : Tensor
        Inputs [batch, n].

    Returns
    -------
    f : Tensor
        Outputs [batch, n].
    gates : Tensor
        Gate diagonals ``D_l(x)`` [batch, L, n] (ones at l = L).

    Raises
    ------
    TypeError
        If ``weights`` or ``x`` is not a tensor.
    ValueError
        If their shapes are wrong.
    """
    b, L, n = _check_weights(weights)
    h = _check_inputs(x, b, n).to(weights.dtype)
    gates = torch.ones(b, L, n, dtype=weights.dtype, device=weights.device)
    for l in range(L - 1):
        pre = (weights[:, l] @ h[..., None])[..., 0]
        gates[:, l] = (pre > 0).to(weights.dtype)
        h = gates[:, l] * pre
    return (weights[:, L - 1] @ h[..., None])[..., 0], gates


def relu_jacobian(weights: Tensor, x: Tensor) -> Tensor:
    """``J(x) = W_L D_{L-1}(x) ... D_1(x) W_1`` [batch, n, n] (explicit product; moderate L).

    Parameters
    ----------
    weights : Tensor
        ``W_1..W_L`` [batch, L, n, n].
    x : Tensor
        Inputs [batch, n].

    Returns
    -------
    J : Tensor
        [batch, n, n].

    Raises
    ------
    TypeError
        If ``weights`` or ``x`` is not a tensor.
    ValueError
        If their shapes are wrong.
    """
    _, gates = relu_forward(weights, x)
    layers = network_layers(weights, gates, "fgln")
    J = layers[:, 0]
    for l in range(1, layers.shape[1]):
        J = layers[:, l] @ J
    return J


def iter_relu_layers(n: int, L: int, *, batch: int = 1, sigma: float | None = None,
                     seed: Seed = None, dtype: torch.dtype = torch.float64,
                     device=None, inputs: Tensor | None = None,
                     probe: Tensor | None = None, log_norms: list | None = None,
                     ) -> Iterator[Tensor]:
    """Yield ``D_l(x) W_l`` (l < L) and ``W_L`` [batch, n, n] for ``batch`` fresh networks.

    One generator seeded by ``seed`` draws the inputs ``x ~ N(0, I_n)`` (unless ``inputs``
    [batch, n] is given) and then the weights through :func:`fgln.products.sampling.iter_network`
    (``p = 1``, ``sigma`` default ``sqrt(2/n)``). The forward state is renormalised at every
    layer (gates do not depend on the scale of h), so any depth is safe. With ``probe``
    [batch, n] (unit vectors) and a list ``log_norms``, the generator also pushes
    ``log ||D_l W_l v||^2 / ||v||^2`` [batch] per layer into ``log_norms`` (their sum is
    ``log ||J(x) u||^2``), without forming any product.

    Parameters
    ----------
    n : int
        Width (>= 1).
    L : int
        Depth (>= 1).
    batch : int
        Networks drawn at once (>= 1).
    sigma : float or None
        Standard deviation of the weights (> 0); None for He's ``sqrt(2/n)``.
    seed : int, torch.Generator or None
        Start value of the random stream (>= 0), a generator, or None for a fresh seed.
    dtype : torch.dtype
        Floating type (default float64).
    device : str, torch.device or None
        Where the tensors live (None: CPU).
    inputs : Tensor or None
        Inputs x [batch, n]; None draws them.
    probe : Tensor or None
        Unit vectors [batch, n] whose growth is pushed into ``log_norms``.
    log_norms : list or None
        Receives one [batch] tensor per layer when ``probe`` is given.

    Yields
    ------
    M : Tensor
        ``D_l(x) W_l`` (l < L), then ``W_L`` [batch, n, n].

    Raises
    ------
    TypeError
        If a count is not an integer or ``sigma`` not a number.
    ValueError
        If one of them is out of range.
    """
    n = check_int("n", n, 1)
    L = check_int("L", L, 1)
    batch = check_int("batch", batch, 1)
    sigma = he_sigma(n) if sigma is None else check_positive("sigma", sigma)
    device = torch.device("cpu") if device is None else torch.device(device)
    gen = make_generator(seed, device)
    if inputs is None:
        h = torch.randn(batch, n, generator=gen, dtype=dtype, device=device)
    else:
        h = _check_inputs(inputs, batch, n).to(dtype=dtype, device=device)
    v = None if probe is None else _check_inputs(probe, batch, n).to(dtype=dtype, device=device)
    for l, (w, _) in enumerate(iter_network(n, L, 1.0, sigma, batch=batch, seed=gen,
                                            dtype=dtype, device=device), start=1):
        if l < L:
            pre = (w @ h[..., None])[..., 0]
            gate = (pre > 0).to(dtype)
            h = gate * pre
            h = h / torch.linalg.vector_norm(h, dim=-1, keepdim=True).clamp_min(
                torch.finfo(dtype).tiny)
            M = gate[..., :, None] * w
        else:
            M = w
        if v is not None:
            v = (M @ v[..., None])[..., 0]
            nv = torch.linalg.vector_norm(v, dim=-1)
            log_norms.append(2.0 * torch.log(nv))
            v = v / nv.clamp_min(torch.finfo(dtype).tiny)[:, None]
        yield M


def _depths(depths: Sequence[int] | None, L: int) -> list[int]:
    if depths is None:
        return [L]
    ds = sorted({check_int("depths", d, 1, L) for d in depths})
    if not ds:
        raise ValueError("depths must not be empty")
    return ds


def relu_log_spectra(n: int, L: int, *, replicates: int, seed: Seed = 0,
                     dtype: torch.dtype = torch.float64, device=None,
                     sigma: float | None = None, k: int | None = None,
                     depths: Sequence[int] | None = None) -> Tensor:
    """Log-singular values of ``J(x)`` for ``replicates`` independent networks and inputs.

    Returns [replicates, k] (``k`` default n, largest first, exact zeros ``-inf``) at depth L, or
    [replicates, len(depths), k] for the partial products ``D_l W_l ... D_1 W_1`` at ``depths``
    (entry L is J itself). Computed by the package's log-scaled QR product
    (:func:`fgln.products.accumulator.accumulate`), exact at any depth.

    Parameters
    ----------
    n : int
        Width (>= 1).
    L : int
        Depth (>= 1).
    replicates : int
        Independent networks (>= 1).
    seed : int, torch.Generator or None
        Start value of the random stream (>= 0), a generator, or None for a fresh seed.
    dtype : torch.dtype
        Floating type (default float64).
    device : str, torch.device or None
        Where the tensors live (None: CPU).
    sigma : float or None
        Standard deviation of the weights (> 0); None for He's ``sqrt(2/n)``.
    k : int or None
        How many singular values, largest first (in [1, n]; None: all).
    depths : sequence of int or None
        Depths in [1, L] (None: L only, without the depth axis).

    Returns
    -------
    log_s : Tensor
        [replicates, k], or [replicates, len(depths), k].

    Raises
    ------
    TypeError
        If a count is not an integer or ``sigma`` not a number.
    ValueError
        If one of them is out of range.
    """
    replicates = check_int("replicates", replicates, 1)
    n = check_int("n", n, 1)
    L = check_int("L", L, 1)
    k = n if k is None else check_int("k", k, 1, n)
    ds = _depths(depths, L)
    dev = torch.device("cpu") if device is None else torch.device(device)
    acc = SpectrumAccumulator.start(replicates, n, dtype=dtype, device=dev)
    layers = iter_relu_layers(n, L, batch=replicates, sigma=sigma, seed=seed, dtype=dtype,
                              device=dev)
    out = torch.stack(accumulate(layers, acc, L, depths=ds, k=k), 1)
    return out[:, 0] if depths is None else out


def relu_products(n: int, L: int, *, replicates: int, seed: Seed = 0, gated: bool = False,
                  sigma: float | None = None, k: int | None = None, spectrum: bool = True,
                  dtype: torch.dtype = torch.float64) -> dict[str, np.ndarray]:
    """Spectra and probe norms of ``replicates`` ReLU Jacobians J(x) (or, with ``gated=True``,
    of products ``W_L D_{L-1} ... D_1 W_1`` with independent Bernoulli(1/2) gates).

    Returns numpy arrays: ``logsv`` [replicates, k] (``spectrum=True``), ``lognorm``
    [replicates]: ``log ||J u||^2`` for the fixed unit vector ``u = e_1`` (independent of x),
    ``m1``, ``m2`` [replicates]: ``(1/n) sum_i s_i^2`` and ``(1/n) sum_i s_i^4`` (computed from
    the log-spectrum, with ``spectrum=True``). ``seed`` fixes networks, inputs and gates.

    Parameters
    ----------
    n : int
        Width (>= 1).
    L : int
        Depth (>= 1).
    replicates : int
        Independent networks (>= 1).
    seed : int, torch.Generator or None
        Start value of the random stream (>= 0), a generator, or None for a fresh seed.
    gated : bool
        Independent Bernoulli(1/2) gates instead of ReLU gates.
    sigma : float or None
        Standard deviation of the weights (> 0); None for He's ``sqrt(2/n)``.
    k : int or None
        How many singular values, largest first (in [1, n]; None: all).
    spectrum : bool
        Also compute the log-spectrum (``logsv``, ``m1``, ``m2``).
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
        If one of them is out of range.
    """
    replicates = check_int("replicates", replicates, 1)
    n = check_int("n", n, 1)
    L = check_int("L", L, 1)
    sigma_ = he_sigma(n) if sigma is None else check_positive("sigma", sigma)
    probe = torch.zeros(replicates, n, dtype=dtype)
    probe[:, 0] = 1.0
    norms: list[Tensor] = []
    if gated:
        gen = make_generator(seed)
        layers = _gated_with_probe(n, L, replicates, sigma_, gen, dtype, probe, norms)
    else:
        layers = iter_relu_layers(n, L, batch=replicates, sigma=sigma_, seed=seed, dtype=dtype,
                                  probe=probe, log_norms=norms)
    out: dict[str, np.ndarray] = {}
    if spectrum:
        k = n if k is None else check_int("k", k, 1, n)
        acc = SpectrumAccumulator.start(replicates, n, dtype=dtype)
        accumulate(layers, acc, L)
        full = acc.log_svdvals()
        out["logsv"] = full[:, :k].numpy()
        s2 = torch.exp(2.0 * full)
        out["m1"] = s2.mean(-1).numpy()
        out["m2"] = (s2 * s2).mean(-1).numpy()
    else:
        for _ in layers:
            pass
    out["lognorm"] = torch.stack(norms, 0).sum(0).numpy()
    return out


def _gated_with_probe(n, L, batch, sigma, gen, dtype, probe, norms) -> Iterator[Tensor]:
    """Layers ``D_l W_l`` (l < L, independent Bernoulli(1/2) gates) and ``W_L``, pushing the
    probe's log growth into ``norms`` (as :func:`iter_relu_layers`)."""
    v = probe
    for l, (w, d) in enumerate(iter_network(n, L, 0.5, sigma, batch=batch, seed=gen,
                                            dtype=dtype), start=1):
        M = d[..., :, None] * w if l < L else w
        v = (M @ v[..., None])[..., 0]
        nv = torch.linalg.vector_norm(v, dim=-1)
        norms.append(2.0 * torch.log(nv))
        v = v / nv.clamp_min(torch.finfo(dtype).tiny)[:, None]
        yield M
