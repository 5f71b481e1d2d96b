"""Random matrices: gated Ginibre layers (Definitions 4.1, 5.1, 5.2) and Haar orthogonal matrices.

* a *layer* is ``M_l = D_l W_l`` with ``W_l`` a sigma-Ginibre matrix (i.i.d. N(0, sigma^2)
  entries) and ``D_l`` a p-gate (diagonal, i.i.d. Bernoulli(p) entries), optionally an
  (r, p)-gate (a p-gate resampled until its rank is at least r);
* Section 5 convention: ``J_L = D_L W_L ... D_1 W_1`` (every layer gated);
* Definition 4.1 (FGLN) convention: ``J = W_L D_{L-1} ... D_1 W_1`` (last gate is I).

:func:`iter_network` is the single source of randomness for networks: every other sampler
draws through it, so equal seeds give equal matrices whichever path is used.
"""
from __future__ import annotations

from typing import Iterator

import torch

from ..base.validation import check_int, check_network

Tensor = torch.Tensor
Seed = int | torch.Generator | None

__all__ = [
    "make_generator",
    "iter_network",
    "sample_network",
    "network_layers",
    "sample_layers",
    "iter_layers",
    "haar_orthogonal",
    "haar_from_ginibre",
]

CONVENTIONS = ("section5", "fgln")


def make_generator(seed: Seed, device="cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded by ``seed`` (a fresh random seed if None).

    Parameters
    ----------
    seed : int, torch.Generator or None
        Start value of the random stream (>= 0), a generator to draw from, or None for a
        fresh random seed.
    device : str or torch.device
        Where the tensors live (default ``"cpu"``).

    Returns
    -------
    gen : torch.Generator
        ``seed`` itself when it is a generator, else a new one.
    """
    if isinstance(seed, torch.Generator):
        return seed
    gen = torch.Generator(device=torch.device(device))
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(check_int("seed", seed, 0))
    return gen


def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be 'section5' or 'fgln', got {convention!r}")


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


def iter_network(n: int, L: int, p: float = 1.0, sigma: float | None = None, *,
                 batch: int = 1, min_rank: int | None = None, seed: Seed = None,
                 dtype: torch.dtype = torch.float64, device="cpu",
                 ) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield ``(W_l, diag D_l)`` for l = 1..L, shapes [batch, n, n] and [batch, n].

    ``sigma`` defaults to ``1/sqrt(n)``; ``p=1`` means no gate; ``min_rank=r`` gives
    (r, p)-gates (Definition 5.2).

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
    dtype : torch.dtype
        Floating type of the tensors (default float64).
    device : str or torch.device
        Where the tensors live (default ``"cpu"``).

    Yields
    ------
    W : Tensor
        Weights ``W_l`` [batch, n, n], i.i.d. N(0, sigma^2) entries.
    d : Tensor
        Gate diagonal of ``D_l`` [batch, n], entries in {0, 1}.

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
    batch = check_int("batch", batch, 1)
    gen = make_generator(seed, device)
    for _ in range(L):
        w = torch.randn(batch, n, n, generator=gen, dtype=dtype, device=device) * sigma
        yield w, _draw_gate(gen, batch, n, p, min_rank, dtype, device)


def sample_network(n: int, L: int, p: float = 1.0, sigma: float | None = None, *,
                   batch: int = 1, min_rank: int | None = None, seed: Seed = None,
                   dtype: torch.dtype = torch.float64, device="cpu") -> tuple[Tensor, Tensor]:
    """Weights [batch, L, n, n] and gate diagonals [batch, L, n] (gate l+1 at index l).

    The same draws as :func:`iter_network`, stacked.

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
    dtype : torch.dtype
        Floating type of the tensors (default float64).
    device : str or torch.device
        Where the tensors live (default ``"cpu"``).

    Returns
    -------
    weights : Tensor
        ``W_1..W_L`` [batch, L, n, n].
    gates : Tensor
        Diagonals of ``D_1..D_L`` [batch, L, n], entries in {0, 1}.

    Raises
    ------
    TypeError
        If ``n``, ``L``, ``batch`` or ``min_rank`` is not an integer or ``p``, ``sigma`` not a
        number.
    ValueError
        If one of them is out of its range, or ``min_rank`` is practically unreachable
        (probability below 1e-9).
    """
    ws, ds = zip(*iter_network(n, L, p, sigma, batch=batch, min_rank=min_rank, seed=seed,
                               dtype=dtype, device=device))
    return torch.stack(ws, 1), torch.stack(ds, 1)


def network_layers(weights: Tensor, gates: Tensor, convention: str = "section5") -> Tensor:
    """Layers ``M_l`` [batch, L, n, n] from weights and gate diagonals.

    ``convention="section5"``: ``M_l = D_l W_l`` for every l, product ``D_L W_L ... D_1 W_1``.
    ``convention="fgln"`` (Definition 4.1): the last gate is the identity, so the product
    is ``W_L D_{L-1} ... D_1 W_1``.

    Parameters
    ----------
    weights : Tensor
        ``W_1..W_L`` [batch, L, n, n].
    gates : Tensor
        Gate diagonals [batch, L, n] (``gates[:, l-1]`` is the diagonal of ``D_l``).
    convention : {"section5", "fgln"}
        ``"section5"``: every layer gated, ``D_L W_L ... D_1 W_1``; ``"fgln"``
        (Definition 4.1): the last gate is the identity, ``W_L D_{L-1} ... D_1 W_1``.

    Returns
    -------
    layers : Tensor
        ``M_1..M_L`` [batch, L, n, n].

    Raises
    ------
    ValueError
        If ``convention`` is neither ``"section5"`` nor ``"fgln"``.
    """
    _check_convention(convention)
    g = gates
    if convention == "fgln":
        g = gates.clone()
        g[:, -1] = 1.0
    return g[..., :, None] * weights


def sample_layers(n: int, L: int, p: float = 1.0, sigma: float | None = None, *,
                  batch: int = 1, min_rank: int | None = None, seed: Seed = None,
                  dtype: torch.dtype = torch.float64, device="cpu",
                  convention: str = "section5") -> Tensor:
    """Layers [batch, L, n, n]; entry ``[:, l]`` is ``M_{l+1} = D_{l+1} W_{l+1}``.

    :func:`sample_network` followed by :func:`network_layers`.

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
    dtype : torch.dtype
        Floating type of the tensors (default float64).
    device : str or torch.device
        Where the tensors live (default ``"cpu"``).
    convention : {"section5", "fgln"}
        ``"section5"``: every layer gated, ``D_L W_L ... D_1 W_1``; ``"fgln"``
        (Definition 4.1): the last gate is the identity, ``W_L D_{L-1} ... D_1 W_1``.

    Returns
    -------
    layers : Tensor
        ``M_1..M_L`` [batch, L, n, n].

    Raises
    ------
    TypeError
        If ``n``, ``L``, ``batch`` or ``min_rank`` is not an integer or ``p``, ``sigma`` not a
        number.
    ValueError
        If one of them is out of its range, or ``min_rank`` is practically unreachable
        (probability below 1e-9).
    """
    w, d = sample_network(n, L, p, sigma, batch=batch, min_rank=min_rank, seed=seed,
                          dtype=dtype, device=device)
    return network_layers(w, d, convention)


def iter_layers(n: int, L: int, p: float = 1.0, sigma: float | None = None, *,
                batch: int = 1, min_rank: int | None = None, seed: Seed = None,
                dtype: torch.dtype = torch.float64, device="cpu",
                convention: str = "section5") -> Iterator[Tensor]:
    """Stream the layers of :func:`sample_layers` one at a time ([batch, n, n] each).

    Same seed, same matrices as :func:`sample_layers`; memory O(batch n^2) at any depth.

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
    dtype : torch.dtype
        Floating type of the tensors (default float64).
    device : str or torch.device
        Where the tensors live (default ``"cpu"``).
    convention : {"section5", "fgln"}
        ``"section5"``: every layer gated, ``D_L W_L ... D_1 W_1``; ``"fgln"``
        (Definition 4.1): the last gate is the identity, ``W_L D_{L-1} ... D_1 W_1``.

    Yields
    ------
    M : Tensor
        ``M_l`` [batch, n, n], l = 1..L.

    Raises
    ------
    TypeError
        If ``n``, ``L``, ``batch`` or ``min_rank`` is not an integer or ``p``, ``sigma`` not a
        number.
    ValueError
        If one of them is out of its range, or ``min_rank`` is practically unreachable
        (probability below 1e-9).
    """
    _check_convention(convention)
    for l, (w, d) in enumerate(iter_network(n, L, p, sigma, batch=batch, min_rank=min_rank,
                                            seed=seed, dtype=dtype, device=device)):
        if convention == "fgln" and l == L - 1:
            yield w
        else:
            yield d[..., :, None] * w


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


def haar_orthogonal(n: int, seed: Seed = None, *, batch: int | None = None,
                    dtype: torch.dtype = torch.float64) -> Tensor:
    """Haar orthogonal matrices: [n, n], or [batch, n, n] if ``batch`` is given.

    Parameters
    ----------
    n : int
        Size (>= 1).
    seed : int, torch.Generator or None
        Start value of the random stream (>= 0), a generator to draw from, or None for a
        fresh random seed.
    batch : int or None
        Number of matrices (>= 1); None for a single unbatched matrix.
    dtype : torch.dtype
        Floating type of the tensors (default float64).

    Returns
    -------
    Q : Tensor
        [n, n] or [batch, n, n], Haar distributed (:func:`haar_from_ginibre`).

    Raises
    ------
    TypeError
        If ``n`` or ``batch`` is not an integer.
    ValueError
        If ``n`` or ``batch`` is below 1.
    """
    n = check_int("n", n, 1)
    gen = make_generator(seed)
    shape = (n, n) if batch is None else (check_int("batch", batch, 1), n, n)
    return haar_from_ginibre(torch.randn(*shape, generator=gen, dtype=dtype))
