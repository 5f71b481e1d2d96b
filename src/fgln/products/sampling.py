"""Random matrices: gated Ginibre layers (Definitions 4.1, 5.1, 5.2), their triangular factors
in law, and Haar orthogonal matrices.

* a *layer* is ``M_l = D_l W_l`` with ``W_l`` a sigma-Ginibre matrix (i.i.d. N(0, sigma^2)
  entries) and ``D_l`` a p-gate (diagonal, i.i.d. Bernoulli(p) entries), optionally an
  (r, p)-gate (a p-gate resampled until its rank is at least r);
* Section 5 convention: ``J_L = D_L W_L ... D_1 W_1`` (every layer gated);
* Definition 4.1 (FGLN) convention: ``J = W_L D_{L-1} ... D_1 W_1`` (last gate is I).

:func:`iter_network` is the single source of randomness for networks: every other sampler
of layers draws through it, so equal seeds give equal matrices whichever path is used.
:func:`iter_factors` draws something else: not the layers, but the triangular factors that
the QR accumulation of their product would produce, with the same joint law (see there).
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from ..base.conventions import shared_doc
from ..base.laws import CONVENTIONS, Product, check_product
from ..base.validation import check_int, resolve_device

Tensor = torch.Tensor
Seed = int | torch.Generator | None

__all__ = [
    "make_generator",
    "iter_network",
    "sample_network",
    "network_layers",
    "sample_layers",
    "iter_layers",
    "iter_factors",
    "haar_orthogonal",
    "haar_from_ginibre",
]


@shared_doc
def make_generator(seed: Seed, *, device="cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded by ``seed`` (fresh entropy if None).

    Parameters
    ----------
    %(seed)s
    %(device)s

    Returns
    -------
    gen : torch.Generator
        ``seed`` itself when it is a generator, else a new one.
    """
    if isinstance(seed, torch.Generator):
        return seed
    gen = torch.Generator(device=resolve_device(device))
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(check_int("seed", seed, 0))
    return gen


def _gaussian(shape: tuple[int, ...], gen: torch.Generator, dtype: torch.dtype,
              device: torch.device) -> Tensor:
    """I.i.d. N(0, 1) entries of ``shape``, drawn from the stream ``gen``.

    On the CPU, torch draws a float64 normal by the Box-Muller transform one entry at a time
    (about 26 ns an entry on the 2-core test machine), while numpy's ziggurat gives the same
    law in about 14 ns: the entries come from a numpy ``Generator`` seeded by one 63-bit draw
    of ``gen``, so that they remain a function of ``gen``'s state and ``gen`` moves on. On
    CUDA, torch's own generator draws them. Used by :func:`iter_factors`; the layers of
    :func:`iter_network` (and so every network the package trains) keep torch's draws."""
    if gen.device.type != "cpu":
        return torch.randn(shape, generator=gen, dtype=dtype, device=device)
    seed = int(torch.randint(0, 2**63 - 1, (), generator=gen))
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    z = torch.from_numpy(np.random.default_rng(seed).standard_normal(shape, dtype=np_dtype))
    return z.to(dtype=dtype, device=device)


def _draw_gate(gen, replicates, n, p, r, dtype, device) -> Tensor:
    """Gate diagonals, shape [replicates, n], entries in {0, 1} (Definitions 5.1, 5.2)."""
    if p == 1.0:
        return torch.ones(replicates, n, dtype=dtype, device=device)
    g = torch.rand(replicates, n, generator=gen, dtype=dtype, device=device) < p
    if r is not None:
        bad = g.sum(-1) < r
        while bool(bad.any()):
            idx = bad.nonzero().squeeze(-1)
            g[idx] = torch.rand(len(idx), n, generator=gen, dtype=dtype, device=device) < p
            bad = g.sum(-1) < r
    return g.to(dtype)


def _stream(product: Product, replicates: int, seed: Seed, device):
    """A sampler's start: the product's law, the checked count, the device and the stream."""
    law = check_product(product).law
    device = resolve_device(device)
    return law, check_int("replicates", replicates, 1), device, make_generator(seed,
                                                                               device=device)


@shared_doc
def iter_network(product: Product, replicates: int = 1, *, columns: int | None = None,
                 seed: Seed = 0, dtype: torch.dtype = torch.float64, device="cpu",
                 ) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield ``(W_l, diag D_l)`` for l = 1..L, shapes [replicates, n, n] and [replicates, n].

    The single source of randomness for networks: every other sampler draws through it,
    so equal seeds give equal matrices whichever path is used. The gates are those of the
    law, whatever the product's convention (:func:`network_layers` applies it). With
    ``columns``, only the first ``columns`` columns of each ``W_l`` are drawn (another
    stream than the full matrices: for a measurement that reads no other column).

    Parameters
    ----------
    %(product)s
    %(replicates)s
    columns : int or None
        Draw ``W_l`` [replicates, n, columns] only (in [1, n]; ``None``: all n columns).
    %(seed)s
    %(dtype)s
    %(device)s

    Yields
    ------
    W : Tensor
        Weights ``W_l`` [replicates, n, n] (or [replicates, n, columns]), i.i.d.
        N(0, sigma^2) entries.
    d : Tensor
        Gate diagonal of ``D_l`` [replicates, n], entries in {0, 1}.

    Raises
    ------
    TypeError
        If ``product`` is not a :class:`~fgln.base.laws.Product` or ``replicates`` not an
        integer.
    ValueError
        If ``replicates < 1``.
    """
    law, replicates, device, gen = _stream(product, replicates, seed, device)
    n, sigma = law.n, law.scale
    cols = n if columns is None else check_int("columns", columns, 1, n)
    for _ in range(product.L):
        w = torch.randn(replicates, n, cols, generator=gen, dtype=dtype, device=device) * sigma
        yield w, _draw_gate(gen, replicates, n, law.p, law.r, dtype, device)


@shared_doc
def sample_network(product: Product, replicates: int = 1, *, seed: Seed = 0,
                   dtype: torch.dtype = torch.float64, device="cpu") -> tuple[Tensor, Tensor]:
    """Weights [replicates, L, n, n] and gate diagonals [replicates, L, n] (gate l+1 at index l).

    The same draws as :func:`iter_network`, stacked.

    Parameters
    ----------
    %(product)s
    %(replicates)s
    %(seed)s
    %(dtype)s
    %(device)s

    Returns
    -------
    weights : Tensor
        ``W_1..W_L`` [replicates, L, n, n].
    gates : Tensor
        Diagonals of ``D_1..D_L`` [replicates, L, n], entries in {0, 1}.
    """
    ws, ds = zip(*iter_network(product, replicates, seed=seed, dtype=dtype, device=device))
    return torch.stack(ws, 1), torch.stack(ds, 1)


def network_layers(weights: Tensor, gates: Tensor, convention: str = "section5") -> Tensor:
    """Layers ``M_l`` [replicates, L, n, n] from weights and gate diagonals.

    ``convention="section5"``: ``M_l = D_l W_l`` for every l, product ``D_L W_L ... D_1 W_1``.
    ``convention="fgln"`` (Definition 4.1): the last gate is the identity, so the product
    is ``W_L D_{L-1} ... D_1 W_1``.

    Parameters
    ----------
    weights : Tensor
        ``W_1..W_L`` [replicates, L, n, n].
    gates : Tensor
        Gate diagonals [replicates, L, n] (``gates[:, l-1]`` is the diagonal of ``D_l``).
    convention : {"section5", "fgln"}
        ``"section5"``: every layer gated, ``D_L W_L ... D_1 W_1``; ``"fgln"``
        (Definition 4.1): the last gate is the identity, ``W_L D_{L-1} ... D_1 W_1``.

    Returns
    -------
    layers : Tensor
        ``M_1..M_L`` [replicates, L, n, n].

    Raises
    ------
    ValueError
        If ``convention`` is neither ``"section5"`` nor ``"fgln"``.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be 'section5' or 'fgln', got {convention!r}")
    g = gates
    if convention == "fgln":
        g = gates.clone()
        g[:, -1] = 1.0
    return g[..., :, None] * weights


@shared_doc
def sample_layers(product: Product, replicates: int = 1, *, seed: Seed = 0,
                  dtype: torch.dtype = torch.float64, device="cpu") -> Tensor:
    """Layers [replicates, L, n, n]; entry ``[:, l]`` is ``M_{l+1} = D_{l+1} W_{l+1}``.

    :func:`sample_network` followed by :func:`network_layers` under the product's convention.

    Parameters
    ----------
    %(product)s
    %(replicates)s
    %(seed)s
    %(dtype)s
    %(device)s

    Returns
    -------
    layers : Tensor
        ``M_1..M_L`` [replicates, L, n, n].
    """
    w, d = sample_network(product, replicates, seed=seed, dtype=dtype, device=device)
    return network_layers(w, d, product.convention)


@shared_doc
def iter_layers(product: Product, replicates: int = 1, *, seed: Seed = 0,
                dtype: torch.dtype = torch.float64, device="cpu") -> Iterator[Tensor]:
    """Stream the layers of :func:`sample_layers` one at a time ([replicates, n, n] each).

    Same seed, same matrices as :func:`sample_layers`; memory O(replicates n^2) at any depth.

    Parameters
    ----------
    %(product)s
    %(replicates)s
    %(seed)s
    %(dtype)s
    %(device)s

    Yields
    ------
    M : Tensor
        ``M_l`` [replicates, n, n], l = 1..L.
    """
    last = check_product(product).L - 1
    for l, (w, d) in enumerate(iter_network(product, replicates, seed=seed, dtype=dtype,
                                            device=device)):
        if product.convention == "fgln" and l == last:
            yield w
        else:
            yield d[..., :, None] * w


@shared_doc
def iter_factors(product: Product, replicates: int = 1, *, seed: Seed = 0,
                 dtype: torch.dtype = torch.float64, device="cpu",
                 ) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield ``(R_l, m_l)``, l = 1..L: triangular factors whose products ``R_l ... R_1`` have
    the joint law of the triangular factors of ``J_l = M_l ... M_1``, for every l at once.

    Write ``J_{l-1} = Q_{l-1} T_{l-1}`` (QR). The Ginibre law is invariant under right
    multiplication by an orthogonal matrix independent of it, so ``G = W_l Q_{l-1}`` is again
    sigma-Ginibre and independent of the past; with ``D_l G = Q_l R_l``, ``J_l = Q_l (R_l
    T_{l-1})``, and the singular values of every ``J_l`` are those of ``R_l ... R_1``. The
    law of ``R_l`` given the gate (Bartlett's decomposition, applied to the ``m_l`` open rows
    of ``D_l G``): rows ``i >= m_l`` vanish; in row ``i < m_l`` (0-based), ``R_ii = sigma
    chi_{m_l - i}`` and the entries right of the diagonal are i.i.d. N(0, sigma^2), all
    independent. Only the gate's rank enters, never which rows it opens.

    A factor costs ``w (w - 1) / 2`` Gaussian and ``w`` chi draws instead of the layer's
    ``n^2`` draws and QR factorisation. Here ``w``, the width of the yielded ``R_l``, is the
    largest rank over the batch of ``R_{l-1} ... R_1`` (``n`` at first; ``min_j m_j`` per
    product): the product's rows past its rank are zero, so only the leading ``w`` columns
    of ``R_l`` act on it. A caller that keeps only the leading ``w'`` rows of the product
    sends that number (``factors.send(w')`` instead of ``next(factors)``): the next factor is
    then drawn on ``min(w, w')`` rows and columns only
    (:func:`fgln.products.accumulator.accumulate_factors` keeps the rows that the top ``k``
    values can feel). Different draws from :func:`iter_network` for the same seed; the same
    law (``tests/test_products.py`` compares the two).

    Parameters
    ----------
    %(product)s
    %(replicates)s
    %(seed)s
    %(dtype)s
    %(device)s

    Yields
    ------
    R : Tensor
        Upper-triangular factor [replicates, w, w], w <= n (see above).
    m : Tensor
        Rank of the gate ``D_l`` [replicates] (long; ``n`` where ``p = 1`` and for the
        ungated last layer of the ``"fgln"`` convention).

    Raises
    ------
    TypeError
        If ``product`` is not a :class:`~fgln.base.laws.Product` or ``replicates`` not an
        integer.
    ValueError
        If ``replicates < 1``.
    """
    law, replicates, device, gen = _stream(product, replicates, seed, device)
    n, sigma = law.n, law.scale
    last = product.L - 1
    rank = torch.full((replicates,), n, dtype=torch.long, device=device)
    width: int | None = None  # rows the caller keeps (sent), None: all
    for l in range(product.L):
        m = _draw_gate(gen, replicates, n, law.p, law.r, dtype, device).sum(-1).round().long()
        if product.convention == "fgln" and l == last:
            m = torch.full_like(m, n)
        w = int(rank.max()) if width is None else max(1, min(int(rank.max()), int(width)))
        ar = torch.arange(w, device=device)
        rows, cols = torch.triu_indices(w, w, 1, device=device)
        R = torch.zeros(replicates, w * w, dtype=dtype, device=device)
        R[:, rows * w + cols] = _gaussian((replicates, rows.numel()), gen, dtype, device)
        R = R.view(replicates, w, w)
        dof = (m[:, None] - ar[None, :]).clamp_min(1).to(dtype)  # chi degrees of freedom
        R.diagonal(dim1=-2, dim2=-1).copy_(
            torch.sqrt(2.0 * torch._standard_gamma(0.5 * dof, generator=gen)))
        R.mul_((ar[None, :] < m[:, None]).to(dtype)[..., None]).mul_(sigma)
        rank = torch.minimum(rank, m).clamp_max(w)
        width = yield R, m


def haar_from_ginibre(G: Tensor) -> Tensor:
    """Orthogonal factor of ``G`` [..., n, n] with the signs of R's diagonal moved into it.

    For a Ginibre ``G`` the result is exactly Haar distributed (Mezzadri's recipe).

    Parameters
    ----------
    G : Tensor
        Square matrices [..., n, n].

    Returns
    -------
    Q : Tensor
        Orthogonal matrices [..., n, n].
    """
    Q, R = torch.linalg.qr(G)
    d = torch.sign(torch.diagonal(R, dim1=-2, dim2=-1))
    return Q * torch.where(d == 0, torch.ones_like(d), d)[..., None, :]


@shared_doc
def haar_orthogonal(n: int, replicates: int | None = None, *, seed: Seed = 0,
                    dtype: torch.dtype = torch.float64) -> Tensor:
    """Haar orthogonal matrices: [n, n], or [replicates, n, n] if ``replicates`` is given.

    Parameters
    ----------
    n : int
        Size (>= 1).
    replicates : int or None
        Number of matrices (>= 1); None for a single unbatched matrix.
    %(seed)s
    %(dtype)s

    Returns
    -------
    Q : Tensor
        [n, n] or [replicates, n, n], Haar distributed (:func:`haar_from_ginibre`).

    Raises
    ------
    TypeError
        If ``n`` or ``replicates`` is not an integer.
    ValueError
        If ``n`` or ``replicates`` is below 1.
    """
    n = check_int("n", n, 1)
    gen = make_generator(seed)
    shape = (n, n) if replicates is None else (check_int("replicates", replicates, 1), n, n)
    return haar_from_ginibre(torch.randn(*shape, generator=gen, dtype=dtype))
