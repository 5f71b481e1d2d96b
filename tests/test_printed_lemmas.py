"""Lemmas A.1 and E.1 as the paper prints them (fgln.theory.printed_lemmas) against automatic
differentiation, and the balance gap of Proposition 4.5's proof.

The printed forms write the network through products of gated layers: Appendix A with
``M_k = D_k W_k D_{k-1}``, Appendix E with ``M_k = D_k W_k``. With 0/1 gates (``D^2 = D``)
both lemmas are the gradient and the flow exactly. With other gates Appendix A's products
carry every inner gate twice, and Lemma E.1 keeps one ``D_l`` where the flow has ``D_l^2``:
the printed forms then miss autograd by tens of percent, while the book's forms
(``A_l^T G B_l^T`` and ``-sum_l A_l A_l^T G B_l^T B_l``) still equal it to rounding.
"""
import math

import pytest
import torch
from torch.autograd.functional import jvp

from fgln.products.partial_products import chain_product, chain_products
from fgln.theory.flow_rates import partials_jacobian_derivative, partials_weight_gradients
from fgln.theory.printed_lemmas import (
    balance_gap_rates,
    balance_gaps,
    gated_factors,
    lemma_a1_printed,
    lemma_e1_printed,
)
from fgln.training.networks import FixedGatesNetwork

D = torch.float64
WIDTHS = (5, 7, 6, 8, 4)
ROUNDING = 1e-12   # relative; float64 sums of a few products of small matrices
WRONG = 1e-2       # a wrong formula misses by far more than rounding


def network(binary: bool, seed: int = 0, widths=WIDTHS):
    """Gaussian weights; gates 0/1 (p = 0.6) or drawn in (0.5, 1.5)."""
    gen = torch.Generator().manual_seed(seed)
    W = [torch.randn(widths[l], widths[l - 1], generator=gen, dtype=D) / math.sqrt(widths[l - 1])
         for l in range(1, len(widths))]
    if binary:
        g = [(torch.rand(widths[l], generator=gen, dtype=D) < 0.6).to(D)
             for l in range(1, len(widths) - 1)]
    else:
        g = [torch.rand(widths[l], generator=gen, dtype=D) + 0.5 for l in range(1, len(widths) - 1)]
    return W, g


def loss_of_J(J, seed=0):
    """A smooth non-quadratic loss of J."""
    target = torch.randn(J.shape, generator=torch.Generator().manual_seed(seed + 99), dtype=D)
    return ((J - target) ** 3).sum() + J.sin().sum()


def autograd_flow(W, g):
    """(grad_J L, the weight gradients, dJ/dt under gradient flow), all by autograd."""
    Wr = [w.clone().requires_grad_(True) for w in W]
    grads = torch.autograd.grad(loss_of_J(chain_product(Wr, g)), Wr)
    J = chain_product(W, g).requires_grad_(True)
    G = torch.autograd.grad(loss_of_J(J), J)[0]
    _, J_dot = jvp(lambda *ws: chain_product(list(ws), g), tuple(W), tuple(-x for x in grads))
    return G, list(grads), J_dot


def rel(a, b) -> float:
    if isinstance(a, (list, tuple)):
        return max(rel(x, y) for x, y in zip(a, b))
    return float((a - b).abs().max() / b.abs().max())


def book_forms(W, g, G):
    net = FixedGatesNetwork(W, g)
    with torch.no_grad():
        A, B = net.partial_products()
    return partials_weight_gradients(A, B, G), partials_jacobian_derivative(A, B, G)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_printed_lemmas_equal_autograd_for_masked_networks(seed):
    """0/1 gates: Lemma A.1 and E.1 as printed (with either definition of M_k) are the
    gradient and the flow, like the book's forms."""
    W, g = network(True, seed)
    G, grads, J_dot = autograd_flow(W, g)
    for factors in ("masked", "gated"):
        assert rel(lemma_a1_printed(W, g, G, factors=factors), grads) < ROUNDING
        assert rel(lemma_e1_printed(W, g, G, factors=factors), J_dot) < ROUNDING
    book_grad, book_flow = book_forms(W, g, G)
    assert rel(book_grad, grads) < ROUNDING and rel(book_flow, J_dot) < ROUNDING


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_printed_lemmas_miss_autograd_for_other_gates(seed):
    """Gates in (0.5, 1.5): the book's forms still equal autograd to rounding; Lemma A.1 with
    Appendix A's M_k = D_k W_k D_{k-1} misses the gradient by tens of percent (every inner
    gate enters twice) and Lemma E.1 misses the flow (one D_l for D_l^2). Lemma A.1's formula
    with Appendix E's M_k = D_k W_k is the gradient for any gates."""
    W, g = network(False, seed)
    G, grads, J_dot = autograd_flow(W, g)
    book_grad, book_flow = book_forms(W, g, G)
    assert rel(book_grad, grads) < ROUNDING and rel(book_flow, J_dot) < ROUNDING
    assert rel(lemma_a1_printed(W, g, G), grads) > 0.1
    assert rel(lemma_a1_printed(W, g, G, factors="gated"), grads) < ROUNDING
    assert rel(lemma_e1_printed(W, g, G), J_dot) > WRONG
    # the discrepancy is exactly one D_l too few: with D_l^2 in the middle it is the flow
    S, P = chain_products(gated_factors(W, g, factors="gated"))  # M_{l+1:L}, M_{1:l-1}
    d = g + [torch.ones(WIDTHS[-1], dtype=D)]                     # D_1..D_L
    fixed = -sum(s * d[l] ** 2 @ s.T @ G @ p.T @ p for l, (s, p) in enumerate(zip(S, P)))
    assert rel(fixed, J_dot) < ROUNDING


def test_identities_of_the_factors():
    """Section 7's partial products in the appendices' factors: A_l = M_{l+1:L} D_l and
    B_l = M_{1:l-1} with M_k = D_k W_k, for any gates; with M_k = D_k W_k D_{k-1} only for
    0/1 gates."""
    for binary in (True, False):
        W, g = network(binary, 5)
        A, B = FixedGatesNetwork(W, g).partial_products()
        ones = g + [torch.ones(WIDTHS[-1], dtype=D)]
        for factors in ("gated", "masked"):
            M = gated_factors(W, g, factors=factors)
            err = max(rel(chain_product(M[l:]) * ones[l - 1][None, :], A[l - 1].detach())
                      for l in range(1, len(W)))
            err = max(err, max(rel(chain_product(M[:l - 1]), B[l - 1].detach())
                               for l in range(2, len(W) + 1)))
            if binary or factors == "gated":
                assert err < ROUNDING, (binary, factors)
            else:
                assert err > WRONG


def test_balance_gap_is_conserved_at_any_masked_network_only():
    """The proof of Proposition 4.5: at a random, unbalanced masked network the four terms of
    equation (1) are the values the proof gives them and d Delta_l/dt = 0; with other gates
    neither holds, while the diagonal of d/dt (W_{l+1}^T W_{l+1} - W_l W_l^T) still vanishes."""
    for binary in (True, False):
        W, g = network(binary, 7)
        G, _, _ = autograd_flow(W, g)
        r = balance_gap_rates(W, g, G)
        assert len(r.rate) == len(W) - 1
        size = max(float(t.abs().max()) for t in r.terms)
        violation = max(float(x.abs().max()) for x in r.rate) / size
        expansion = max(float((t - p).abs().max()) for t, p in zip(r.terms, r.printed)) / size
        neuron = max(float(w.diagonal().abs().max()) for w in r.weight_rate) / size
        assert neuron < ROUNDING
        if binary:
            assert violation < ROUNDING and expansion < ROUNDING
        else:
            assert violation > WRONG and expansion > WRONG
    assert torch.allclose(balance_gaps(W, g)[0], gated_factors(W, g)[1].T @ gated_factors(W, g)[1]
                          - gated_factors(W, g)[0] @ gated_factors(W, g)[0].T)


def test_balance_gap_of_a_masked_network_is_constant_along_the_flow():
    """Integrated with RK4, the gap of a masked network moves only by the integrator's error."""
    W, g = network(True, 11)
    X = torch.randn(5, 20, generator=torch.Generator().manual_seed(3), dtype=D)
    Y = torch.randn(4, 20, generator=torch.Generator().manual_seed(4), dtype=D)

    def velocity(ws):
        wr = [w.clone().requires_grad_(True) for w in ws]
        loss = 0.5 * ((chain_product(wr, g) @ X - Y) ** 2).mean()
        return [-x for x in torch.autograd.grad(loss, wr)]

    gap0 = balance_gaps(W, g)
    h = 0.01
    for _ in range(100):
        k1 = velocity(W)
        k2 = velocity([w + h / 2 * k for w, k in zip(W, k1)])
        k3 = velocity([w + h / 2 * k for w, k in zip(W, k2)])
        k4 = velocity([w + h * k for w, k in zip(W, k3)])
        W = [w + h / 6 * (a + 2 * b + 2 * c + d) for w, a, b, c, d in zip(W, k1, k2, k3, k4)]
    drift = max(rel(a, b) for a, b in zip(balance_gaps(W, g), gap0))
    assert drift < 1e-8


def test_arguments_are_checked():
    W, g = network(True)
    G = torch.zeros(WIDTHS[-1], WIDTHS[0], dtype=D)
    with pytest.raises(ValueError, match="factors"):
        lemma_a1_printed(W, g, G, factors="both")
    with pytest.raises(ValueError, match="grad_J must have shape"):
        lemma_e1_printed(W, g, G[:, :3])
    with pytest.raises(ValueError, match="L - 1"):
        gated_factors(W, g[:-1])
    with pytest.raises(ValueError, match="do not chain"):
        balance_gaps(W[::-1], g)
    with pytest.raises(ValueError, match=r"gates\[0\]"):
        gated_factors(W, [g[1]] + g[1:])
    with pytest.raises(TypeError, match="grad_J"):
        balance_gap_rates(W, g, G.numpy())
    with pytest.raises(TypeError):
        lemma_a1_printed(W, [[1.0] * WIDTHS[1]] + g[1:], G)
    # stacked square tensors work like lists
    Ws, gs = network(False, widths=(4, 4, 4, 4))
    assert rel(lemma_a1_printed(torch.stack(Ws), torch.stack(gs), torch.ones(4, 4, dtype=D)),
               lemma_a1_printed(Ws, gs, torch.ones(4, 4, dtype=D))) == 0.0
