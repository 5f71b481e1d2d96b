"""A :class:`.FixedGatesNetwork` argument checked, its partial products and ``grad_J`` in
float64: what the network-side measurements (flow rates, assumptions, recorders) share."""
from __future__ import annotations

import torch

from ..base.validation import as64, check_matrix
from .networks import FixedGatesNetwork

Tensor = torch.Tensor


def check_net(net) -> FixedGatesNetwork:
    """``net`` if it is a :class:`.FixedGatesNetwork`, else ``TypeError``.

    Parameters
    ----------
    net : FixedGatesNetwork
        The network to check.

    Returns
    -------
    net : FixedGatesNetwork
        ``net`` itself.

    Raises
    ------
    TypeError
        If ``net`` is anything else.
    """
    if not isinstance(net, FixedGatesNetwork):
        raise TypeError(f"net must be a FixedGatesNetwork, got {type(net).__name__}")
    return net


def partials64(net: FixedGatesNetwork) -> tuple[list[Tensor], list[Tensor]]:
    """``(A, B)``: the Section 7 partial products of ``net`` (``J = A_l W_l B_l``), float64.

    Parameters
    ----------
    net : FixedGatesNetwork
        The network.

    Returns
    -------
    A : list of Tensor
        ``A_1..A_L``, ``A_l`` [n_L, n_l], float64.
    B : list of Tensor
        ``B_1..B_L``, ``B_l`` [n_{l-1}, n_0], float64.
    """
    with torch.no_grad():
        A, B = net.partial_products()
    return [as64(a) for a in A], [as64(b) for b in B]


def check_grad(net: FixedGatesNetwork, grad_J) -> Tensor:
    """``grad_J`` [n_L, n_0] checked against ``net``'s widths, float64, on its device.

    Parameters
    ----------
    net : FixedGatesNetwork
        The network whose Jacobian ``grad_J`` refers to.
    grad_J : Tensor
        Gradient of the loss with respect to ``J`` [n_L, n_0].

    Returns
    -------
    G : Tensor
        ``grad_J`` detached, float64, on the device of ``net``'s weights.

    Raises
    ------
    TypeError
        If ``grad_J`` is not a tensor.
    ValueError
        If it is not finite or not [n_L, n_0].
    """
    G = check_matrix("grad_J", grad_J)
    n = net.widths
    if G.shape != (n[-1], n[0]):
        raise ValueError(f"grad_J must have shape [n_L, n_0] = {(n[-1], n[0])}, "
                         f"got {tuple(G.shape)}")
    return G.to(device=net.weights[0].device)
