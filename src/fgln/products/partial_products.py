"""Partial products of a deep product, both returned as ``(A, B)`` (paper, Sections 6 and 7).

* Section 6, ``J_L = M_L ... M_1``: ``A_l = M_L ... M_{l+1}`` and ``B_l = M_l ... M_1``, so that
  ``J_L = A_l B_l`` (:func:`layer_partial_products`).
* Section 7, ``J = W_L D_{L-1} ... D_1 W_1``: ``A_l = W_L D_{L-1} ... W_{l+1} D_l`` and
  ``B_l = D_{l-1} W_{l-1} ... D_1 W_1``, so that ``J = A_l W_l B_l``
  (:func:`network_partial_products`).

Entries are raw products (no rescaling): use them at moderate depth only; deep log-spectra
come from :mod:`fgln.products.spectra`.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..base.validation import check_layers

Tensor = torch.Tensor

__all__ = ["chain_product", "chain_products", "layer_partial_products", "network_partial_products"]


def chain_product(mats: Sequence[Tensor], gates: Sequence[Tensor | None] | None = None,
                  ) -> Tensor:
    """The full chain ``M_L g_{L-1} M_{L-1} ... g_1 M_1``, multiplied from the right end.

    ``J_1 = M_1`` and ``J_l = M_l (g_{l-1} J_{l-1})``: the one loop behind every end-to-end
    Jacobian of the package (a network's ``J``, a ReLU network's ``J(x)``); differentiable.

    Parameters
    ----------
    mats : sequence of Tensor
        ``M_1..M_L`` [..., n_l, n_{l-1}] (at least one).
    gates : sequence of Tensor or None, or None
        Diagonals ``g_1..g_{L-1}`` [..., n_l]; None (or a None entry) for the identity.

    Returns
    -------
    J : Tensor
        [..., n_L, n_0].

    Raises
    ------
    ValueError
        If ``mats`` is empty or ``gates`` has not ``len(mats) - 1`` entries.
    """
    if len(mats) == 0:
        raise ValueError("mats must hold at least one matrix")
    if gates is not None and len(gates) != len(mats) - 1:
        raise ValueError(f"gates must hold len(mats) - 1 = {len(mats) - 1} entries, "
                         f"got {len(gates)}")
    J = mats[0]
    for l in range(1, len(mats)):
        g = None if gates is None else gates[l - 1]
        J = mats[l] @ (J if g is None else g[..., :, None] * J)
    return J


def chain_products(mats: Sequence[Tensor], gates: Sequence[Tensor | None] | None = None, *,
                   ends: bool = False) -> tuple[list[Tensor], list[Tensor]]:
    """Suffix and prefix products of the chain ``M_L g_{L-1} M_{L-1} ... g_1 M_1``, one pass each.

    ``mats``: ``M_1..M_L`` [..., n_l, n_{l-1}] (leading batch dimensions allowed, rectangular
    factors chaining); ``gates``: the diagonals ``g_1..g_{L-1}`` [..., n_l] between them
    (``None``, or a ``None`` entry, for the identity). With ``S_L = I``,
    ``S_l = (S_{l+1} M_{l+1}) g_l`` and ``P_0 = I``, ``P_l = g_l (M_l P_{l-1})``, returns
    ``A = [S_1..S_L]`` and ``B = [P_0..P_{L-1}]``, so that the chain is ``A[i] M_{i+1} B[i]``
    (Section 7's ``A_l``, ``B_l`` at index l-1); with ``ends`` (no gates) ``A = [S_0..S_L]``,
    ``B = [P_0..P_L]`` and the chain is ``A[l] B[l]`` (Section 6). The one kernel behind every
    partial product of the package.

    Parameters
    ----------
    mats : sequence of Tensor
        ``M_1..M_L`` [..., n_l, n_{l-1}] (at least one).
    gates : sequence of Tensor or None, or None
        Diagonals ``g_1..g_{L-1}`` [..., n_l]; None (or a None entry) for the identity.
    ends : bool
        Also return the full products ``S_0`` and ``P_L`` (ungated chains only).

    Returns
    -------
    A : list of Tensor
        Suffix products ``[S_1..S_L]`` (``[S_0..S_L]`` with ``ends``), ``S_l``
        [..., n_L, n_l].
    B : list of Tensor
        Prefix products ``[P_0..P_{L-1}]`` (``[P_0..P_L]`` with ``ends``), ``P_l``
        [..., n_l, n_0].

    Raises
    ------
    ValueError
        If ``mats`` is empty, ``gates`` does not hold L - 1 entries, or ``ends`` is asked of
        a gated chain.
    """
    L = len(mats)
    if L < 1:
        raise ValueError("mats must hold at least one matrix")
    if gates is not None and len(gates) != L - 1:
        raise ValueError(f"gates must hold L - 1 = {L - 1} diagonals, got {len(gates)}")
    if ends and gates is not None:
        raise ValueError("ends=True needs an ungated chain")
    g = [None] + (list(gates) if gates is not None else [None] * (L - 1)) + [None]  # g[l] = g_l
    first, last = mats[0], mats[-1]
    batch = first.shape[:-2]
    B = [_eye(first.shape[-1], batch, first)]
    for l in range(1, L + 1 if ends else L):  # P_l = g_l (M_l P_{l-1})
        prod = mats[l - 1] @ B[-1]
        B.append(prod if g[l] is None else g[l][..., :, None] * prod)
    A = [_eye(last.shape[-2], batch, last)]
    for l in range(L - 1, -1 if ends else 0, -1):  # S_l = (S_{l+1} M_{l+1}) g_l
        prod = A[-1] @ mats[l]
        A.append(prod if g[l] is None else prod * g[l][..., None, :])
    return A[::-1], B


def _eye(n: int, batch: torch.Size, like: Tensor) -> Tensor:
    eye = torch.eye(n, dtype=like.dtype, device=like.device)
    return eye.expand(*batch, n, n) if batch else eye


def layer_partial_products(layers: Tensor) -> tuple[Tensor, Tensor]:
    """Section 6 ``(A, B)`` of ``J_L = M_L ... M_1`` for ``layers`` [batch, L, n, n].

    Both [batch, L+1, n, n]: ``A[:, l] = M_L ... M_{l+1}`` (``A_L = I``) and
    ``B[:, l] = M_l ... M_1`` (``B_0 = I``), so that ``J_L = A[:, l] @ B[:, l]`` for l = 0..L.

    Parameters
    ----------
    layers : Tensor
        ``M_1..M_L`` [batch, L, n, n].

    Returns
    -------
    A : Tensor
        ``A_0..A_L`` [batch, L+1, n, n].
    B : Tensor
        ``B_0..B_L`` [batch, L+1, n, n].

    Raises
    ------
    ValueError
        If ``layers`` is not [batch, L, n, n].
    """
    b, L, n = check_layers(layers)
    A, B = chain_products(layers.unbind(1), ends=True)
    return torch.stack(A, 1), torch.stack(B, 1)


def network_partial_products(weights: Tensor, gates: Tensor) -> tuple[Tensor, Tensor]:
    """Section 7 ``(A, B)`` of ``J = W_L D_{L-1} ... D_1 W_1``, in one pass each.

    ``weights`` [batch, L, n, n], ``gates`` [batch, L, n] (``gates[:, l-1]`` is the diagonal
    of ``D_l``; the last gate is ignored, ``D_L = I``). Both outputs are [batch, L, n, n];
    index ``l-1`` holds ``A_l`` and ``B_l`` (with ``D_0 = D_L = I``, so ``A_L = B_1 = I``).

    Parameters
    ----------
    weights : Tensor
        ``W_1..W_L`` [batch, L, n, n].
    gates : Tensor
        Gate diagonals [batch, L, n].

    Returns
    -------
    A : Tensor
        ``A_1..A_L`` [batch, L, n, n], ``J = A_l W_l B_l``.
    B : Tensor
        ``B_1..B_L`` [batch, L, n, n].

    Raises
    ------
    ValueError
        If ``weights`` is not [batch, L, n, n] or ``gates`` not [batch, L, n].
    """
    b, L, n = check_layers(weights)
    if gates.shape != (b, L, n):
        raise ValueError(f"gates must be [batch, L, n] = {(b, L, n)}, got {tuple(gates.shape)}")
    A, B = chain_products(weights.unbind(1), gates.unbind(1)[: L - 1])
    return torch.stack(A, 1), torch.stack(B, 1)
