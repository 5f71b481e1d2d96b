"""Balanced masked networks (paper, Proposition 4.5): a masked network meeting the balance
``M_{l+1}^T M_{l+1} = M_l M_l^T`` with ``M_l = D_l W_l D_{l-1}`` exactly
(:func:`balanced_masked_network`), and how far a network is from it (:func:`balance_residuals`).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

from ..base.conventions import shared_doc
from ..base.validation import check_int, check_positive, check_widths, resolve_device
from ..products.sampling import make_generator
from .networks import FixedGatesNetwork

Tensor = torch.Tensor

__all__ = ["balanced_masked_network", "balance_residuals"]


def _orthonormal_on(support: Tensor, r: int, gen: torch.Generator, dtype, device) -> Tensor:
    """[n, r] matrix with orthonormal columns supported on the rows where ``support`` is 1."""
    n = support.shape[0]
    idx = torch.nonzero(support, as_tuple=False).squeeze(-1)
    q, rr = torch.linalg.qr(torch.randn(len(idx), r, generator=gen, dtype=dtype, device=device))
    q = q * torch.sign(torch.diagonal(rr)).where(torch.diagonal(rr) != 0,
                                                  torch.ones((), dtype=dtype, device=device))
    out = torch.zeros(n, r, dtype=dtype, device=device)
    out[idx] = q
    return out


@shared_doc
def balanced_masked_network(widths: Sequence[int], gates: Sequence[Tensor], *,
                            rank: int | None = None, scale: float = 1.0,
                            seed: int | torch.Generator | None = 0,
                            dtype: torch.dtype = torch.float64,
                            device="cpu") -> FixedGatesNetwork:
    """A masked network meeting Proposition 4.5's balance condition exactly.

    ``W_l = Q_l S Q_{l-1}^T`` where ``Q_l`` [n_l, r] has orthonormal columns supported on the
    open entries of ``D_l`` (``D_0 = D_L = I``) and ``S = scale * diag(s_1..s_r)`` is shared by
    all layers, with ``s_i`` the singular values of an r x r Ginibre matrix of variance 1/r
    (sorted, in (0, ~2)). Then ``M_l = D_l W_l D_{l-1} = W_l`` and
    ``M_{l+1}^T M_{l+1} = Q_l S^2 Q_l^T = M_l M_l^T``; the end-to-end matrix is
    ``Q_L S^L Q_0^T``. ``rank`` defaults to (and may not exceed) the smallest number of open
    entries, ``min(n_0, n_L)`` included. ``gates`` are the diagonals of D_1..D_{L-1}, 0/1.

    Parameters
    ----------
    widths : sequence of int
        ``[n_0, ..., n_L]``, each >= 1.
    gates : sequence of Tensor
        Diagonals of ``D_1..D_{L-1}`` [n_l], entries 0 or 1.
    rank : int or None
        ``r`` (in [1, smallest open count]); None for the largest possible.
    scale : float
        Factor of the shared singular values (> 0).
    %(seed)s
    dtype : torch.dtype
        Floating type (default float64).
    device : str or torch.device
        ``"auto"``, ``"cpu"`` or ``"cuda"``.

    Returns
    -------
    net : FixedGatesNetwork
        The balanced masked network, end-to-end matrix ``Q_L S^L Q_0^T``.

    Raises
    ------
    TypeError
        If a width or ``rank`` is not an integer, or ``scale`` not a number.
    ValueError
        If the gates are not L - 1 0/1 diagonals of the right sizes, a gate is entirely
        closed, or ``rank``, ``scale`` is out of range.
    """
    widths = check_widths(widths)
    L = len(widths) - 1
    device = resolve_device(device)
    gates = [torch.as_tensor(g, dtype=dtype, device=device) for g in gates]
    if len(gates) != L - 1:
        raise ValueError(f"gates must hold L - 1 = {L - 1} diagonals, got {len(gates)}")
    for i, g in enumerate(gates):
        if g.ndim != 1 or g.shape[0] != widths[i + 1]:
            raise ValueError(f"gates[{i}] must have shape [{widths[i + 1]}], got {tuple(g.shape)}")
        if not bool(((g == 0) | (g == 1)).all()):
            raise ValueError(f"gates[{i}] must have entries in {{0, 1}} (Proposition 4.5 is about "
                             "masked networks)")
    supports = ([torch.ones(widths[0], dtype=dtype, device=device)] + gates
                + [torch.ones(widths[L], dtype=dtype, device=device)])
    open_counts = [int(s.sum()) for s in supports]
    max_rank = min(open_counts)
    if max_rank < 1:
        raise ValueError("a gate is entirely closed: no balanced network of rank >= 1 exists")
    r = max_rank if rank is None else check_int("rank", rank, 1, max_rank)
    scale = check_positive("scale", scale)
    gen = make_generator(seed, device=device)
    s = torch.linalg.svdvals(torch.randn(r, r, generator=gen, dtype=dtype, device=device)
                             / math.sqrt(r)) * scale
    Q = [_orthonormal_on(sup, r, gen, dtype, device) for sup in supports]
    weights = [Q[l] @ (s[:, None] * Q[l - 1].T) for l in range(1, L + 1)]
    return FixedGatesNetwork(weights, gates)


def balance_residuals(net: FixedGatesNetwork) -> Tensor:
    """``||M_{l+1}^T M_{l+1} - M_l M_l^T||_F / ||M_l M_l^T||_F`` for l = 1..L-1 (Proposition
    4.5, ``M_l = D_l W_l D_{l-1}``); shape [L-1].

    Parameters
    ----------
    net : FixedGatesNetwork
        The network.

    Returns
    -------
    residuals : Tensor
        Relative balance residuals [L-1] (empty for L = 1).
    """
    M = [m.detach() for m in net.masked_layers()]
    out = []
    for l in range(len(M) - 1):
        lhs = M[l + 1].T @ M[l + 1]
        rhs = M[l] @ M[l].T
        out.append(torch.linalg.matrix_norm(lhs - rhs) / torch.linalg.matrix_norm(rhs))
    if not out:
        return torch.zeros(0, dtype=net.weights[0].dtype)
    return torch.stack(out)
