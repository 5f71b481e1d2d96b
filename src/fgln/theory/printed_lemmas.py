"""Appendices A and E as printed: Lemmas A.1 and E.1 in the paper's own products of gated
layers, and the balance gap of the proof of Proposition 4.5 with the four terms of its
expansion.

The appendices write a fixed-gates network ``J = W_L D_{L-1} ... D_1 W_1`` (``D_0 = D_L = I``)
through products ``M_{a:b} = M_b ... M_a`` (the identity for ``a > b``) of gated layers
defined in two ways:

* Appendix A, ``M_k = D_k W_k D_{k-1}`` (``factors="masked"``); Lemma A.1 reads
  ``grad_{W_l} L = D_l M_{l+1:L}^T grad_J M_{1:l-1}^T`` (:func:`lemma_a1_printed`);
* Appendix E, ``M_k = D_k W_k`` (``factors="gated"``); Lemma E.1 reads
  ``dJ/dt = -sum_l M_{l+1:L} D_l M_{l+1:L}^T grad_J M_{1:l-1}^T M_{1:l-1}`` under gradient flow
  (:func:`lemma_e1_printed`).

What holds for any gates is written with Section 7's partial products
``A_l = W_L D_{L-1} ... W_{l+1} D_l`` and ``B_l = D_{l-1} W_{l-1} ... D_1 W_1``:
``grad_{W_l} L = A_l^T grad_J B_l^T`` and ``dJ/dt = -sum_l A_l A_l^T grad_J B_l^T B_l``
(:mod:`fgln.theory.flow_rates`). With the gated factors, ``A_l = M_{l+1:L} D_l`` and
``B_l = M_{1:l-1}``, so Lemma A.1's formula is the gradient for any gates, while Lemma E.1
keeps one ``D_l`` where the flow has ``D_l^2``. With the masked factors every inner gate
appears twice (``M_{l+1:L} = W_L D_{L-1}^2 ... W_{l+1} D_l``). Both printed forms are
therefore exact when every gate is 0/1 (``D^2 = D``, a masked linear network) and not
otherwise.

:func:`balance_gap_rates` gives, under gradient flow, the derivative of Proposition 4.5's
balance gap ``Delta_l = M_{l+1}^T M_{l+1} - M_l M_l^T`` (masked factors), the four terms of
its expansion (Appendix A, equation (1)) next to the values the proof assigns them, and the
derivative of ``W_{l+1}^T W_{l+1} - W_l W_l^T``, whose diagonal is conserved for any gates.
Everything is computed in float64.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..base.results import Result
from ..base.validation import as64, check_matrix
from ..products.partial_products import chain_products
from . import _layer_rates as lr

Tensor = torch.Tensor

__all__ = ["gated_factors", "lemma_a1_printed", "lemma_e1_printed", "balance_gaps",
           "balance_gap_rates"]

FACTORS = ("masked", "gated")


def _as_list(x, name: str) -> list:
    if isinstance(x, Tensor):
        return list(x.unbind(0)) if x.ndim >= 1 and x.shape[0] > 0 else []
    try:
        return list(x)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of tensors, got {type(x).__name__}") from None


def _check_network(weights, gates) -> tuple[list[Tensor], list[Tensor]]:
    """``W_1..W_L`` in float64, chaining, and the diagonals of ``D_0..D_L`` (ones for the
    identities ``D_0``, ``D_L``)."""
    W = [check_matrix(f"weights[{i}]", w) for i, w in enumerate(_as_list(weights, "weights"))]
    if not W:
        raise ValueError("weights must hold at least one matrix W_1")
    for i in range(1, len(W)):
        if W[i].shape[1] != W[i - 1].shape[0]:
            raise ValueError(f"weights do not chain: W_{i + 1} has {W[i].shape[1]} columns but "
                             f"W_{i} has {W[i - 1].shape[0]} rows")
    gates = _as_list(gates, "gates")
    if len(gates) != len(W) - 1:
        raise ValueError(f"gates must hold L - 1 = {len(W) - 1} diagonals (D_1..D_(L-1)), "
                         f"got {len(gates)}")
    D = [torch.ones(W[0].shape[1], dtype=torch.float64, device=W[0].device)]
    for i, g in enumerate(gates):
        if not isinstance(g, Tensor):
            raise TypeError(f"gates[{i}] must be a 1-d tensor, got {type(g).__name__}")
        g = as64(g).to(W[0].device)
        if g.ndim != 1 or g.shape[0] != W[i].shape[0]:
            raise ValueError(f"gates[{i}] (diagonal of D_{i + 1}) must have shape "
                             f"[{W[i].shape[0]}], got {tuple(g.shape)}")
        if not bool(torch.isfinite(g).all()):
            raise ValueError(f"gates[{i}] has non-finite entries")
        D.append(g)
    D.append(torch.ones(W[-1].shape[0], dtype=torch.float64, device=W[0].device))
    return W, D


def _factors(W: list[Tensor], D: list[Tensor], factors: str) -> list[Tensor]:
    if factors not in FACTORS:
        raise ValueError(f"factors must be one of {FACTORS}, got {factors!r}")
    M = [D[l][:, None] * W[l - 1] for l in range(1, len(W) + 1)]
    if factors == "masked":
        M = [m * D[l - 1][None, :] for l, m in enumerate(M, start=1)]
    return M


def gated_factors(weights: Sequence[Tensor], gates: Sequence[Tensor], *,
                  factors: str = "masked") -> list[Tensor]:
    """The appendices' gated layers ``M_1..M_L``: ``D_l W_l D_{l-1}`` (Appendix A and
    Proposition 4.5, ``factors="masked"``) or ``D_l W_l`` (Appendix E, ``factors="gated"``),
    with ``D_0 = D_L = I``.

    Parameters
    ----------
    weights : sequence of Tensor
        ``W_1..W_L`` [n_l, n_{l-1}], chaining (or one stacked tensor [L, n, n]).
    gates : sequence of Tensor
        Diagonals of ``D_1..D_{L-1}`` [n_l] (or one stacked tensor [L-1, n]); any real values.
    factors : {"masked", "gated"}
        Which definition of ``M_l``.

    Returns
    -------
    layers : list of Tensor
        ``M_1..M_L`` [n_l, n_{l-1}], float64.

    Raises
    ------
    TypeError
        If a weight or gate is not a tensor.
    ValueError
        If the weights do not chain, the gates are not L - 1 diagonals of matching sizes, an
        entry is not finite, or ``factors`` is unknown.
    """
    return _factors(*_check_network(weights, gates), factors)


def lemma_a1_printed(weights: Sequence[Tensor], gates: Sequence[Tensor], grad_J: Tensor, *,
                     factors: str = "masked") -> list[Tensor]:
    """Lemma A.1 as printed: ``grad_{W_l} L = D_l M_{l+1:L}^T grad_J M_{1:l-1}^T``, l = 1..L.

    With Appendix A's ``M_k = D_k W_k D_{k-1}`` (the default) this is the gradient for 0/1
    gates only; with Appendix E's ``M_k = D_k W_k`` (``factors="gated"``) it is
    ``A_l^T grad_J B_l^T``, the gradient for any gates.

    Parameters
    ----------
    weights : sequence of Tensor
        ``W_1..W_L`` [n_l, n_{l-1}], chaining (or one stacked tensor [L, n, n]).
    gates : sequence of Tensor
        Diagonals of ``D_1..D_{L-1}`` [n_l] (or one stacked tensor [L-1, n]).
    grad_J : Tensor
        ``grad_J L`` [n_L, n_0], the loss gradient with respect to ``J``.
    factors : {"masked", "gated"}
        Which definition of ``M_k`` (:func:`gated_factors`).

    Returns
    -------
    gradients : list of Tensor
        The printed right-hand side [n_l, n_{l-1}] for l = 1..L, float64.

    Raises
    ------
    TypeError
        If an argument is not a tensor.
    ValueError
        If the shapes do not fit, an entry is not finite, or ``factors`` is unknown.
    """
    W, D = _check_network(weights, gates)
    G = _check_grad(grad_J, W)
    S, P = chain_products(_factors(W, D, factors))  # S[l-1] = M_{l+1:L}, P[l-1] = M_{1:l-1}
    return [D[l][:, None] * (S[l - 1].T @ G @ P[l - 1].T) for l in range(1, len(W) + 1)]


def lemma_e1_printed(weights: Sequence[Tensor], gates: Sequence[Tensor], grad_J: Tensor, *,
                     factors: str = "gated") -> Tensor:
    """Lemma E.1 as printed: under gradient flow on the weights,
    ``dJ/dt = -sum_l M_{l+1:L} D_l M_{l+1:L}^T grad_J M_{1:l-1}^T M_{1:l-1}``.

    With Appendix E's ``M_k = D_k W_k`` (the default), ``A_l = M_{l+1:L} D_l`` and
    ``B_l = M_{1:l-1}``: the middle factor ``M_{l+1:L} D_l M_{l+1:L}^T`` has one ``D_l`` where
    the flow ``-sum_l A_l A_l^T grad_J B_l^T B_l`` has ``D_l^2``; the two agree for 0/1 gates
    only.

    Parameters
    ----------
    weights : sequence of Tensor
        ``W_1..W_L`` [n_l, n_{l-1}], chaining (or one stacked tensor [L, n, n]).
    gates : sequence of Tensor
        Diagonals of ``D_1..D_{L-1}`` [n_l] (or one stacked tensor [L-1, n]).
    grad_J : Tensor
        ``grad_J L`` [n_L, n_0], the loss gradient with respect to ``J``.
    factors : {"masked", "gated"}
        Which definition of ``M_k`` (:func:`gated_factors`).

    Returns
    -------
    J_dot : Tensor
        The printed right-hand side [n_L, n_0], float64.

    Raises
    ------
    TypeError
        If an argument is not a tensor.
    ValueError
        If the shapes do not fit, an entry is not finite, or ``factors`` is unknown.
    """
    W, D = _check_network(weights, gates)
    G = _check_grad(grad_J, W)
    S, P = chain_products(_factors(W, D, factors))
    return -sum(S[l - 1] @ (D[l][:, None] * S[l - 1].T) @ G @ P[l - 1].T @ P[l - 1]
                for l in range(1, len(W) + 1))


def _check_grad(grad_J, W: list[Tensor]) -> Tensor:
    G = check_matrix("grad_J", grad_J)
    shape = (W[-1].shape[0], W[0].shape[1])
    if G.shape != shape:
        raise ValueError(f"grad_J must have shape [n_L, n_0] = {shape}, got {tuple(G.shape)}")
    return G.to(W[0].device)


def balance_gaps(weights: Sequence[Tensor], gates: Sequence[Tensor]) -> list[Tensor]:
    """Proposition 4.5's balance gaps ``Delta_l = M_{l+1}^T M_{l+1} - M_l M_l^T``, l = 1..L-1,
    with ``M_k = D_k W_k D_{k-1}``.

    Parameters
    ----------
    weights : sequence of Tensor
        ``W_1..W_L`` [n_l, n_{l-1}], chaining (or one stacked tensor [L, n, n]).
    gates : sequence of Tensor
        Diagonals of ``D_1..D_{L-1}`` [n_l] (or one stacked tensor [L-1, n]).

    Returns
    -------
    gaps : list of Tensor
        ``Delta_l`` [n_l, n_l], l = 1..L-1 (empty for L = 1), float64.
    """
    M = gated_factors(weights, gates, factors="masked")
    return [M[l].T @ M[l] - M[l - 1] @ M[l - 1].T for l in range(1, len(M))]


def balance_gap_rates(weights: Sequence[Tensor], gates: Sequence[Tensor],
                      grad_J: Tensor) -> Result:
    """How the balance gaps move under gradient flow on the weights (proof of Proposition
    4.5, Appendix A), with the exact gradient ``grad_{W_l} L = A_l^T grad_J B_l^T``.

    With ``M_k = D_k W_k D_{k-1}`` and ``dM_l/dt = D_l (dW_l/dt) D_{l-1}``, equation (1) of
    Appendix A splits ``d Delta_l/dt`` into four terms, ``T_1 = (dM_{l+1}/dt)^T M_{l+1}``,
    ``T_2 = M_{l+1}^T dM_{l+1}/dt``, ``T_3 = (dM_l/dt) M_l^T`` and ``T_4 = M_l (dM_l/dt)^T``,
    ``d Delta_l/dt = T_1 + T_2 - T_3 - T_4``. The proof expands them as ``-P_l``, ``-P_l^T``,
    ``-P_l^T`` and ``-P_l`` with ``P_l = M_{1:l} grad_J^T M_{l+1:L}``, so that they cancel.

    Parameters
    ----------
    weights : sequence of Tensor
        ``W_1..W_L`` [n_l, n_{l-1}], chaining (or one stacked tensor [L, n, n]).
    gates : sequence of Tensor
        Diagonals of ``D_1..D_{L-1}`` [n_l] (or one stacked tensor [L-1, n]).
    grad_J : Tensor
        ``grad_J L`` [n_L, n_0] driving the flow.

    Returns
    -------
    rates : Result
        Lists over l = 1..L-1: ``rate`` (``d Delta_l/dt`` [n_l, n_l]), ``terms`` (``T_1..T_4``
        stacked [4, n_l, n_l]), ``printed`` (the proof's values of ``T_1..T_4``, [4, n_l, n_l])
        and ``weight_rate`` (``d/dt (W_{l+1}^T W_{l+1} - W_l W_l^T)`` [n_l, n_l]).
    """
    W, D = _check_network(weights, gates)
    G = _check_grad(grad_J, W)
    L = len(W)
    A, B = chain_products(W, D[1:L])  # Section 7: J = A[l-1] W_l B[l-1]
    W_dot = [-lr.lemma_a1_gradients(G, a, b) for a, b in zip(A, B)]
    M = _factors(W, D, "masked")
    M_dot = [D[l][:, None] * W_dot[l - 1] * D[l - 1][None, :] for l in range(1, L + 1)]
    S, P = chain_products(M, ends=True)  # S[l] = M_{l+1:L}, P[l] = M_{1:l}
    out = Result(rate=[], terms=[], printed=[], weight_rate=[])
    for l in range(1, L):  # Delta_l, between M_l (index l-1) and M_{l+1} (index l)
        t = torch.stack([M_dot[l].T @ M[l], M[l].T @ M_dot[l],
                         M_dot[l - 1] @ M[l - 1].T, M[l - 1] @ M_dot[l - 1].T])
        Pl = P[l] @ G.T @ S[l]
        out.terms.append(t)
        out.printed.append(-torch.stack([Pl, Pl.T, Pl.T, Pl]))
        out.rate.append(t[0] + t[1] - t[2] - t[3])
        out.weight_rate.append(W_dot[l].T @ W[l] + W[l].T @ W_dot[l]
                               - W_dot[l - 1] @ W[l - 1].T - W[l - 1] @ W_dot[l - 1].T)
    return out
