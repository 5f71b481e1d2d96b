"""How the singular values of ``J`` move under gradient flow (paper, Sections 4 and 7,
Appendices A and E).

Notation: ``J = U S V^T`` with ``s_1 >= s_2 >= ...``; ``G = grad_J L`` [n_L, n_0], the gradient of
the loss with respect to ``J``; ``g_k = <G, u_k v_k^T> = u_k^T G v_k``. For a fixed-gates
network, ``J = A_l W_l B_l`` (Section 7) with the partial products ``A = [A_1..A_L]``,
``B = [B_1..B_L]`` (:func:`fgln.products.partial_products.network_partial_products`), and

* Lemma A.1: ``grad_{W_l} L = A_l^T G B_l^T`` (:func:`partials_weight_gradients`);
* Lemma E.1: under gradient flow ``dJ/dt = -sum_l A_l A_l^T G B_l^T B_l``
  (:func:`partials_jacobian_derivative`).

These are the forms that hold for any gates. The paper prints both lemmas through products of
gated layers ``M_k``, forms that are exact for 0/1 gates only
(:func:`fgln.theory.printed_lemmas.lemma_a1_printed`,
:func:`fgln.theory.printed_lemmas.lemma_e1_printed`). Further:

* Lemma E.2: ``ds_k/dt = u_k^T (dJ/dt) v_k`` (:func:`singular_value_rates`), hence the exact flow
  rates ``ds_k/dt = -sum_l (U^T A_l A_l^T G B_l^T B_l V)_kk`` (:func:`partials_rate_terms`);
* Proposition 4.5: ``ds_k/dt = -L s_k^{2-2/L} g_k`` for balanced masked networks
  (:func:`balanced_singular_value_rates`);
* Proposition 7.1's right-hand side ``-e^{(2+2/L) delta_k} L s_k^{2-2/L} g_k``
  (:func:`prop71_rates`; ``delta_k`` from
  :func:`fgln.training.network_assumptions.network_depth_scaling`)
  and its version with (ii) exact (:func:`partials_aligned_rates`);
* Remark 7.2: the first-order version through triangular factors (:func:`remark72_rates`).

The per-layer terms (flow terms, aligned terms, Remark 7.2's cores) are computed once, in
:mod:`fgln.theory._layer_rates`, batched over the layers when their shapes agree. All
spectral quantities are computed in float64 whatever the network's dtype. The same
quantities for a :class:`~fgln.training.networks.FixedGatesNetwork` are in
:mod:`fgln.training.network_flow`.
"""
from __future__ import annotations

from functools import partial
from typing import Sequence

import torch
import torch.nn.functional as F

from ..base.validation import as64, check_int, check_k, check_matrix
from ..products.partial_products import chain_products
from ..products.svd import top_svd
from . import _layer_rates as lr

Tensor = torch.Tensor

__all__ = [
    "projections",
    "singular_value_rates",
    "balanced_singular_value_rates",
    "partials_weight_gradients",
    "partials_jacobian_derivative",
    "partials_rate_terms",
    "partials_aligned_rates",
    "prop71_rates",
    "remark72_rates",
]


# --------------------------------------------------------------------------------------
# singular values and their rates
# --------------------------------------------------------------------------------------


def _top(J: Tensor, k: int | None) -> tuple[Tensor, Tensor, Tensor]:
    """``(U_k [m, k], s_k [k], V_k [n, k])`` of ``J`` checked (float64)."""
    J = check_matrix("J", J)
    return top_svd(J, check_k(k, J))


def projections(J: Tensor, grad_J: Tensor, k: int | None = None) -> Tensor:
    """``g_k = <grad_J L, u_k v_k^T> = u_k^T grad_J v_k`` for the top ``k`` (default: all) [k].

    Parameters
    ----------
    J : Tensor
        The product ``J`` [n_L, n_0] (any float dtype; taken in float64).
    grad_J : Tensor
        Gradient of the loss with respect to ``J``, the shape of ``J``.
    k : int or None
        How many of the largest singular values (``None``: all ``min(n_L, n_0)``).

    Returns
    -------
    g : Tensor
        ``g_1..g_k`` [k], float64.

    Raises
    ------
    TypeError
        If ``J`` or ``grad_J`` is not a tensor, or ``k`` not an integer.
    ValueError
        If they are not finite 2-d tensors of the same shape, or ``k`` is out of range.
    """
    U, _, V = _top(J, k)
    G = check_matrix("grad_J", grad_J)
    if G.shape != J.shape:
        raise ValueError(f"grad_J must have the shape of J {tuple(J.shape)}, got {tuple(G.shape)}")
    return ((U.T @ G) * V.T).sum(-1)


def singular_value_rates(J: Tensor, J_dot: Tensor, k: int | None = None) -> Tensor:
    """Lemma E.2: ``ds_k/dt = u_k^T (dJ/dt) v_k`` for the top ``k`` (default: all).

    Exact for simple singular values (a repeated one has no derivative in general).

    Parameters
    ----------
    J : Tensor
        The product ``J`` [n_L, n_0] (any float dtype; taken in float64).
    J_dot : Tensor
        ``dJ/dt`` [n_L, n_0], the shape of ``J``.
    k : int or None
        How many of the largest singular values (``None``: all ``min(n_L, n_0)``).

    Returns
    -------
    Tensor
        ``ds_k/dt`` [k], float64.
    """
    U, _, V = _top(J, k)
    Jd = check_matrix("J_dot", J_dot)
    if Jd.shape != J.shape:
        raise ValueError(f"J_dot must have the shape of J {tuple(J.shape)}, got {tuple(Jd.shape)}")
    return ((U.T @ Jd) * V.T).sum(-1)


def balanced_singular_value_rates(J: Tensor, grad_J: Tensor, L: int,
                                  k: int | None = None) -> Tensor:
    """Proposition 4.5: ``ds_k/dt = -L s_k^{2-2/L} <grad_J L, u_k v_k^T>``.

    Parameters
    ----------
    J : Tensor
        The product ``J`` [n_L, n_0] (any float dtype; taken in float64).
    grad_J : Tensor
        ``grad_J L`` [n_L, n_0], the loss gradient with respect to ``J``.
    L : int
        Depth (>= 1).
    k : int or None
        How many of the largest singular values (``None``: all ``min(n_L, n_0)``).

    Returns
    -------
    Tensor
        The right-hand side [k], float64.
    """
    L = check_int("L", L, 1)
    _, s, _ = _top(J, k)
    g = projections(J, grad_J, k)
    return -L * s.pow(2.0 - 2.0 / L) * g


# --------------------------------------------------------------------------------------
# gradient flow of a fixed-gates network (Lemmas A.1, E.1)
# --------------------------------------------------------------------------------------


def _check_partials(A: Sequence[Tensor], B: Sequence[Tensor],
                    grad_J) -> tuple[list[Tensor], list[Tensor], Tensor]:
    """``A``, ``B`` (float64, one pair per layer) and ``grad_J`` [n_L, n_0] checked against them."""
    A, B = [as64(a) for a in A], [as64(b) for b in B]
    if not A or len(A) != len(B):
        raise ValueError(f"A and B must hold one matrix per layer, got {len(A)} and {len(B)}")
    G = check_matrix("grad_J", grad_J)
    shape = (A[0].shape[0], B[0].shape[1])
    if G.shape != shape:
        raise ValueError(f"grad_J must have shape [n_L, n_0] = {shape}, got {tuple(G.shape)}")
    return A, B, G.to(device=A[0].device)


def partials_weight_gradients(A: Sequence[Tensor], B: Sequence[Tensor],
                              grad_J: Tensor) -> list[Tensor]:
    """Lemma A.1: ``grad_{W_l} L = A_l^T grad_J B_l^T`` for l = 1..L (float64).

    Parameters
    ----------
    A, B : sequence of Tensor
        The partial products ``A_l`` [n_L, n_l] and ``B_l`` [n_{l-1}, n_0], l = 1..L
        (``J = A_l W_l B_l``, Section 7).
    grad_J : Tensor
        ``grad_J L`` [n_L, n_0].

    Returns
    -------
    list of Tensor
        ``grad_{W_l} L`` [n_l, n_{l-1}], l = 1..L.
    """
    A, B, G = _check_partials(A, B, grad_J)
    return [lr.lemma_a1_gradients(G, a, b) for a, b in zip(A, B)]


def partials_jacobian_derivative(A: Sequence[Tensor], B: Sequence[Tensor],
                                 grad_J: Tensor) -> Tensor:
    """Lemma E.1: ``dJ/dt = -sum_l A_l A_l^T grad_J B_l^T B_l`` under gradient flow.

    Parameters
    ----------
    A, B : sequence of Tensor
        The partial products ``A_l`` [n_L, n_l] and ``B_l`` [n_{l-1}, n_0], l = 1..L.
    grad_J : Tensor
        ``grad_J L`` [n_L, n_0], the loss gradient with respect to ``J``.

    Returns
    -------
    Tensor
        ``dJ/dt`` [n_L, n_0], float64.
    """
    A, B, G = _check_partials(A, B, grad_J)
    return -sum(a @ a.T @ G @ b.T @ b for a, b in zip(A, B))


def partials_rate_terms(A: Sequence[Tensor], B: Sequence[Tensor], J: Tensor, grad_J: Tensor,
                        k: int | None = None) -> Tensor:
    """Per-layer terms of the exact flow rates, ``-(U^T A_l A_l^T G B_l^T B_l V)_kk``; their sum
    over l is ``ds_k/dt`` (Lemmas E.1, E.2; Appendix E.2, first display).

    Parameters
    ----------
    A, B : sequence of Tensor
        The partial products ``A_l`` [n_L, n_l] and ``B_l`` [n_{l-1}, n_0], l = 1..L.
    J : Tensor
        ``J = A_l W_l B_l`` [n_L, n_0].
    grad_J : Tensor
        ``G = grad_J L`` [n_L, n_0].
    k : int or None
        Top singular values (default: all).

    Returns
    -------
    Tensor
        [L, k], batched over the layers when their shapes agree.
    """
    A, B, G = _check_partials(A, B, grad_J)
    U, _, V = _top(J, k)
    A, B = lr.stack_layers(A), lr.stack_layers(B)
    grad_W = lr.over_layers(partial(lr.lemma_a1_gradients, G), A, B)
    return lr.over_layers(partial(lr.flow_terms, U, V), A, grad_W, B)


def partials_aligned_rates(A: Sequence[Tensor], B: Sequence[Tensor], J: Tensor, grad_J: Tensor,
                           k: int | None = None) -> Tensor:
    """Proposition 7.1 with (ii) exact but (i) not assumed,
    ``-sum_l s_k(A_l)^2 s_k(B_l)^2 g_k`` (Appendix E.2, third display).

    Parameters
    ----------
    A, B : sequence of Tensor
        The partial products ``A_l`` [n_L, n_l] and ``B_l`` [n_{l-1}, n_0], l = 1..L.
    J : Tensor
        ``J`` [n_L, n_0].
    grad_J : Tensor
        ``grad_J L`` [n_L, n_0].
    k : int or None
        Top singular values (default: all), at most the smallest width.

    Returns
    -------
    Tensor
        [k].
    """
    J = check_matrix("J", J)
    k = check_k(k, J)
    A, B = [as64(a) for a in A], [as64(b) for b in B]
    kmax = min(min(x.shape) for x in (*A, *B))
    if k > kmax:
        raise ValueError(f"k must be <= the smallest width {kmax}, got {k}")
    g = projections(J, grad_J, k)
    s_A = torch.stack([top_svd(a, k, vectors=False) for a in A])
    s_B = torch.stack([top_svd(b, k, vectors=False) for b in B])
    return lr.aligned_terms(s_A, s_B, g).sum(0)


# --------------------------------------------------------------------------------------
# Proposition 7.1's right-hand side
# --------------------------------------------------------------------------------------


def prop71_rates(J: Tensor, grad_J: Tensor, L: int, delta: Tensor,
                 k: int | None = None) -> Tensor:
    """Proposition 7.1's right-hand side ``-e^{(2+2/L) delta_k} L s_k^{2-2/L} g_k``
    (``delta = 0`` gives Proposition 4.5).

    Parameters
    ----------
    J : Tensor
        The product ``J`` [n_L, n_0] (any float dtype; taken in float64).
    grad_J : Tensor
        ``grad_J L`` [n_L, n_0], the loss gradient with respect to ``J``.
    L : int
        Depth (>= 1).
    delta : Tensor
        The depth-scaling offsets ``delta_k`` (Definition 4.6), 1-d with at least ``k`` entries.
    k : int or None
        How many of the largest singular values (``None``: all ``min(n_L, n_0)``).

    Returns
    -------
    Tensor
        The right-hand side [k], float64.
    """
    L = check_int("L", L, 1)
    base = balanced_singular_value_rates(J, grad_J, L, k)
    delta = as64(torch.as_tensor(delta)).to(base.device)
    if delta.ndim != 1 or delta.shape[0] < base.shape[0]:
        raise ValueError(f"delta must be 1-d with at least {base.shape[0]} entries, "
                         f"got shape {tuple(delta.shape)}")
    return torch.exp((2.0 + 2.0 / L) * delta[: base.shape[0]]) * base


# --------------------------------------------------------------------------------------
# Remark 7.2
# --------------------------------------------------------------------------------------


def remark72_rates(layers: Sequence[Tensor], layer_rates: Sequence[Tensor], delta: Tensor | None,
                   k: int | None = None, *, reading: str = "corrected") -> dict[str, Tensor]:
    """Remark 7.2 for ``J = M_L ... M_1`` with layer derivatives ``dM_l/dt`` (any smooth M_l).

    With ``Q_l = M_L ... M_{l+1} = U_Q S_Q V_Q^T``, ``P_l = M_{l-1} ... M_1 = U_P S_P V_P^T`` and
    ``dJ/dt = sum_l Q_l (dM_l/dt) P_l``, the exact rate is
    ``ds_k/dt = sum_l s_{Q_l,k} s_{P_l,k} (T_l^- V_Q^T dM_l U_P T_l^+)_kk`` with
    ``T_l^- = S_Q^{-1} U^T U_Q S_Q`` and ``T_l^+ = S_P V_P^T V S_P^{-1}`` (full matrices; for
    the empty products ``Q_L = P_1 = I`` the singular bases are taken to be J's own).
    Remark 7.2 keeps the lower (upper) triangular part of ``T^-`` (``T^+``) on the top block
    and replaces ``s_{Q_l,k} s_{P_l,k}`` by ``e^{(1+1/L) delta_k} s_k^{1-1/L}``. The per-layer
    terms are those of :mod:`fgln.theory._layer_rates`; the SVDs of ``Q_l``, ``P_l`` are
    ``torch.linalg.svd``, one call per product.

    Parameters
    ----------
    layers : sequence of Tensor
        ``M_1..M_L`` [n_l, n_{l-1}], chaining.
    layer_rates : sequence of Tensor
        ``dM_l/dt``, each of the shape of ``M_l``.
    delta : Tensor or None
        Depth-scaling offsets ``delta_k`` [>= k] (Definition 4.6), for ``remark``.
    k : int or None
        Top singular values of ``J`` (default: all).
    reading : {"corrected", "printed"}
        ``"corrected"`` (default) as the proof needs it; ``"printed"`` builds ``T_l^+`` from
        ``V_P V^T`` instead of ``V_P^T V``, as Remark 7.2 (ii) and Appendix E.3 print it (square
        layers only): with it ``exact`` is no longer the rate, which is how the chapter checks
        which reading the identity needs.

    Returns
    -------
    dict of str to Tensor
        [k] tensors: ``exact`` (Lemma E.2), ``triangular`` (triangular truncation only,
        measured ``s_Q s_P``), and ``remark`` (the remark's right-hand side; only when
        ``delta`` is given).
    """
    if reading not in ("corrected", "printed"):
        raise ValueError(f"reading must be 'corrected' or 'printed', got {reading!r}")
    layers = [as64(m) for m in layers]
    rates = [as64(m) for m in layer_rates]
    if len(layers) < 1 or len(rates) != len(layers):
        raise ValueError(f"layer_rates must match layers one to one, got {len(rates)} and "
                         f"{len(layers)}")
    for i, (m, r) in enumerate(zip(layers, rates)):
        if m.ndim != 2 or r.shape != m.shape:
            raise ValueError(f"layer_rates[{i}] must have the shape of layers[{i}] "
                             f"{tuple(m.shape)}, got {tuple(r.shape)}")
        if i and layers[i].shape[1] != layers[i - 1].shape[0]:
            raise ValueError(f"layers do not chain at {i}: {tuple(layers[i].shape)} after "
                             f"{tuple(layers[i - 1].shape)}")
    if reading == "printed" and any(m.shape[0] != m.shape[1] for m in layers):
        raise ValueError("reading='printed' needs square layers")
    L = len(layers)
    Q, P = chain_products(layers)  # Q[l-1] = M_L ... M_{l+1}, P[l-1] = M_{l-1} ... M_1
    J = Q[0] @ layers[0]
    U, s, V = top_svd(J, full=True)
    k = check_k(k, J)
    # one SVD per product (the bases of a rank-deficient one are those of an unbatched call);
    # the empty products Q_L = I and P_1 = I: every basis is singular, take J's own
    svd_q = [top_svd(q) for q in Q[:-1]] + [(U, torch.ones_like(U[0]), U)]
    svd_p = [(V, torch.ones_like(V[0]), V)] + [top_svd(p) for p in P[1:]]
    Uq, sq, Vq = (list(x) for x in zip(*svd_q))
    Up, sp, Vp = (list(x) for x in zip(*svd_p))
    X, Y, Z = lr.over_layers(partial(lr.remark72_blocks, U[:, :k], V[:, :k]),
                             Uq, Vq, rates, Up, Vp)
    if reading == "printed":
        Z = lr.over_layers(lambda vp: vp @ V.mT[:, :k], Vp)  # V_P V^T for V_P^T V
    exact = lr.over_layers(lr.remark72_exact_cores, X, sq, Y, sp, Z).sum(0)
    # the top k x k blocks (zero beyond a product's rank) for the triangular truncation
    X, Y, Z = (lr.over_layers(partial(_block, k, k), M) for M in (X, Y, Z))
    sq, sp = (lr.over_layers(partial(_block, k, None), v) for v in (sq, sp))
    cores = lr.remark72_triangular_cores(X, sq, Y, sp, Z)
    if delta is not None:
        delta = as64(torch.as_tensor(delta)).to(J.device)[:k]
    tri, rem = lr.remark72_sums(cores, sq, sp, s[:k], delta, L)
    out = {"exact": exact, "triangular": tri}
    if rem is not None:
        out["remark"] = rem
    return out


def _block(rows: int, cols: int | None, M: Tensor) -> Tensor:
    """The top-left ``rows`` x ``cols`` block of ``M`` [..., m, n] (or the first ``rows``
    entries of ``M`` [..., m], ``cols=None``), padded with zeros where ``M`` is smaller."""
    if cols is None:
        return F.pad(M[..., :rows], (0, rows - min(rows, M.shape[-1])))
    M = M[..., :rows, :cols]
    return F.pad(M, (0, cols - M.shape[-1], 0, rows - M.shape[-2]))
