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

import torch

from ..base.validation import check_layers

Tensor = torch.Tensor

__all__ = ["layer_partial_products", "network_partial_products"]


def _eye_like(x: Tensor, b: int, n: int) -> Tensor:
    return torch.eye(n, dtype=x.dtype, device=x.device).expand(b, n, n)


def layer_partial_products(layers: Tensor) -> tuple[Tensor, Tensor]:
    """Section 6 ``(A, B)`` of ``J_L = M_L ... M_1`` for ``layers`` [batch, L, n, n].

    Both [batch, L+1, n, n]: ``A[:, l] = M_L ... M_{l+1}`` (``A_L = I``) and
    ``B[:, l] = M_l ... M_1`` (``B_0 = I``), so that ``J_L = A[:, l] @ B[:, l]`` for l = 0..L.
    """
    b, L, n = check_layers(layers)
    eye = _eye_like(layers, b, n)
    B = [eye]
    for l in range(L):
        B.append(layers[:, l] @ B[-1])
    A = [eye]
    for l in range(L - 1, -1, -1):
        A.append(A[-1] @ layers[:, l])
    return torch.stack(A[::-1], 1), torch.stack(B, 1)


def network_partial_products(weights: Tensor, gates: Tensor) -> tuple[Tensor, Tensor]:
    """Section 7 ``(A, B)`` of ``J = W_L D_{L-1} ... D_1 W_1``, in one pass each.

    ``weights`` [batch, L, n, n], ``gates`` [batch, L, n] (``gates[:, l-1]`` is the diagonal
    of ``D_l``; the last gate is ignored, ``D_L = I``). Both outputs are [batch, L, n, n];
    index ``l-1`` holds ``A_l`` and ``B_l`` (with ``D_0 = D_L = I``, so ``A_L = B_1 = I``).
    """
    b, L, n = check_layers(weights)
    if gates.shape != (b, L, n):
        raise ValueError(f"gates must be [batch, L, n] = {(b, L, n)}, got {tuple(gates.shape)}")
    eye = _eye_like(weights, b, n)
    B = [eye]
    for l in range(1, L):  # B_{l+1} = D_l W_l B_l
        B.append(gates[:, l - 1, :, None] * (weights[:, l - 1] @ B[-1]))
    A = [eye]  # A_L = I
    for l in range(L - 1, 0, -1):  # A_l = A_{l+1} W_{l+1} D_l
        A.append((A[-1] @ weights[:, l]) * gates[:, l - 1, None, :])
    return torch.stack(A[::-1], 1), torch.stack(B, 1)
