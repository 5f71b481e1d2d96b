"""Bias-free ReLU networks at initialization: the input-output Jacobian as a gated product.

Model: ``f(x) = W_L relu(W_{L-1} ... relu(W_1 x))`` (L weight layers of width n, L-1 ReLU
layers), Gaussian weights N(0, sigma^2): the law ``LayerLaw.he(n)``, ``sigma^2 = 2/n``. At an
input x the Jacobian is the fixed-gates product of Definition 4.1,

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

from typing import Iterator, Sequence

import numpy as np
import torch

from ..base.conventions import shared_doc
from ..base.laws import Product, check_product
from ..base.validation import check_int, check_layers, resolve_device
from ..products.accumulator import SpectrumAccumulator, accumulate, accumulate_factors
from ..products.partial_products import chain_product
from ..products.sampling import Seed, iter_factors, iter_network, make_generator, network_layers
from ..products.spectra import as_depths

Tensor = torch.Tensor

__all__ = [
    "relu_forward",
    "relu_jacobian",
    "iter_relu_layers",
    "relu_log_spectra",
    "relu_probe_log_norms",
    "relu_products",
]


def _relu_stream(product: Product, replicates: int, seed: Seed, device):
    """A ReLU sampler's start: width, depth, the checked count, the device and the stream."""
    n, L = check_product(product).network().n, product.L
    device = resolve_device(device)
    return n, L, check_int("replicates", replicates, 1), device, make_generator(seed,
                                                                                device=device)


def _check_inputs(x: Tensor, batch: int, n: int) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.shape != (batch, n):
        raise ValueError(f"x must have shape [replicates, n] = {(batch, n)}, got {tuple(x.shape)}")
    return x


def relu_forward(weights: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    """``(f(x) [replicates, n], gates [replicates, L, n])`` of bias-free ReLU networks.

    ``weights`` [replicates, L, n, n] (``weights[:, l-1] = W_l``), ``x`` [replicates, n].
    ``gates[:, l-1]`` is the diagonal of ``D_l(x)`` for l < L and ones for l = L (``D_L = I``:
    no ReLU after the last layer), the layout of :func:`fgln.products.sampling.sample_network`.

    Parameters
    ----------
    weights : Tensor
        ``W_1..W_L`` [replicates, L, n, n].
    x : Tensor
        Inputs [replicates, n].

    Returns
    -------
    f : Tensor
        Outputs [replicates, n].
    gates : Tensor
        Gate diagonals ``D_l(x)`` [replicates, L, n] (ones at l = L).

    Raises
    ------
    TypeError
        If ``weights`` or ``x`` is not a tensor.
    ValueError
        If their shapes are wrong.
    """
    b, L, n = check_layers(weights, "weights")
    h = _check_inputs(x, b, n).to(weights.dtype)
    gates = torch.ones(b, L, n, dtype=weights.dtype, device=weights.device)
    for l in range(L - 1):
        pre = (weights[:, l] @ h[..., None])[..., 0]
        gates[:, l] = (pre > 0).to(weights.dtype)
        h = gates[:, l] * pre
    return (weights[:, L - 1] @ h[..., None])[..., 0], gates


def relu_jacobian(weights: Tensor, x: Tensor) -> Tensor:
    """``J(x) = W_L D_{L-1}(x) ... D_1(x) W_1`` [replicates, n, n] (explicit product; moderate L).

    Parameters
    ----------
    weights : Tensor
        ``W_1..W_L`` [replicates, L, n, n].
    x : Tensor
        Inputs [replicates, n].

    Returns
    -------
    J : Tensor
        [replicates, n, n].

    Raises
    ------
    TypeError
        If ``weights`` or ``x`` is not a tensor.
    ValueError
        If their shapes are wrong.
    """
    _, gates = relu_forward(weights, x)
    return chain_product(network_layers(weights, gates, "fgln").unbind(1))


@shared_doc
def iter_relu_layers(product: Product, replicates: int = 1, *, inputs: Tensor | None = None,
                     probe: Tensor | None = None, log_norms: list | None = None,
                     seed: Seed = 0, dtype: torch.dtype = torch.float64, device="cpu",
                     ) -> Iterator[Tensor]:
    """Yield ``D_l(x) W_l`` (l < L) and ``W_L`` [replicates, n, n] for ``replicates`` networks.

    One generator seeded by ``seed`` draws the inputs ``x ~ N(0, I_n)`` (unless ``inputs``
    [replicates, n] is given) and then the weights through
    :func:`fgln.products.sampling.iter_network` (``p = 1``, the law's ``sigma``). The forward
    state is renormalised at every layer (gates do not depend on the scale of h), so any depth
    is safe. With ``probe`` [replicates, n] (unit vectors) and a list ``log_norms``, the
    generator also pushes
    ``log ||D_l W_l v||^2 / ||v||^2`` [replicates] per layer into ``log_norms`` (their sum is
    ``log ||J(x) u||^2``), without forming any product.

    Parameters
    ----------
    %(product)s
    %(replicates)s
    inputs : Tensor or None
        Inputs x [replicates, n]; None draws them.
    probe : Tensor or None
        Unit vectors [replicates, n] whose growth is pushed into ``log_norms``.
    log_norms : list or None
        Receives one [replicates] tensor per layer when ``probe`` is given.
    %(seed)s
    %(dtype)s
    %(device)s

    Yields
    ------
    M : Tensor
        ``D_l(x) W_l`` (l < L), then ``W_L`` [replicates, n, n].

    Raises
    ------
    TypeError
        If ``product`` is not a Product or ``replicates`` not an integer.
    ValueError
        If the product is not in the convention "fgln", or ``replicates < 1``.
    """
    n, L, batch, device, gen = _relu_stream(product, replicates, seed, device)
    if inputs is None:
        h = torch.randn(batch, n, generator=gen, dtype=dtype, device=device)
    else:
        h = _check_inputs(inputs, batch, n).to(dtype=dtype, device=device)
    v = None if probe is None else _check_inputs(probe, batch, n).to(dtype=dtype, device=device)
    weights = Product(product.law.replace(p=1.0), L)
    for l, (w, _) in enumerate(iter_network(weights, batch, seed=gen, dtype=dtype,
                                            device=device), start=1):
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


@shared_doc
def relu_probe_log_norms(product: Product, replicates: int = 1, *, seed: Seed = 0,
                         dtype: torch.dtype = torch.float64, device="cpu") -> Tensor:
    """``log ||J(x) u||^2`` [replicates] for the fixed unit ``u = e_1`` and inputs
    ``x ~ N(0, I_n)``, drawing of each ``W_l`` only the two columns the network reads.

    The forward pass reads ``W_l`` only through ``W_l h`` (the pre-activation, which sets the
    gate) and the probe only through ``W_l v``. With ``e_1 = h / ||h||`` and ``e_2`` the unit
    part of ``v`` orthogonal to it, ``W_l e_1`` and ``W_l e_2`` are independent
    ``N(0, sigma^2 I_n)`` vectors given everything before layer l (a Gaussian matrix seen in
    an orthonormal frame chosen without it), so ``W_l h = ||h|| W_l e_1`` and
    ``W_l v = (v.e_1) W_l e_1 + ||v - (v.e_1) e_1|| W_l e_2``: the same joint law of gates and
    probe as :func:`iter_relu_layers` with ``probe = e_1``, from ``2 n`` Gaussian draws a
    layer instead of ``n^2`` (other draws than it for the same seed;
    ``tests/test_relu.py`` compares the two and the exact law of
    :func:`fgln.relu.regimes.lognorm_law`). Gates as there: ``D_l = diag(W_l h > 0)`` for
    l < L, the last layer ungated.

    Parameters
    ----------
    %(product)s
    %(replicates)s
    %(seed)s
    %(dtype)s
    %(device)s

    Returns
    -------
    Tensor
        ``log ||J(x) e_1||^2`` [replicates] (``-inf`` where a gate closes on the whole probe).

    Raises
    ------
    TypeError
        If ``product`` is not a Product or ``replicates`` not an integer.
    ValueError
        If the product is not in the convention "fgln", or ``replicates < 1``.
    """
    n, L, batch, device, gen = _relu_stream(product, replicates, seed, device)
    sigma = product.law.scale
    tiny = torch.finfo(dtype).tiny
    h = torch.randn(batch, n, generator=gen, dtype=dtype, device=device)
    h = h / torch.linalg.vector_norm(h, dim=-1, keepdim=True)
    v = torch.zeros(batch, n, dtype=dtype, device=device)
    v[:, 0] = 1.0
    total = torch.zeros(batch, dtype=dtype, device=device)
    for l in range(1, L + 1):
        g = torch.randn(batch, 2, n, generator=gen, dtype=dtype, device=device) * sigma
        alive = (torch.linalg.vector_norm(h, dim=-1) > 0).to(dtype)[:, None]  # h unit or 0
        c = (v * h).sum(-1, keepdim=True)
        perp = torch.linalg.vector_norm(v - c * h, dim=-1, keepdim=True)
        wv = c * g[:, 0] + perp * g[:, 1]
        if l < L:
            pre = alive * g[:, 0]
            gate = (pre > 0).to(dtype)
            h = gate * pre
            h = h / torch.linalg.vector_norm(h, dim=-1, keepdim=True).clamp_min(tiny)
            wv = gate * wv
        nv = torch.linalg.vector_norm(wv, dim=-1)
        total = total + 2.0 * torch.log(nv)
        v = wv / nv.clamp_min(tiny)[:, None]
    return total


def relu_log_spectra(product: Product, k: int | None = None, replicates: int = 1, *,
                     depths: Sequence[int] | None = None, seed: Seed = 0,
                     dtype: torch.dtype = torch.float64, device="cpu") -> Tensor:
    """Log-singular values of ``J(x)`` for ``replicates`` independent networks and inputs.

    Returns [replicates, len(depths), k] (largest first, exact zeros ``-inf``) for the partial
    products ``D_l W_l ... D_1 W_1`` at ``depths`` (entry L is J itself). Computed by the
    package's log-scaled QR product (:func:`fgln.products.accumulator.accumulate`), exact at
    any depth.

    Parameters
    ----------
    %(product)s
    %(k)s
    %(replicates)s
    depths : sequence of int or None
        Depths in [1, L] (None: every depth 1..L).
    %(seed)s
    %(dtype)s
    %(device)s

    Returns
    -------
    log_s : Tensor
        [replicates, len(depths), k].

    Raises
    ------
    TypeError
        If ``product`` is not a Product or a count not an integer.
    ValueError
        If the product is not in the convention "fgln", or a count is out of range.
    """
    n, L = check_product(product).network().n, product.L
    replicates = check_int("replicates", replicates, 1)
    k = n if k is None else check_int("k", k, 1, n)
    ds = as_depths(depths, L)
    dev = resolve_device(device)
    acc = SpectrumAccumulator.start(n, replicates, dtype=dtype, device=dev)
    layers = iter_relu_layers(product, replicates, seed=seed, dtype=dtype, device=dev)
    return torch.stack(accumulate(layers, acc, L, depths=ds, k=k, progress=False), 1)


@shared_doc
def relu_products(product: Product, k: int | None = None, replicates: int = 1, *,
                  gated: bool = False, spectrum: bool = True, seed: Seed = 0,
                  dtype: torch.dtype = torch.float64) -> dict[str, np.ndarray]:
    """Spectra and probe norms of ``replicates`` ReLU Jacobians J(x) (or, with ``gated=True``,
    of products ``W_L D_{L-1} ... D_1 W_1`` with independent Bernoulli(1/2) gates, drawn as
    triangular factors in law: :func:`fgln.products.sampling.iter_factors`).

    Returns numpy arrays: ``logsv`` [replicates, k] (``spectrum=True``), ``lognorm``
    [replicates]: ``log ||J u||^2`` for the fixed unit vector ``u = e_1`` (independent of x;
    with ``spectrum=False`` from :func:`relu_probe_log_norms`, two columns of every layer),
    ``m1``, ``m2`` [replicates]: ``(1/n) sum_i s_i^2`` and ``(1/n) sum_i s_i^4`` (computed from
    the log-spectrum, with ``spectrum=True``). ``seed`` fixes networks, inputs and gates.

    Parameters
    ----------
    %(product)s
    %(k)s
    %(replicates)s
    gated : bool
        Independent gates, open with the law's ``p``, instead of ReLU gates.
    spectrum : bool
        Also compute the log-spectrum (``logsv``, ``m1``, ``m2``).
    %(seed)s
    %(dtype)s

    Returns
    -------
    result : dict of str to numpy.ndarray
        The entries listed above.

    Raises
    ------
    TypeError
        If ``product`` is not a Product or a count not an integer.
    ValueError
        If the product is not in the convention "fgln", or a count is out of range.
    """
    n, L = check_product(product).network().n, product.L
    replicates = check_int("replicates", replicates, 1)
    k = n if k is None else check_int("k", k, 1, n)
    acc = SpectrumAccumulator.start(n, replicates, dtype=dtype, spectrum=spectrum)
    if gated:
        # independent gates: the triangular factors in law (iter_factors); J = Q T with
        # T = R_L ... R_1, so ||J e_1|| = |T_11|, whose log is the first entry of the growth
        accumulate_factors(iter_factors(product, replicates, seed=seed, dtype=dtype), acc, L,
                           progress=False)
        lognorm = 2.0 * acc.growth[:, 0]
    elif not spectrum:
        # the probe alone: two columns of every layer (relu_probe_log_norms)
        lognorm = relu_probe_log_norms(product, replicates, seed=seed, dtype=dtype)
    else:
        probe = torch.zeros(replicates, n, dtype=dtype)
        probe[:, 0] = 1.0
        norms: list[Tensor] = []
        accumulate(iter_relu_layers(product, replicates, probe=probe, log_norms=norms,
                                    seed=seed, dtype=dtype), acc, L, progress=False)
        lognorm = torch.stack(norms, 0).sum(0)
    out: dict[str, np.ndarray] = {}
    if spectrum:
        full = acc.log_svdvals()
        out["logsv"] = full[:, :k].numpy()
        s2 = torch.exp(2.0 * full)
        out["m1"] = s2.mean(-1).numpy()
        out["m2"] = (s2 * s2).mean(-1).numpy()
    out["lognorm"] = lognorm.numpy()
    return out
