"""How the singular values of a :class:`.FixedGatesNetwork`'s ``J`` move under gradient flow:
the network's partial products handed to the closed forms of :mod:`fgln.theory.flow_rates`
(Lemmas A.1, E.1, E.2 and Proposition 7.1 with (ii) exact), in float64.
"""
from __future__ import annotations

import torch

from ..base.validation import as64
from ..theory._layer_rates import gated_rates
from ..theory.flow_rates import (
    partials_aligned_rates,
    partials_jacobian_derivative,
    partials_rate_terms,
    partials_weight_gradients,
    remark72_rates,
)
from ._net64 import check_grad, check_net, partials64
from .networks import FixedGatesNetwork

Tensor = torch.Tensor

def _flow_inputs(net, grad_J) -> tuple[list[Tensor], list[Tensor], Tensor, Tensor]:
    """The one place a network meets the closed forms: ``(A, B, J, grad_J)`` in float64, the
    network and the gradient checked."""
    net = check_net(net)
    A, B = partials64(net)
    return A, B, as64(net.jacobian()), check_grad(net, grad_J)


__all__ = [
    "weight_gradients",
    "flow_jacobian_derivative",
    "flow_rate_terms",
    "flow_singular_value_rates",
    "aligned_rates",
    "remark72_transpose_errors",
]


def weight_gradients(net: FixedGatesNetwork, grad_J: Tensor) -> list[Tensor]:
    """Lemma A.1: ``grad_{W_l} L = A_l^T grad_J B_l^T`` for l = 1..L.

    Parameters
    ----------
    net : FixedGatesNetwork
        The network (any float dtype; measured in float64).
    grad_J : Tensor
        ``grad_J L`` [n_L, n_0], the loss gradient with respect to ``net``'s Jacobian.

    Returns
    -------
    list of Tensor
        ``grad_{W_l} L`` [n_l, n_{l-1}], l = 1..L, float64.
    """
    A, B, _, G = _flow_inputs(net, grad_J)
    return partials_weight_gradients(A, B, G)


def flow_jacobian_derivative(net: FixedGatesNetwork, grad_J: Tensor) -> Tensor:
    """Lemma E.1: ``dJ/dt = -sum_l A_l A_l^T grad_J B_l^T B_l`` under gradient flow.

    Parameters
    ----------
    net : FixedGatesNetwork
        The network (any float dtype; measured in float64).
    grad_J : Tensor
        ``grad_J L`` [n_L, n_0], the loss gradient with respect to ``net``'s Jacobian.

    Returns
    -------
    Tensor
        ``dJ/dt`` [n_L, n_0], float64.
    """
    A, B, _, G = _flow_inputs(net, grad_J)
    return partials_jacobian_derivative(A, B, G)


def flow_rate_terms(net: FixedGatesNetwork, grad_J: Tensor, k: int | None = None) -> Tensor:
    """Per-layer terms of the exact flow rates ``-(U^T A_l A_l^T G B_l^T B_l V)_kk``; their sum
    over l is ``ds_k/dt`` (Appendix E.2, first display).

    Parameters
    ----------
    net : FixedGatesNetwork
        The network (any float dtype; measured in float64).
    grad_J : Tensor
        ``grad_J L`` [n_L, n_0], the loss gradient with respect to ``net``'s Jacobian.
    k : int or None
        How many of the largest singular values (``None``: all ``min(n_L, n_0)``).

    Returns
    -------
    Tensor
        The terms [L, k], float64 (row l-1: layer l).
    """
    return partials_rate_terms(*_flow_inputs(net, grad_J), k)


def flow_singular_value_rates(net: FixedGatesNetwork, grad_J: Tensor,
                              k: int | None = None) -> Tensor:
    """Exact gradient-flow rates ``ds_k/dt`` of the top ``k`` singular values (Lemmas E.1, E.2).

    Parameters
    ----------
    net : FixedGatesNetwork
        The network (any float dtype; measured in float64).
    grad_J : Tensor
        ``grad_J L`` [n_L, n_0], the loss gradient with respect to ``net``'s Jacobian.
    k : int or None
        How many of the largest singular values (``None``: all ``min(n_L, n_0)``).

    Returns
    -------
    Tensor
        ``ds_k/dt`` [k], float64.
    """
    return flow_rate_terms(net, grad_J, k).sum(0)


def aligned_rates(net: FixedGatesNetwork, grad_J: Tensor, k: int | None = None) -> Tensor:
    """Proposition 7.1 with (ii) exact but (i) not assumed:
    ``-sum_l s_k(A_l)^2 s_k(B_l)^2 g_k`` (Appendix E.2, third display).

    Parameters
    ----------
    net : FixedGatesNetwork
        The network (any float dtype; measured in float64).
    grad_J : Tensor
        ``grad_J L`` [n_L, n_0], the loss gradient with respect to ``net``'s Jacobian.
    k : int or None
        How many of the largest singular values (``None``: all ``min(n_L, n_0)``).

    Returns
    -------
    Tensor
        The rates [k], float64.
    """
    return partials_aligned_rates(*_flow_inputs(net, grad_J), k)


def remark72_transpose_errors(net: FixedGatesNetwork, grad_J: Tensor,
                              k: int | None = None) -> tuple[float, float]:
    """Remark 7.2's exact expansion under gradient flow with ``T_l^+`` built as printed
    (``V_B V^T``) and as the proof needs (``V_B^T V``), each against the exact rates.

    Parameters
    ----------
    net : FixedGatesNetwork
        A square network (``reading="printed"`` needs square layers).
    grad_J : Tensor
        ``grad_J L`` [n, n] driving the flow (``dM_l/dt = -D_l grad_{W_l} L``, Lemma A.1).
    k : int or None
        How many of the largest singular values (``None``: all).

    Returns
    -------
    printed : float
        Largest relative error of the printed expansion, ``max_k |got_k - exact_k| /
        max_k |exact_k|``.
    proof : float
        The same with ``V_B^T V`` (zero up to rounding).
    """
    net = check_net(net)
    G = check_grad(net, grad_J)
    gates = [as64(g) for g in net.gates] + [torch.ones(net.widths[-1], dtype=torch.float64,
                                                       device=G.device)]
    mdot = [gated_rates(d, w) for d, w in zip(gates, weight_gradients(net, G))]  # -D_l grad_W_l
    layers = [m.detach() for m in net.layers()]
    exact = flow_singular_value_rates(net, G, k)
    out = []
    for reading in ("printed", "corrected"):
        got = remark72_rates(layers, mdot, None, k, reading=reading)["exact"]
        out.append(float((got - exact).abs().max() / exact.abs().max()))
    return out[0], out[1]
