"""How the singular values of a :class:`FixedGatesNetwork`'s ``J`` move under gradient flow:
the network's partial products handed to the closed forms of :mod:`fgln.theory.flow_rates`
(Lemmas A.1, E.1, E.2 and Proposition 7.1 with (ii) exact), in float64.
"""
from __future__ import annotations

import torch

from ..base.validation import as64
from ..theory.flow_rates import (
    partials_aligned_rates,
    partials_jacobian_derivative,
    partials_rate_terms,
    partials_weight_gradients,
)
from ._net64 import check_grad, check_net, partials64
from .networks import FixedGatesNetwork

Tensor = torch.Tensor

__all__ = [
    "weight_gradients",
    "flow_jacobian_derivative",
    "flow_rate_terms",
    "flow_singular_value_rates",
    "aligned_rates",
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
    net = check_net(net)
    return partials_weight_gradients(*partials64(net), check_grad(net, grad_J))


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
    net = check_net(net)
    return partials_jacobian_derivative(*partials64(net), check_grad(net, grad_J))


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
    net = check_net(net)
    G = check_grad(net, grad_J)
    A, B = partials64(net)
    return partials_rate_terms(A, B, as64(net.jacobian()), G, k)


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
    net = check_net(net)
    A, B = partials64(net)
    return partials_aligned_rates(A, B, as64(net.jacobian()), grad_J, k)
